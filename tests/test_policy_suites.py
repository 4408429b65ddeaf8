"""suites/policy against the demo: the clean demo keeps the MediaPRO policy's promises; each
policy flaw fails exactly its checks, naming where."""

from __future__ import annotations

import pytest

from conftest import run_suites
from privacy_checks.demo.server import POLICY_LAST_MODIFIED

SUITE = "suites/policy"
PROMISES = "suites/policy/test_promises.py"
POLICY = ("--policy", "fixtures/policies/mediapro-2019.yaml")

NO_DENIED = "policy.disclosure.no-undisclosed-category"
LAW = "policy.disclosure.categories-collected-disclosed"
FIELDS = "policy.disclosure.fields-in-policy-lists"
EDIT = "policy.account.review-and-change"
DATE_SHOWN = "policy.page.last-revised-date-shown"
NEW_DATE = "policy.page.new-text-new-date"
TWELVE = "policy.page.updated-within-12-months"
RECEIVED = "policy.disclosure.recipients-get-disclosed-categories-only"
ALL = {NO_DENIED, LAW, FIELDS, EDIT, DATE_SHOWN, NEW_DATE, TWELVE, RECEIVED}


def _failed(run) -> set[str]:
    return {k for k, v in run.outcomes().items() if v == "failed"}


def test_the_clean_demo_keeps_every_promise_and_a_second_run_compares_the_policy_page(tmp_path):
    first = run_suites(tmp_path, SUITE, args=POLICY)
    assert first.returncode == 0, first.stdout[-3000:]
    assert set(first.results) == ALL
    # nothing to compare the page with yet: said so, never passed
    assert first.outcomes() == {**{c: "passed" for c in ALL}, NEW_DATE: "not applicable"}, first.outcomes()
    assert "first observation" in first.message(NEW_DATE)
    # the policy's own contradictions are shown, but are not the target's failures
    assert "category D" in first.stdout and "§1798.130(a)(5)" in first.stdout
    second = run_suites(tmp_path, PROMISES, args=POLICY)  # same ledger: tmp_path/ledger.sqlite
    assert second.outcomes()[NEW_DATE] == "passed", second.outcomes()


@pytest.mark.parametrize(("flaw", "expected", "where"), [
    ("undisclosed_geolocation", {NO_DENIED, LAW, FIELDS}, "app: table users, column geolocation"),
    ("profile_edit_not_saved", {EDIT}, "app: table users, column department"),
    ("outdated_policy_page", {TWELVE}, "«Last modified: December 2019»"),
    ("shares_geolocation", {RECEIVED}, "partner (third_party) POST /partner/leads"),
])
def test_each_policy_flaw_fails_exactly_its_checks_naming_where(tmp_path, flaw, expected, where):
    run = run_suites(tmp_path, SUITE, args=POLICY, flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:]
    assert _failed(run) == expected, run.outcomes()
    assert {c for c, o in run.outcomes().items() if o not in ("passed", "failed")} == {NEW_DATE}
    for check in expected:
        assert where in run.message(check), run.message(check)
    if flaw == "undisclosed_geolocation":
        # found by its value, and named by category: G is denied by the policy, L never addressed
        denied = run.message(NO_DENIED)
        assert "G (Geolocation data) not collected" in denied and "field geolocation (exact)" in denied, denied
        law = run.message(LAW)
        assert "G (marked NO" in law and "L (not addressed" in law and "§1798.130(a)(5)(B)(i)" in law, law
    if flaw == "shares_geolocation":
        # found by the seeded coordinates' value and named by category against the policy's list
        received = run.message(RECEIVED)
        assert "category G (Geolocation data, marked not collected)" in received, received
        assert "field geolocation (exact)" in received and "lists A, B, D, F" in received, received


def test_a_policy_text_changed_without_a_new_date_fails_on_the_next_run(tmp_path):
    first = run_suites(tmp_path, PROMISES, args=POLICY, flaws=("stale_policy_date",))
    assert first.outcomes()[NEW_DATE] == "not applicable", first.outcomes()
    second = run_suites(tmp_path, PROMISES, args=POLICY, flaws=("stale_policy_date",))
    assert _failed(second) == {NEW_DATE}, second.outcomes()
    message = second.message(NEW_DATE)
    assert "/privacy-policy changed since" in message and f"showed {POLICY_LAST_MODIFIED} before" in message, message


def test_a_clean_demo_run_after_a_flawed_one_in_the_same_directory_passes(tmp_path):
    """The built-in demo keeps cross-run history per set of flaws: the clean demo's policy text
    is not compared with a flawed demo's (a real target keeps its history across runs)."""
    flawed = run_suites(tmp_path, PROMISES, args=POLICY, flaws=("stale_policy_date",))
    assert flawed.outcomes()[NEW_DATE] == "not applicable", flawed.outcomes()
    clean = run_suites(tmp_path, PROMISES, args=POLICY)
    assert clean.returncode == 0, clean.stdout[-3000:]
    assert clean.outcomes()[NEW_DATE] in ("passed", "not applicable"), clean.outcomes()
    again = run_suites(tmp_path, PROMISES, args=POLICY)
    assert again.outcomes()[NEW_DATE] == "passed", again.outcomes()
