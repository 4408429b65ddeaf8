"""Right to delete — Cal. Civ. Code §1798.105(c)(1), (d); 11 CCR §7022(b).

MediaPRO's California addendum: "we will delete (and direct our service providers to
delete) your personal information from our records, unless an exception applies." and
"We cannot delete your personal information except by also deleting your user account."

One deletion procedure runs per module (positive control, request, barrier, sweep); each
test below judges one promise of it. Retention the law allows is declared in the profile's
`retention_exceptions` and shown, never failed.
"""

import pytest

from privacy_checks.checks import deletion


@pytest.mark.ccpa("1798.105(c)(1)", "1798.130(a)(2)(A)")
@pytest.mark.ccpa_regs("7022(b)(1)")
@pytest.mark.check("ccpa.delete.request-completes")
def test_deletion_request_is_carried_out(deletion_procedure):
    deletion.request_completes(deletion_procedure)


@pytest.mark.ccpa("1798.105(c)(1)")
@pytest.mark.ccpa_regs("7022(b)(1)")
@pytest.mark.check("ccpa.delete.no-residual-data")
def test_deleted_subject_leaves_no_trace_in_any_store(deletion_procedure):
    deletion.no_residual_data(deletion_procedure)


@pytest.mark.ccpa("1798.105(c)(1)")
@pytest.mark.check("ccpa.delete.account-gone")
def test_deleted_account_can_no_longer_be_read_or_logged_into(deletion_procedure):
    deletion.account_gone(deletion_procedure)


@pytest.mark.ccpa("1798.105(c)(1)")
@pytest.mark.ccpa_regs("7022(b)(2)", "7022(b)(3)")
@pytest.mark.check("ccpa.delete.recipients-notified")
def test_service_providers_and_third_parties_are_told_to_delete(deletion_procedure):
    deletion.recipients_told(deletion_procedure)


@pytest.mark.ccpa("1798.105(c)(1)")
@pytest.mark.check("ccpa.delete.others-intact")
def test_deleting_one_subject_leaves_other_subjects_intact(deletion_procedure):
    deletion.others_intact(deletion_procedure)


@pytest.mark.ccpa("1798.105(d)")
@pytest.mark.ccpa_regs("7022(b)(1)")
@pytest.mark.check("ccpa.delete.time-limited-retention-purged")
def test_data_kept_for_a_limited_time_is_gone_when_the_period_ends(privacy_run, evidence):
    deletion.time_limited_retention_purged(privacy_run, evidence)
