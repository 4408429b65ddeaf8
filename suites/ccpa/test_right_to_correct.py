"""Right to correct — Cal. Civ. Code §1798.106; 11 CCR §7023.

MediaPRO's policy: "You may also send us an email at itsec@mediapro.com to request access to,
correct or delete any personal information that you have provided to us."

A field is corrected through the target's `correct` operation (the fields are the
params.<field> it uses). The sweep must then find the new value wherever the old one was and
the old one nowhere outside the profile's declared exceptions (11 CCR §7023(c): correct it on
existing systems and instruct service providers and contractors to correct theirs).
"""

import pytest

from privacy_checks.checks import correction
from privacy_checks.flows.access import module_procedure, run_correction


@pytest.fixture(scope="module")
def correction_procedure(request, privacy_run):
    yield from module_procedure(request, privacy_run, "correct", run_correction)


@pytest.mark.ccpa("1798.106(c)")
@pytest.mark.ccpa_regs("7023(c)")
@pytest.mark.check("ccpa.correct.old-value-replaced-everywhere")
def test_corrected_value_replaces_the_old_one_in_every_store(correction_procedure):
    correction.corrected_everywhere(correction_procedure)


@pytest.mark.ccpa("1798.106(c)")
@pytest.mark.ccpa_regs("7023(c)")
@pytest.mark.check("ccpa.correct.recipients-notified")
def test_service_providers_holding_the_old_value_are_told_to_correct_it(correction_procedure):
    correction.recipients_told(correction_procedure)
