"""The foundation as a user meets it: lint, flaw switches, canaries, the ledger, the demo's lifecycle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from privacy_checks.errors import LedgerError
from privacy_checks.ledger import Ledger
from privacy_checks.observe.forms import MARKER
from privacy_checks.subjects import SubjectFactory, category_table, new_run_nonce

ROOT = Path(__file__).resolve().parent.parent
DEMO_ENV = {"PRIVACY_CHECKS_DEMO_URL": "https://127.0.0.1:1", "PRIVACY_CHECKS_DEMO_DATA": "/tmp/x",
            "PRIVACY_CHECKS_DEMO_HTTP_URL": "http://127.0.0.1:2",
            "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": "t", "PRIVACY_CHECKS_DEMO_REDIS": "127.0.0.1:3",
            "PRIVACY_CHECKS_DEMO_S3_URL": "http://127.0.0.1:4",
            "PRIVACY_CHECKS_DEMO_SINK": "127.0.0.1:0", "PRIVACY_CHECKS_DEMO_SMTP": "127.0.0.1:0"}


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "privacy_checks.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_lint_accepts_the_demo_profile():
    result = _cli("lint", "fixtures/targets/demo.yaml", env=DEMO_ENV)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_lint_rejects_a_wrong_method_naming_file_and_path(tmp_path):
    bad = tmp_path / "staging.yaml"
    text = (ROOT / "fixtures/targets/demo.yaml").read_text().replace("method: POST", "method: FETCH", 1)
    bad.write_text(text)
    result = _cli("lint", str(bad), env=DEMO_ENV)
    assert result.returncode == 2
    assert "staging.yaml: operations.create_subject.steps[0].method: 'FETCH' is not one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_demo_flaw_stops_the_run_with_one_clear_error():
    result = subprocess.run([sys.executable, "-m", "pytest", "suites/ccpa", "-q", "--demo-flaw", "no_such_flaw"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert "unknown demo flaw 'no_such_flaw'; known flaws: " in result.stderr
    assert "soft_delete" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_clause_fails_collection_with_a_clear_message(tmp_path):
    test = tmp_path / "test_bad_clause.py"
    test.write_text("import pytest\n\n@pytest.mark.ccpa('1798.999')\n@pytest.mark.check('ccpa.x.y')\n"
                    "def test_x(privacy_run):\n    pass\n")
    result = subprocess.run([sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert "unknown CCPA section '1798.999'" in result.stderr


def test_an_unreachable_target_errors_every_check_with_one_message(tmp_path):
    profile = tmp_path / "dead.yaml"
    text = (ROOT / "fixtures/targets/demo.yaml").read_text()
    profile.write_text(text)
    import trustme

    (tmp_path / "tls").mkdir()
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "tls" / "ca.pem"))
    env = {**DEMO_ENV, "PRIVACY_CHECKS_DEMO_URL": "https://127.0.0.1:9", "PRIVACY_CHECKS_DEMO_DATA": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "pytest", "suites/ccpa/test_collection.py", "-q",
                             "--target", str(profile), "--privacy-results=",
                             f"--ledger=sqlite:///{tmp_path}/l.sqlite"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert result.returncode == 1
    assert "cannot reach https://127.0.0.1:9/api/users" in result.stdout
    assert "1 error" in result.stdout
    assert "Traceback" not in result.stdout


def test_canaries_are_unique_across_two_runs_with_the_same_seed():
    first = SubjectFactory(seed="s", nonce=new_run_nonce())
    second = SubjectFactory(seed="s", nonce=new_run_nonce())
    a = [first.build("t::x").canary for _ in range(50)]
    b = [second.build("t::x").canary for _ in range(50)]
    assert len(set(a)) == 50 and not set(a) & set(b)
    assert all(c.startswith(MARKER) for c in a + b)


def test_the_same_seed_test_and_nonce_replay_the_same_subject():
    one = SubjectFactory(seed="s", nonce="n1").build("t::x")
    two = SubjectFactory(seed="s", nonce="n1").build("t::x")
    assert one.fields == two.fields


def test_subject_fields_follow_their_strategies():
    subject = SubjectFactory(seed="s", nonce="n").build("t::x")
    f = subject.fields
    assert f["email"].endswith("@example.com") and subject.canary in f["email"].split("@")[0]
    assert f["phone"].startswith("+1") and f["phone"][5:9] == "5550" and 100 <= int(f["phone"][-4:]) <= 199
    assert f["ip_address"].rsplit(".", 1)[0] in ("192.0.2", "198.51.100", "203.0.113")
    for name in ("full_name", "username", "company", "department", "postal_address", "chat_username",
                 "custom_field", "password"):
        assert subject.canary in f[name], name
    weak = {n.field for n in subject.needles() if n.weak}
    assert weak == {"phone", "ip_address"}
    for name in f:
        assert name in category_table(), f"{name} has no reviewed CCPA category"


def test_a_ledger_from_a_newer_version_is_refused_not_overwritten(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    ledger = Ledger(url)
    with ledger.engine.begin() as conn:
        conn.execute(ledger.meta.update().values(value="99"))
    with pytest.raises(LedgerError, match="newer privacy-checks .schema 99"):
        Ledger(url)


def test_a_corrupt_ledger_gives_a_clear_error(tmp_path):
    path = tmp_path / "l.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError, match="unreadable or corrupt"):
        Ledger(f"sqlite:///{path}")


def test_the_ledger_writes_the_intent_before_the_create_request():
    factory = SubjectFactory(seed="s", nonce="n")
    subject = factory.build("t::x")
    ledger = Ledger("sqlite://")
    run = ledger.start_run("demo", seed="s", nonce="n", lease_seconds=60)
    ledger.record_intent(run, "demo", subject)
    row = ledger.subject(subject.id)
    assert row["state"] == "intended" and row["canary"] == subject.canary
    assert "password" not in row["fields"]  # the ledger never keeps a secret


def test_the_demo_leaves_no_process_behind(tmp_path):
    from privacy_checks.demo.launch import DemoProcess

    demo = DemoProcess(data_dir=str(tmp_path)).start()
    pid = demo.proc.pid
    demo.stop()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_the_main_job_runs_without_pytest_xdist_installed(tmp_path):
    # Quickstart's first command installs no dev extras: the plugin's xdist hook must be optional.
    result = subprocess.run([sys.executable, "-m", "pytest", "suites/ccpa/test_collection.py", "-q",
                             "-p", "no:xdist", f"--privacy-reports={tmp_path}", f"--ledger=sqlite:///{tmp_path}/l.db"],
                            cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
