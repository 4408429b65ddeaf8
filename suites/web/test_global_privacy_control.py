"""Opt-out preference signals in the browser — 11 CCR §7025(c)(1); Cal. Civ. Code §1798.135(b)(1), (c)(4); GPC spec.

MediaPRO: "Please contact us for information on how you can opt out of behavioral tracking on
Our Services and how we respond to web browser signals and other mechanisms that enable
consumers to exercise choice about behavioral tracking."

A visitor whose browser sends Global Privacy Control (`Sec-GPC: 1` on every request, and
`navigator.globalPrivacyControl === true` before any page script runs) signs up and browses.
No request to a third-party or sale domain may carry anything of the subject's — its canaries
in any form, or the value of any cookie its browser holds — and no third-party cookie may be
set. Positive control: the reference visit (same pages, no GPC) is seen sending the visitor's
identifiers to those domains. Barrier: a later first-party page fetches itself.
"""

import pytest

from privacy_checks.checks import web
from privacy_checks.flows import web as flow


@pytest.fixture(scope="module")
def gpc_visit(privacy_run, request, reference_visit):
    yield from flow.procedure(privacy_run, request, flow.run_gpc, reference=reference_visit)


@pytest.mark.ccpa("1798.135(b)(1)", "1798.135(c)(4)")
@pytest.mark.ccpa_regs("7025(c)(1)")
@pytest.mark.gpc("Sec-GPC", "navigator.globalPrivacyControl")
@pytest.mark.check("web.gpc.tags-honour-gpc")
def test_with_gpc_the_pages_share_nothing_of_the_visitor_with_third_parties(gpc_visit):
    web.tags_honour_gpc(gpc_visit)
