"""Right to erasure — GDPR Art. 17; notification of recipients — Art. 19.

MediaPRO's GDPR addendum: "You can ask us to delete or remove your personal information in
some circumstances ... If you are entitled to erasure and if we've shared your personal
information with others, we'll let them know about the erasure where possible."
"""

import pytest

from privacy_checks.checks import deletion


@pytest.mark.gdpr("Art.17(1)")
@pytest.mark.check("gdpr.erasure.no-residual-data")
def test_erased_subject_leaves_no_trace_in_any_store(deletion_procedure):
    deletion.no_residual_data(deletion_procedure)


@pytest.mark.gdpr("Art.17(1)")
@pytest.mark.check("gdpr.erasure.account-gone")
def test_erased_account_can_no_longer_be_read_or_logged_into(deletion_procedure):
    deletion.account_gone(deletion_procedure)


@pytest.mark.gdpr("Art.19")
@pytest.mark.check("gdpr.erasure.recipients-notified")
def test_each_recipient_is_told_of_the_erasure(deletion_procedure):
    deletion.recipients_told(deletion_procedure)


@pytest.mark.gdpr("Art.17(1)")
@pytest.mark.check("gdpr.erasure.others-intact")
def test_erasing_one_subject_leaves_other_subjects_intact(deletion_procedure):
    deletion.others_intact(deletion_procedure)
