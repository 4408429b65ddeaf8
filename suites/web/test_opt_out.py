"""Do Not Sell or Share in the browser — Cal. Civ. Code §1798.120(d), §1798.135(a)(1), (c)(4).

MediaPRO: "If you do not want us to share your personal information with unaffiliated or
non-agent third parties for promotional purposes, you can opt-out ... by logging into Our
Services and adjusting your user preferences".

The subject signs up and browses (its own page views are seen sending its identifiers to a
third-party or sale domain: the positive control, with the reference visit), then follows the
site's "Do Not Sell or Share My Personal Information" link and acts on it
(`browser.journeys.opt_out`). Its later page views must send nothing of its own — no canary in
any form, no value of a cookie its browser holds — to such a domain. Barrier: a later
first-party page fetches itself.
"""

import pytest

from privacy_checks.checks import web
from privacy_checks.flows import web as flow


@pytest.fixture(scope="module")
def opt_out_visit(privacy_run, request, reference_visit):
    yield from flow.procedure(privacy_run, request, flow.run_opt_out, reference=reference_visit)


@pytest.mark.ccpa("1798.120(d)", "1798.135(a)(1)", "1798.135(c)(4)")
@pytest.mark.check("web.opt-out.tags-stop")
def test_after_the_do_not_sell_link_later_pages_share_nothing_of_the_visitor(opt_out_visit):
    web.tags_stop_after_opt_out(opt_out_visit)
