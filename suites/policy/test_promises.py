"""The policy's other promises a run can check, each tied to its quote.

MediaPRO: "You can review and change your personal information by logging into Our Services
and visiting your account profile page." — the subject's own session reads its profile (every
field the stores hold is shown), changes it, and a fresh read shows the new values, not the old.

MediaPRO: "The date the privacy policy was last revised is identified at the top of the page."
— the page the target serves (the policy file's `served_at`) carries a "Last modified" date in
its first lines, and when its text changes from one run to the next (sha256 kept in the
ledger) the date moves on. Cal. Civ. Code §1798.130(a)(5) also requires the policy to be
updated at least once every 12 months: checked separately, as the law rather than the promise.

The policy's other automatable promises are verified by the checks named in the policy file
(deletion: ccpa.delete.*; sale: ccpa.sale.nothing-sold; access: ccpa.know.*; deadlines:
ccpa.deadlines.*; non-discrimination; transport.*); the compliance report joins them.
"""

import pytest

from privacy_checks.checks import policy as judge
from privacy_checks.flows import promises as flow


@pytest.fixture(scope="module")
def profile_edit(request, privacy_run):
    yield from privacy_run.procedure(request, flow.run_review_and_change)


@pytest.fixture(scope="module")
def policy_page(privacy_run, privacy_policy):
    from privacy_checks.evidence import Evidence

    return flow.run_policy_page(privacy_run, privacy_policy, evidence=Evidence("policy-page"))


@pytest.mark.ccpa("1798.106")
@pytest.mark.gdpr("Art. 16")
@pytest.mark.check("policy.account.review-and-change")
def test_a_logged_in_subject_can_review_and_change_its_personal_information(profile_edit):
    judge.review_and_change(profile_edit)


@pytest.mark.read_only
@pytest.mark.ccpa("1798.130(a)(5)")
@pytest.mark.check("policy.page.last-revised-date-shown")
def test_the_policy_page_shows_its_last_revision_date_at_the_top(policy_page):
    judge.last_revised_date_shown(policy_page)


@pytest.mark.read_only
@pytest.mark.ccpa("1798.130(a)(5)")
@pytest.mark.check("policy.page.new-text-new-date")
def test_a_changed_policy_text_carries_a_new_revision_date(policy_page):
    judge.new_text_new_date(policy_page)


@pytest.mark.read_only
@pytest.mark.ccpa("1798.130(a)(5)")
@pytest.mark.check("policy.page.updated-within-12-months")
def test_the_served_policy_was_updated_within_the_last_12_months(policy_page):
    judge.updated_within_12_months(policy_page)
