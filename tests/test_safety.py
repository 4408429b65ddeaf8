"""Safety rails: only the ledger's own subjects are touched, and no secret reaches a report.

The secret scan runs the suites against a demo served from this process, so the test knows
every secret of the run: the admin token it chose, each subject's password (derived from its
canary), and each session token and verification code the demo handed out (recorded as the
demo issues them). Then every file the run wrote — reports, results, ledger — is searched.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from privacy_checks.demo.faults import counts
from privacy_checks.demo.launch import DemoProcess
from privacy_checks.demo.server import DemoConfig, DemoServer
from privacy_checks.ledger import Ledger
from privacy_checks.safety import NotOwned, ensure_owned
from privacy_checks.subjects import SubjectFactory
from tests.conftest import ROOT, run_suites

PROFILE = ROOT / "fixtures" / "targets" / "demo.yaml"
ADMIN_TOKEN = "safety-test-admin-token-Zq81"
# Modules that log in, verify codes, export and correct: every kind of secret the run handles.
SUITES = ("suites/ccpa/test_right_to_delete.py", "suites/ccpa/test_right_to_know.py",
          "suites/gdpr/test_right_to_rectification.py")


# -- ensure_owned ---------------------------------------------------------------------------------

@pytest.fixture
def ledger(tmp_path):
    led = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield led
    led.close()


def _owned(ledger, *, state="created", captured=None):
    factory = SubjectFactory(seed="safety", nonce="n0")
    subject = factory.build("tests/test_safety.py::owned")
    run_id = ledger.start_run("demo", seed="safety", nonce="n0", lease_seconds=60)
    ledger.record_intent(run_id, "demo", subject)
    subject.captured = dict(captured or {"user_id": 7})
    ledger.update_subject(subject.id, state=state, captured=subject.captured)
    return factory, subject


def test_a_subject_the_ledger_recorded_as_created_may_be_changed(ledger):
    _, subject = _owned(ledger)
    assert ensure_owned(ledger, subject, target="demo")["canary"] == subject.canary


def test_a_subject_that_is_not_in_the_ledger_is_refused(ledger):
    factory, _ = _owned(ledger)
    stranger = factory.build("tests/test_safety.py::never-recorded")
    stranger.captured = {"user_id": 7}
    with pytest.raises(NotOwned, match="not in the ledger"):
        ensure_owned(ledger, stranger)


def test_a_subject_whose_canary_differs_from_the_ledgers_is_refused(ledger):
    _, subject = _owned(ledger)
    with pytest.raises(NotOwned, match="records canary"):
        ensure_owned(ledger, replace(subject, canary="pcqzsomeoneelse"))


def test_a_subject_carrying_another_records_id_is_refused(ledger):
    _, subject = _owned(ledger)
    with pytest.raises(NotOwned, match="user_id=8"):
        ensure_owned(ledger, replace(subject, captured={"user_id": 8}))


@pytest.mark.parametrize(("state", "why"), [("cleaned", "already removed"), ("intended", "never confirmed")])
def test_a_subject_already_removed_or_never_confirmed_is_refused(ledger, state, why):
    _, subject = _owned(ledger, state=state)
    with pytest.raises(NotOwned, match=why):
        ensure_owned(ledger, subject)


def test_a_subject_recorded_for_another_target_is_refused(ledger):
    _, subject = _owned(ledger)
    with pytest.raises(NotOwned, match="on target 'demo', not 'staging'"):
        ensure_owned(ledger, subject, target="staging")


# -- secrets never reach a report -----------------------------------------------------------------

@pytest.fixture
def recording_demo(tmp_path):
    """The demo in this process, noting every session token and verification code it issues."""
    server = DemoServer(DemoConfig(data_dir=tmp_path / "demo-data", admin_token=ADMIN_TOKEN,
                                   sink_url="http://127.0.0.1:9"))
    server.start()
    issued: set[str] = set()
    login, mail = server.app.login, server.app._mail

    def recording_login(*args, **kwargs):
        token, user_id = login(*args, **kwargs)
        issued.add(token)
        return token, user_id

    def recording_mail(db, recipient, subject, body, code=None, request_id=None, at=None):
        if code:
            issued.add(code)
        return mail(db, recipient, subject, body, code=code, request_id=request_id, at=at)

    server.app.login = recording_login
    server.app._mail = recording_mail
    env = {"PRIVACY_CHECKS_DEMO_URL": server.url, "PRIVACY_CHECKS_DEMO_HTTP_URL": server.http_url,
           "PRIVACY_CHECKS_DEMO_DATA": str(server.data_dir), "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": ADMIN_TOKEN,
           "PRIVACY_CHECKS_DEMO_REDIS": f"127.0.0.1:{server.redis_server.port}",
           "PRIVACY_CHECKS_DEMO_S3_URL": server.s3_server.url,
           "PRIVACY_CHECKS_DEMO_SINK": "127.0.0.1:0", "PRIVACY_CHECKS_DEMO_SMTP": "127.0.0.1:0"}
    yield env, issued
    server.stop()
    shutil.rmtree(server.data_dir, ignore_errors=True)


def _occurrences(root: Path, secret: str) -> list[str]:
    # A six-digit code must stand alone (not inside a longer number) and not be the fraction of
    # a timestamp or duration ("…:32.123456"), which would be a coincidence, not a leak.
    pattern = re.compile(rb"(?<![0-9.])" + re.escape(secret.encode()) + rb"(?![0-9])") if secret.isdigit() \
        else re.compile(re.escape(secret.encode()))
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for m in pattern.finditer(path.read_bytes()):
            found.append(f"{path.relative_to(root)} at byte {m.start()}")
    return found


def test_no_secret_of_the_run_appears_in_any_file_under_reports(tmp_path, recording_demo):
    env, issued = recording_demo
    out = tmp_path / "out"
    out.mkdir()
    reports = out / "reports"
    run = run_suites(out, *SUITES, env=env, timeout=300, args=(
        "--target", str(PROFILE), f"--privacy-reports={reports}", f"--junitxml={reports / 'junit.xml'}",
        "-p", "no:hypothesispytest"))
    assert run.results, run.stdout[-3000:] + run.stderr[-3000:]
    assert (reports / "compliance-report.json").exists() and any((reports / "allure-results").iterdir())
    ledger = Ledger(f"sqlite:///{out / 'ledger.sqlite'}")
    try:
        canaries = [s["canary"] for s in ledger.subjects_for("demo")]
    finally:
        ledger.close()
    assert canaries, "the run created no subject, so it handled no password"
    codes = {s for s in issued if s.isdigit()}
    assert codes and issued - codes, f"the demo issued no {'code' if not codes else 'session token'}"
    secrets = {"admin token": [ADMIN_TOKEN], "password": [f"Pw-{c}-9!Xq" for c in canaries],
               "session token": sorted(issued - codes), "verification code": sorted(codes)}
    leaks = [f"{kind} {value[:6]}…: {where}" for kind, values in secrets.items() for value in values
             for where in _occurrences(out, value)]
    assert not leaks, "secrets written to disk:\n" + "\n".join(leaks)
    # Whatever the value, an Authorization header is only ever kept redacted.
    for path in (p for p in out.rglob("*") if p.is_file()):
        for m in re.finditer(rb"(?i)bearer\s+([A-Za-z0-9._~+/=-]{8,})", path.read_bytes()):
            assert m.group(1).startswith(b"[REDACTED") or m.group(1) == b"REDACTED", f"{path}: {m.group(0)!r}"


def test_read_only_checks_create_no_subject_and_send_only_reads(tmp_path):
    demo = DemoProcess(admin_token=ADMIN_TOKEN).start()
    try:
        run = run_suites(tmp_path, "suites", env=demo.env(), timeout=300, args=(
            "-m", "read_only", "--target", str(PROFILE), "--policy", str(ROOT / "fixtures" / "policies" / "mediapro-2019.yaml"),
            "-p", "no:hypothesispytest"))
        seen = counts(demo.url, ADMIN_TOKEN, ca=str(Path(demo.data_dir) / "tls" / "ca.pem"))["requests"]
    finally:
        demo.stop()
    assert run.results, run.stdout[-3000:] + run.stderr[-3000:]
    assert set(run.outcomes().values()) <= {"passed", "not applicable"}, run.outcomes()
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        assert ledger.subjects_for("demo") == []
    finally:
        ledger.close()
    # counted by the demo itself: nothing but reads reached it
    assert seen and all(key.split()[0] in ("GET", "HEAD", "OPTIONS") for key in seen), seen
