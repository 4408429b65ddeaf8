"""The deletion suites pass on the clean demo and fail — naming where — with each flaw on."""

import re

import pytest

SUITES = ("suites/ccpa/test_right_to_delete.py", "suites/gdpr/test_right_to_erasure.py")
RESIDUAL = {"ccpa.delete.no-residual-data", "gdpr.erasure.no-residual-data"}
NOTIFIED = {"ccpa.delete.recipients-notified", "gdpr.erasure.recipients-notified"}
INTACT = {"ccpa.delete.others-intact", "gdpr.erasure.others-intact"}


def test_clean_demo_passes_every_deletion_check(suite_runner):
    run = suite_runner(*SUITES)
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(run.results) == 10
    outcomes = run.outcomes()
    # Nothing kept under a time-limited exception has reached its purge date in a fresh run.
    assert outcomes.pop("ccpa.delete.time-limited-retention-purged") == "not applicable"
    assert set(outcomes.values()) == {"passed"}, outcomes


@pytest.mark.parametrize(("flaw", "expected", "where"), [
    ("soft_delete", RESIDUAL, "app: table users, column email"),
    ("keep_in_search_index", RESIDUAL, "search: table documents, column body"),
    ("pii_in_logs", RESIDUAL, "logs: file "),
    ("keep_in_analytics", RESIDUAL, "analytics: table events, column email"),
    # issue 14 (8): the index of deleted documents, read through its vocabulary
    ("keep_in_fts", RESIDUAL, "search: table documents_fts, column title (index term), row rowid="),
    # issue 14 (6): named by its unique key, which survives the rewrite, not by a moving rowid
    ("rewrite_rows_on_delete", RESIDUAL, "analytics: table visits, column username, row user_id="),
    ("no_downstream_delete", NOTIFIED, "no deletion notice"),
    ("delete_hits_other_subject", INTACT, "is gone too"),
    ("keep_in_cache", RESIDUAL, "no expiry"),
    ("cache_ttl_7_days", RESIDUAL, "(hash), held for 6 days 23 h more"),
    ("keep_old_versions", RESIDUAL, "(noncurrent)"),
    # the export keeps the email and, as typed values, the first login time (proof on its own)
    ("keep_in_lake", RESIDUAL, re.compile(r"(?s)(?=.*/lake/analytics/events\.parquet, column email, rows? \d)"
                                          r"(?=.*/lake/analytics/events\.parquet, column first_login, rows? [\d, ]+: "
                                          r"field moment \(timestamp\))")),
    # written by the framework's own login attempt after the deletion: seen only because that
    # probe runs before the final sweep
    ("throttle_keeps_username", RESIDUAL, "app: table login_attempts, column username"),
    # typed values and linked rows (issue 15): a card number as text, a login time alone in its row,
    # an order that holds nothing of the subject but its id
    ("keep_card_number", RESIDUAL,
     re.compile(r"app: table payments, column card_number, row id=\d+: field card_number \(exact\)")),
    ("keep_login_times", RESIDUAL, re.compile(r"app: table logins, column at, row id=\d+: field moment \(")),
    ("orphan_orders", RESIDUAL, re.compile(r"app: table orders, column user_id, rows? id=\d+.*: field user_id "
                                           r"\(linked row: foreign key to users.id\)")),
    ("delete_removes_shared_thread", INTACT, "the control's contribution to the space it shared with the deleted "
                                             "subject is gone from app: messages, body (message)"),
])
def test_each_deletion_flaw_fails_exactly_its_checks_naming_where(suite_runner, flaw, expected, where):
    run = suite_runner(*SUITES, flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failing() == expected, run.outcomes()
    for check in expected:
        assert run.results[check]["outcome"] == "failed"
        message = run.message(check)
        assert (where.search(message) if isinstance(where, re.Pattern) else where in message), message


def test_analytics_kept_as_a_hash_is_reported_as_the_hash_form(suite_runner):
    run = suite_runner(SUITES[0], flaws=("keep_in_analytics",))
    message = run.message("ccpa.delete.no-residual-data")
    assert "field email (sha256)" in message, message


def test_weak_values_beside_a_canary_are_named_marked_weak(suite_runner):
    """Issue 14 (7): the row a canary proves to hold the subject also keeps its fictional phone
    number and documentation-range IP; they are named with it, marked weak."""
    run = suite_runner(SUITES[0], flaws=("soft_delete",))
    message = run.message("ccpa.delete.no-residual-data")
    assert "app: table users, column phone, row id=" in message, message
    assert "field phone (exact, weak: the subject's value beside its canary, no proof alone)" in message
    assert "field ip_address (exact, weak" in message


def test_findings_name_rows_by_a_key_that_finds_them_again(suite_runner):
    """Issue 14 (6) and (8): a bare canary left in a full-text index is form token, at its document;
    a row of a table without a primary key is named by its unique key, never by a physical row id
    that the rewrite has just moved."""
    run = suite_runner(SUITES[0], flaws=("keep_in_fts", "rewrite_rows_on_delete"))
    message = run.message("ccpa.delete.no-residual-data")
    assert "(document id in the index): field canary (token)" in message, message
    visits = [line for line in message.splitlines() if "table visits" in line]
    assert visits and all("(unique key)" in line and "seen_ms=" in line and "rowid" not in line
                          for line in visits), message
