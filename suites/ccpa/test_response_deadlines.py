"""Response deadlines — 11 CCR §7021(a), §7021(b), §7026(f); Cal. Civ. Code §1798.130(a)(2)(A).

MediaPRO's California addendum: "We endeavor to respond to a verifiable consumer request within
forty-five (45) days of its receipt. If we require more time we will inform you of the reason and
extension period in writing." The law is stricter than "endeavor": 45 calendar days from receipt,
counted even while verification is pending; one extension to 90 in total, only with notice and the
reason given within the first 45 days; receipt confirmed within 10 business days; opt-outs honoured
within 15 business days.

No run waits 45 days. One procedure runs per module (flows/deadlines.py): control requests are
filed (back-dated where the target allows), every request the ledger holds open is re-polled and
judged — pending ones pass with "pending, due <date>" and are judged again by a later run — and
the target's own request log, real users' requests included, is judged by the same rules.
Set PRIVACY_CHECKS_NOW (ISO 8601 with a zone) to judge as of another day.
"""

import pytest

from privacy_checks.checks import deadlines


@pytest.fixture(scope="module")
def deadline_procedure(request, privacy_run):
    from privacy_checks.flows.deadlines import run_deadlines

    # A subject whose request is still pending stays in the ledger (awaiting_request) for a later run.
    yield from privacy_run.procedure(request, run_deadlines, regime="ccpa")


@pytest.mark.ccpa_regs("7021(a)")
@pytest.mark.check("ccpa.deadlines.acknowledge-10-business-days")
def test_receipt_of_requests_is_confirmed_within_10_business_days(deadline_procedure, evidence):
    deadlines.acknowledged_in_time(deadline_procedure, evidence)


@pytest.mark.ccpa("1798.130(a)(2)(A)")
@pytest.mark.ccpa_regs("7021(b)")
@pytest.mark.check("ccpa.deadlines.respond-45-days")
def test_requests_are_answered_within_45_days_or_a_noticed_extension(deadline_procedure, evidence):
    deadlines.answered_in_time(deadline_procedure, evidence)


@pytest.mark.ccpa("1798.120")
@pytest.mark.ccpa_regs("7026(f)")
@pytest.mark.check("ccpa.deadlines.opt-out-15-business-days")
def test_opt_out_requests_are_honoured_within_15_business_days(deadline_procedure, privacy_profile, evidence):
    deadlines.opt_out_honoured_in_time(deadline_procedure, privacy_profile, evidence)
