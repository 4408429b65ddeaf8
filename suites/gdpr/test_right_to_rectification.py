"""Right to rectification — GDPR Art. 16; notification of recipients — Art. 19.

MediaPRO's GDPR addendum: "If the personal information we hold about you is inaccurate or
incomplete, you're entitled to have it rectified. If you are entitled to rectification and if
we've shared your personal information with others, we'll let them know about the
rectification where possible."
"""

import pytest

from privacy_checks.checks import correction
from privacy_checks.flows.access import module_procedure, run_correction


@pytest.fixture(scope="module")
def correction_procedure(request, privacy_run):
    yield from module_procedure(request, privacy_run, "correct", run_correction)


@pytest.mark.gdpr("Art.16")
@pytest.mark.check("gdpr.rectification.old-value-replaced-everywhere")
def test_rectified_value_replaces_the_old_one_in_every_store(correction_procedure):
    correction.corrected_everywhere(correction_procedure)


@pytest.mark.gdpr("Art.19")
@pytest.mark.check("gdpr.rectification.recipients-notified")
def test_each_recipient_of_the_old_value_is_told_of_the_rectification(correction_procedure):
    correction.recipients_told(correction_procedure)
