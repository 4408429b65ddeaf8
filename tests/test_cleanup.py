"""Interrupted runs leave their subjects in the ledger; cleanup removes them, never a live run's.

A separately started demo (`privacy-checks demo`) outlives the killed test runs, as a real
target would.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from privacy_checks.ledger import Ledger
from privacy_checks.observe.forms import MARKER

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "fixtures" / "targets" / "demo.yaml"


def _interruptible() -> None:
    """The run starts as one a user can interrupt: SIGINT at its default and not blocked. A child
    inherits its parent thread's signal mask and ignored signals, and this test's parent is a
    pytest-xdist worker: in parallel runs (never alone) the interrupted run went on for its whole
    sleep, as if SIGINT had not arrived."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_sleeper(tmp_path, env, ledger_url, lease="3"):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "tests/data/sleeper_check.py", "-q", "-s", "-p", "no:cacheprovider",
         "--target", str(PROFILE), "--ledger", ledger_url, "--lease-seconds", lease, "--privacy-results="],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, **env}, preexec_fn=_interruptible)
    deadline = time.monotonic() + 60
    out = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        out.append(line)
        if "SUBJECTS-CREATED" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("sleeper never created its subjects:\n" + "".join(out))


def _wait_for_exit(proc, timeout: float = 120) -> None:
    """The interrupted run tears down (removing its subjects through the target) and writes its
    reports; under a loaded parallel test run that took more than the 30 s once allowed. Its
    output is read meanwhile (a full pipe would block it), and shown if it does not end."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"the interrupted run did not end within {timeout:.0f} s:\n{out[-4000:]}") from None


def _users_with_marker(data_dir: str) -> int:
    con = sqlite3.connect(f"file:{data_dir}/app.sqlite?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM users WHERE email LIKE ?", (f"%{MARKER}%",)).fetchone()[0]
    finally:
        con.close()


def _cleanup(env, ledger_url):
    return subprocess.run([sys.executable, "-m", "privacy_checks.cli", "cleanup", "--target", str(PROFILE),
                           "--ledger", ledger_url], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_subjects_of_an_interrupted_run_are_removed_by_cleanup(tmp_path, standalone_demo, sig):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    sleeper = _start_sleeper(tmp_path, standalone_demo, ledger_url)
    os.killpg(sleeper.pid, sig)
    _wait_for_exit(sleeper)
    data = standalone_demo["PRIVACY_CHECKS_DEMO_DATA"]
    ledger = Ledger(ledger_url)
    # SIGINT lets pytest tear down and remove its own subjects; SIGKILL leaves them behind.
    if sig == signal.SIGKILL:
        assert _users_with_marker(data) == 2
        assert [s["state"] for s in ledger.subjects_for("demo")] == ["created", "created"]
        assert ledger.orphans("demo") == []  # the lease has not expired yet
    time.sleep(3.5)  # the killed run's lease expires
    result = _cleanup(standalone_demo, ledger_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _users_with_marker(data) == 0
    assert ledger.orphans("demo") == []


def test_cleanup_never_touches_a_live_runs_subjects(tmp_path, standalone_demo):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    sleeper = _start_sleeper(tmp_path, standalone_demo, ledger_url, lease="4")
    try:
        result = _cleanup(standalone_demo, ledger_url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "removed 0 subject(s)" in result.stdout
        assert _users_with_marker(standalone_demo["PRIVACY_CHECKS_DEMO_DATA"]) == 2
    finally:
        os.killpg(sleeper.pid, signal.SIGKILL)
        sleeper.wait(timeout=30)
    time.sleep(4.5)
    result = _cleanup(standalone_demo, ledger_url)
    assert "removed 2 subject(s)" in result.stdout, result.stdout + result.stderr
    assert _users_with_marker(standalone_demo["PRIVACY_CHECKS_DEMO_DATA"]) == 0


def test_cleanup_refuses_a_record_whose_canaries_do_not_match_the_ledger(tmp_path, standalone_demo):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    sleeper = _start_sleeper(tmp_path, standalone_demo, ledger_url)
    os.killpg(sleeper.pid, signal.SIGKILL)
    sleeper.wait(timeout=30)
    ledger = Ledger(ledger_url)
    victim = ledger.subjects_for("demo")[0]
    # The id now belongs to somebody else: the record no longer carries the ledger's canaries.
    url = standalone_demo["PRIVACY_CHECKS_DEMO_URL"]
    ca = Path(standalone_demo["PRIVACY_CHECKS_DEMO_DATA"]) / "tls" / "ca.pem"
    headers = {"Authorization": f"Bearer {standalone_demo['PRIVACY_CHECKS_DEMO_ADMIN_TOKEN']}"}
    resp = requests.patch(f"{url}/api/users/{victim['captured']['user_id']}", verify=str(ca), timeout=10,
                          headers=headers, json={k: "Real Person" for k in ("full_name", "username", "company",
                                                 "department", "postal_address", "chat_username",
                                                 "custom_field")} | {"email": "real.person@example.org"})
    assert resp.status_code == 200, resp.text
    time.sleep(3.5)
    result = _cleanup(standalone_demo, ledger_url)
    assert "refused" in result.stdout and victim["canary"] in result.stdout, result.stdout
    resp = requests.get(f"{url}/api/users/{victim['captured']['user_id']}", verify=str(ca), timeout=10,
                        headers=headers)
    assert resp.status_code == 200  # the record that no longer matches was left alone
