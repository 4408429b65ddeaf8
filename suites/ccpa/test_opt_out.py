"""Right to opt out of sale or sharing — Cal. Civ. Code §1798.120(d), §1798.135(c)(1), (c)(4); 11 CCR §7026, §7060(b).

MediaPRO: "If you do not want us to share your personal information with unaffiliated or
non-agent third parties for promotional purposes, you can opt-out ... by logging into Our
Services and adjusting your user preferences".

One procedure runs per module (flows/sharing.py): the subject's activity reaches a third
party (positive control), the subject opts out through the target's own operation, then it
acts again; each round is judged only once a later delivery for the control has reached the
same recipient. Service providers may still receive. The evidence states the delay observed
before the opt-out took effect (11 CCR §7026(f) allows at most 15 business days; the
profile's timeouts.propagation bounds how long a run waits).
"""

import pytest

from privacy_checks.checks import sharing
from privacy_checks.flows import sharing as flow


@pytest.fixture(scope="module")
def opt_out_procedure(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_choice, kind="opt_out")


@pytest.mark.ccpa("1798.120(d)", "1798.135(c)(4)")
@pytest.mark.ccpa_regs("7026(f)")
@pytest.mark.check("ccpa.opt-out.sharing-stops")
def test_after_opting_out_no_third_party_or_buyer_receives_the_subject(opt_out_procedure):
    sharing.sharing_stops(opt_out_procedure)


@pytest.mark.ccpa("1798.135(c)(1)")
@pytest.mark.ccpa_regs("7026", "7060(b)")
@pytest.mark.check("ccpa.opt-out.no-verification")
def test_opting_out_needs_no_verification_code_or_identity_proof(opt_out_procedure):
    sharing.no_verification_needed(opt_out_procedure)
