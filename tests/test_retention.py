"""Retention exceptions: an allowed hit is shown, never failed; a time-limited one fails once overdue."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import yaml

from conftest import ROOT, run_suites
from privacy_checks.ledger import Ledger, _iso

PROFILE = ROOT / "fixtures" / "targets" / "demo.yaml"
DELETE = "suites/ccpa/test_right_to_delete.py"


def test_time_limited_retention_fails_once_its_period_has_ended(tmp_path, standalone_demo):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    env = {**standalone_demo}
    args = ("--target", str(PROFILE), f"--ledger={ledger_url}")
    first = run_suites(tmp_path, DELETE, args=args, env=env)
    assert first.failing() == set(), first.stdout[-2000:]
    ledger = Ledger(ledger_url)
    holds = [dict(r) for r in ledger.engine.connect().execute(ledger.holds.select()).mappings()]
    assert [h["location"] for h in holds] == ["app:outbox:recipient"]
    # Two years pass: move the hold's end into the past instead of sleeping.
    with ledger.engine.begin() as conn:
        conn.execute(ledger.holds.update().values(purge_by=_iso(ledger.now() - timedelta(days=1))))
    second = run_suites(tmp_path, DELETE, args=args, env=env)
    assert second.failing() == {"ccpa.delete.time-limited-retention-purged"}, second.outcomes()
    message = second.message("ccpa.delete.time-limited-retention-purged")
    assert "app: table outbox, column recipient" in message and "11 CCR §7101(a)" in message, message


def test_an_allowed_hit_is_shown_in_the_evidence_not_failed(tmp_path):
    run = run_suites(tmp_path, DELETE, args=("--privacy-reports", str(tmp_path / "reports")))
    assert run.outcomes()["ccpa.delete.no-residual-data"] == "passed"
    evidence = (tmp_path / "reports").rglob("*.json")
    text = "".join(p.read_text() for p in evidence)
    assert "allowed: app.outbox.recipient (email/exact): 11 CCR §7101(a)" in text


def test_lint_rejects_a_malformed_purge_period(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text(PROFILE.read_text().replace("purge_within: 730d", "purge_within: two years"))
    env = {"PRIVACY_CHECKS_DEMO_URL": "https://127.0.0.1:1", "PRIVACY_CHECKS_DEMO_DATA": "/tmp/x",
           "PRIVACY_CHECKS_DEMO_HTTP_URL": "http://127.0.0.1:2", "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": "t",
           "PRIVACY_CHECKS_DEMO_REDIS": "127.0.0.1:3", "PRIVACY_CHECKS_DEMO_S3_URL": "http://127.0.0.1:4",
           "PRIVACY_CHECKS_DEMO_SINK": "127.0.0.1:0", "PRIVACY_CHECKS_DEMO_SMTP": "127.0.0.1:0"}
    result = subprocess.run([sys.executable, "-m", "privacy_checks.cli", "lint", str(bad)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **env})
    index = next(i for i, e in enumerate(yaml.safe_load(PROFILE.read_text())["retention_exceptions"])
                 if e.get("purge_within") == "730d")
    assert result.returncode == 2 and f"retention_exceptions[{index}].purge_within" in result.stderr, result.stderr


def test_a_cache_entry_kept_with_a_ttl_passes_only_under_an_exception_with_a_long_enough_max_ttl(tmp_path):
    from privacy_checks.demo.launch import DemoProcess

    demo = DemoProcess(flaws=["cache_ttl_7_days"]).start()
    try:
        def run_with(max_ttl: str, name: str):
            profile = tmp_path / f"{name}.yaml"
            data = yaml.safe_load(PROFILE.read_text())
            data["policy"] = str((PROFILE.resolve().parent / data["policy"]).resolve())  # written elsewhere
            data["retention_exceptions"].append({
                "store": "cache", "key": "profile:*", "max_ttl": max_ttl,
                "legal_basis": "legitimate interest (fraud prevention)",
                "reason": "the profile cache is kept for a week after deletion"})
            profile.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
            args = ("--target", str(profile), f"--ledger=sqlite:///{tmp_path / name}.sqlite",
                    "--privacy-reports", str(tmp_path / name))
            return run_suites(tmp_path, DELETE, args=args, env=demo.env())

        allowed = run_with("8d", "allowed")
        assert allowed.outcomes()["ccpa.delete.no-residual-data"] == "passed", allowed.message(
            "ccpa.delete.no-residual-data")
        evidence = "".join(p.read_text() for p in (tmp_path / "allowed").rglob("*.json"))
        assert "held for 6 days 23 h more" in evidence and "expiring within 8d" in evidence
        too_short = run_with("24h", "short")
        assert too_short.outcomes()["ccpa.delete.no-residual-data"] == "failed"
        assert "held for 6 days 23 h more" in too_short.message("ccpa.delete.no-residual-data")
    finally:
        demo.stop()


def test_an_exception_with_a_typed_form_allows_only_that_form(tmp_path):
    """`form: epoch ms` allows the login time kept as epoch milliseconds, and nothing else the
    same file keeps of the subject: not the same instant as a TIMESTAMP, not the card number."""
    from privacy_checks.observe.stores import StoreSpec, sweep
    from privacy_checks.retention import RetentionException, split_allowed
    from tests.test_lake_store import typed_row, typed_subjects, write_typed_parquet

    ada, _ = typed_subjects()
    write_typed_parquet(tmp_path / "logins.parquet", {5: typed_row(ada)})
    hits = sweep([StoreSpec("lake", lake=[str(tmp_path / "*.parquet")])], ada.needles()).hits
    exception = RetentionException.from_profile({
        "store": "lake", "file": "*/logins.parquet", "field": "moment", "form": "epoch ms",
        "legal_basis": "GDPR Art. 6(1)(f)", "reason": "login times kept 30 days for fraud prevention"})
    bad, allowed = split_allowed(hits, [exception])
    assert [(h.column_or_line, h.form) for h, _ in allowed] == [("at_epoch_ms", "epoch ms")]
    assert {(h.column_or_line, h.form) for h in bad} >= {("login_at", "timestamp"), ("at_tz", "timestamp"),
                                                          ("card", "integer")}
    assert not [h for h in bad if h.form == "epoch ms"]
