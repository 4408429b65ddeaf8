"""Right to object to direct marketing — GDPR Art. 21(2)-(3); withdrawal of consent — Art. 7(3).

MediaPRO's GDPR addendum: "Your right to object ... processing your personal information for
direct marketing" and "If we rely on your consent (or explicit consent) as our legal basis
for processing your personal information, you have the right to withdraw that consent at
any time."

The marketing recipients are the profile's sinks whose purpose names marketing. After the
objection (or the withdrawal), they receive nothing for the subject; the control still
reaches them (the barrier every absence is judged behind).
"""

import pytest

from privacy_checks.checks import sharing
from privacy_checks.flows import sharing as flow


@pytest.fixture(scope="module")
def objection(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_choice, kind="object")


@pytest.fixture(scope="module")
def withdrawal(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_choice, kind="withdraw_consent")


@pytest.mark.gdpr("Art.21(2)", "Art.21(3)")
@pytest.mark.check("gdpr.object.marketing-stops")
def test_after_an_objection_marketing_recipients_get_nothing_for_the_subject(objection):
    sharing.sharing_stops(objection)


@pytest.mark.gdpr("Art.7(3)")
@pytest.mark.check("gdpr.consent.withdrawal-stops-marketing")
def test_after_consent_is_withdrawn_marketing_recipients_get_nothing_for_the_subject(withdrawal):
    sharing.sharing_stops(withdrawal)
