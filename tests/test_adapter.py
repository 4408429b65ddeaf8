"""The Python adapter contract, end to end against the demo: an export assembled in Python from
several calls (privacy_checks/examples/demo_adapter.py) gets the ledger, the safety guard, the
host allow-list and the evidence a recipe gets, and the right-to-know suite passes with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DEMO_LINT_ENV
from privacy_checks.observe import exports as ex
from privacy_checks.profile import lint
from privacy_checks.runtime import RunContext
from privacy_checks.safety import NotOwned
from privacy_checks.subjects import SubjectFactory

ROOT = Path(__file__).resolve().parent.parent
DEMO = (ROOT / "privacy_checks" / "profiles" / "demo.yaml").read_text()
ADAPTER = "privacy_checks.examples.demo_adapter:DemoExportAdapter"


def _adapter_profile(tmp_path: Path) -> Path:
    """The demo profile with its export recipe replaced by the example adapter."""
    start = DEMO.index("  export:\n    steps:")
    end = DEMO.index("  # Right to correct")
    text = DEMO[:start] + DEMO[end:]
    text = text.replace("export:\n  delivery: link\n", "export:\n  delivery: response\n")
    text = text.replace("name: demo\n", f"name: demo\nadapter: {ADAPTER}\n", 1)
    path = tmp_path / "adapter.yaml"
    path.write_text(text)
    return path


def test_the_adapter_profile_lints_clean(tmp_path):
    env = DEMO_LINT_ENV
    assert lint(_adapter_profile(tmp_path), env) == []


def test_an_adapter_operation_gets_the_ledger_the_guard_and_the_evidence(tmp_path, standalone_demo, monkeypatch):
    for k, v in standalone_demo.items():
        monkeypatch.setenv(k, v)
    run = RunContext(target_path=str(_adapter_profile(tmp_path)), flaws=[], ledger_url=f"sqlite:///{tmp_path}/l.db",
                     seed="adapter", lease_seconds=60)
    try:
        target = run.target
        assert target.has_operation("export") and "export" not in target.profile.operations
        subject = run.create_subject("tests/test_adapter.py", role="subject")
        target.run("activity", subject)
        before = len(target.exchanges)
        result = target.run("export", subject)
        # the ledger: the subject was recorded before creation and the adapter's captures are kept
        assert run.ledger.subject(subject.id)["state"] == "created"
        assert result.captured["access_status"] == "completed" and subject.captured["request_id"]
        # the evidence: every call the adapter made is an exchange, redacted like a recipe's
        made = target.exchanges[before:]
        assert result.exchanges == made and len(made) >= 6
        assert {e.method for e in made} >= {"POST", "GET"}
        dumped = json.dumps([e.to_dict() for e in made])
        assert subject.captured["token"] not in dumped and standalone_demo["PRIVACY_CHECKS_DEMO_ADMIN_TOKEN"] \
            not in dumped
        # the export it assembled is read like any other
        export = ex.obtain(target, subject, result=result)
        assert export.machine_readable
        assert export.document()["account"]["email"] == subject.fields["email"]
        assert export.document()["tickets"][0]["body"] == subject.fields["support_ticket"]

        # the guard: a subject the ledger does not know is refused before anything is sent
        stranger = SubjectFactory(seed="x", nonce="y").build("t", role="subject")
        stranger.captured = dict(subject.captured)
        sent = len(target.exchanges)
        with pytest.raises(NotOwned, match="it is not in the ledger"):
            target.run("export", stranger)
        assert len(target.exchanges) == sent

        # the allow-list: the adapter talks through Target.request, which refuses other hosts
        target.allowed_hosts = ["localhost"]
        with pytest.raises(Exception, match="is not in allowed_hosts"):
            target.run("export", subject)
        target.allowed_hosts = ["127.0.0.1", "localhost"]
    finally:
        run.remove_created_since(0)
        run.close()


def test_the_right_to_know_suite_passes_with_the_adapter(tmp_path, suite_runner, standalone_demo):
    run = suite_runner("suites/ccpa/test_right_to_know.py", args=("--target", str(_adapter_profile(tmp_path))),
                       env=standalone_demo)
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()
