"""Opt-out preference signals (Global Privacy Control) — 11 CCR §7025(c)(1); Cal. Civ. Code §1798.135(b)(1), (c)(4).

MediaPRO: "Please contact us for information on how you can opt out of behavioral tracking
on Our Services and how we respond to web browser signals and other mechanisms that enable
consumers to exercise choice about behavioral tracking."

The same procedure as the opt-out suite, except that the only opt-out is `Sec-GPC: 1` on the
subject's own requests: no third party or buyer may receive the subject's data afterwards.
Where the profile claims GPC support, /.well-known/gpc.json must follow the GPC
specification (a specification, not a regulation, is what that check cites).
"""

import pytest

from privacy_checks.checks import sharing
from privacy_checks.flows import sharing as flow


@pytest.fixture(scope="module")
def gpc_procedure(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_choice, kind="gpc")


@pytest.mark.ccpa("1798.135(b)(1)", "1798.135(c)(4)")
@pytest.mark.ccpa_regs("7025(c)(1)", "7026(f)")
@pytest.mark.gpc("Sec-GPC")
@pytest.mark.check("ccpa.gpc.sharing-stops")
def test_a_browser_sending_gpc_stops_sale_and_sharing_of_the_subject(gpc_procedure):
    sharing.sharing_stops(gpc_procedure)


@pytest.mark.gpc("gpc.json")
@pytest.mark.check("gpc.support-resource.valid")
@pytest.mark.read_only
def test_the_gpc_support_resource_follows_the_specification(privacy_target, privacy_profile):
    sharing.gpc_support_resource(privacy_target, privacy_profile)
