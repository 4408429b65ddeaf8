"""A misbehaving target gives a clear error within the profile's timeouts: never a pass, never a hang.

Each fault of the demo (privacy_checks/demo/faults.py) is switched on and the deletion suite
is run against it, as a user would. Most runs use a separately started demo (`--target`) so
that the demo's own request counts (`GET /_faults`) can be read afterwards and prove, from the
target's side, that the framework's retries stayed within their limits; two go through the
plugin's `--demo-fault` end to end.

The time-limited retention check is deselected: it judges holds recorded by earlier runs in
the ledger and sends nothing to the target, so a fault on the target cannot touch it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from privacy_checks.demo.faults import BURST, counts
from privacy_checks.demo.launch import DemoProcess
from privacy_checks.errors import TargetError
from privacy_checks.ledger import Ledger
from privacy_checks.profile import load_profile
from privacy_checks.target import Target
from tests.conftest import ROOT, run_suites

PROFILE = ROOT / "fixtures" / "targets" / "demo.yaml"
MODULE = "suites/ccpa/test_right_to_delete.py"
DESELECT = f"{MODULE}::test_data_kept_for_a_limited_time_is_gone_when_the_period_ends"
DELETION_CHECKS = {"ccpa.delete.request-completes", "ccpa.delete.no-residual-data", "ccpa.delete.account-gone",
                   "ccpa.delete.recipients-notified", "ccpa.delete.others-intact"}
TOKEN = "fault-test-admin-token"
# Plugins that only slow a subprocess down (hypothesis prints a statistics summary).
QUIET = ("-p", "no:hypothesispytest", "--deselect", DESELECT)


@pytest.fixture
def faulty_demo(request):
    """A demo started on its own with one fault, so its counts outlive the run."""
    demos = []

    def start(fault: str) -> DemoProcess:
        demo = DemoProcess(faults=[fault], admin_token=TOKEN).start()
        demos.append(demo)
        return demo

    yield start
    for demo in demos:
        demo.stop()


def _profile(env: dict[str, str], path: Path = PROFILE):
    return load_profile(path, env=env)


def _timeouts(path: Path = PROFILE) -> dict[str, float]:
    return {k: float(v) for k, v in yaml.safe_load(path.read_text())["timeouts"].items()}


def _shorter(tmp_path: Path, *, request: float | None = None, delete_poll: float | None = None) -> Path:
    """The demo profile with shorter waits, so a fault costs the suite seconds, not half a minute."""
    data = yaml.safe_load(PROFILE.read_text())
    if request is not None:
        data["timeouts"]["request"] = request
    if delete_poll is not None:
        for step in data["operations"]["delete"]["steps"]:
            if "completed" in (step.get("poll") or {}).get("until", ""):
                step["poll"]["timeout"] = delete_poll
    path = tmp_path / "demo-shorter.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(tmp_path: Path, *, env: dict | None = None, fault: str | None = None, profile: Path = PROFILE):
    args = QUIET + (("--target", str(profile)) if env else ("--demo-fault", fault))
    t0 = time.monotonic()
    run = run_suites(tmp_path, MODULE, args=args, env=env, timeout=300)
    return run, time.monotonic() - t0


def _demo_counts(demo: DemoProcess) -> dict[str, dict]:
    return counts(demo.url, TOKEN, ca=str(Path(demo.data_dir) / "tls" / "ca.pem"))["requests"]


def _assert_clear(run, wall: float, *, outcome: str, says: list[str], budget: float, profile: Path = PROFILE) -> None:
    """Every deletion check ends as `outcome` with one line naming what was seen, within budget."""
    assert run.results, run.stdout[-3000:] + run.stderr[-3000:]
    assert set(run.results) == DELETION_CHECKS, run.outcomes()
    assert set(run.outcomes().values()) == {outcome}, run.outcomes()
    for check in DELETION_CHECKS:
        message = run.message(check)
        assert len(message.splitlines()) == 1, message
        for part in says:
            assert part in message, f"{check}: {part!r} not in {message!r}"
    assert "Traceback" not in run.stdout + run.stderr, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode == 1
    # Ratio, not a fixed number of seconds: the run may spend what the profile allows for the
    # waits this fault causes, plus one more operation budget for everything else.
    operation = _timeouts(profile)["operation"]
    ratio = wall / (budget + operation)
    assert ratio < 1.0, f"the run took {wall:.1f} s, {ratio:.2f}x the {budget + operation:.0f} s its profile allows"


def _subjects_attempted(tmp_path: Path) -> int:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        return len(ledger.subjects_for("demo"))
    finally:
        ledger.close()


def test_slow_responses_end_as_errors_after_one_request_timeout(tmp_path, faulty_demo):
    demo = faulty_demo("slow_responses")
    profile = _shorter(tmp_path, request=3)
    run, wall = _run(tmp_path, env=demo.env(), profile=profile)
    request_timeout = _timeouts(profile)["request"]
    _assert_clear(run, wall, outcome="error", budget=request_timeout, profile=profile, says=[
        "operation 'create_subject'", f"POST {demo.url}/api/users timed out after {request_timeout:.0f} s"])
    # A POST that timed out may have been carried out: it is never sent again.
    seen = _demo_counts(demo)
    assert seen["POST /api/users"]["seen"] == _subjects_attempted(tmp_path) == 1, seen


def test_a_burst_of_503s_fails_a_post_at_once_and_a_get_recovers_within_its_retries(tmp_path, faulty_demo):
    demo = faulty_demo("burst_5xx")
    profile = _profile(demo.env())
    run, wall = _run(tmp_path, env=demo.env())
    _assert_clear(run, wall, outcome="error", budget=0, says=[
        f"operation 'create_subject' step 1 (POST {demo.url}/api/users): expected status [201], got 503"])
    seen = _demo_counts(demo)
    assert seen["POST /api/users"] == {"seen": 1, "faulted": 1}, seen
    assert _subjects_attempted(tmp_path) == 1
    # An idempotent GET is retried (twice at most) and then gets its answer.
    target = Target(profile)
    try:
        result = target.run("list_requests")
    finally:
        target.close()
    assert result.last.status == 200
    assert _demo_counts(demo)["GET /api/privacy-requests"] == {"seen": BURST + 1, "faulted": BURST}


def test_dropped_connections_end_as_errors_naming_the_url_and_are_not_resent(tmp_path, faulty_demo):
    demo = faulty_demo("dropped_connections")
    profile = _profile(demo.env())
    run, wall = _run(tmp_path, env=demo.env())
    _assert_clear(run, wall, outcome="error", budget=0, says=[
        "operation 'create_subject'", f"cannot reach {demo.url}/api/users", "closed connection without response"])
    assert _demo_counts(demo)["POST /api/users"] == {"seen": 1, "faulted": 1}
    target = Target(profile)
    try:
        with pytest.raises(TargetError, match="/api/privacy-requests"):
            target.run("list_requests")
    finally:
        target.close()
    # within the retry limit (2 retries) even for an idempotent GET
    assert _demo_counts(demo)["GET /api/privacy-requests"]["seen"] <= 3


def test_malformed_json_ends_as_errors_through_the_demo_fault_option(tmp_path):
    run, wall = _run(tmp_path, fault="malformed_json")
    _assert_clear(run, wall, outcome="error", budget=0, says=[
        "operation 'create_subject' step 1 (POST https://127.0.0.1:", "/api/users answered 201): capture 'user_id' "
        "from 'json.id' found nothing; body: {\"id\": "])


def test_a_deletion_that_never_completes_fails_with_the_timeout_and_last_status(tmp_path, faulty_demo):
    demo = faulty_demo("request_never_completes")
    path = _shorter(tmp_path, delete_poll=4)
    profile = _profile(demo.env(), path)
    poll = next(s["poll"] for s in profile.operation("delete")["steps"] if "completed" in s.get("poll", {}).get(
        "until", ""))
    run, wall = _run(tmp_path, env=demo.env(), profile=path)
    # Never completing is the promise broken, not an inability to check.
    _assert_clear(run, wall, outcome="failed", budget=float(poll["timeout"]), profile=path, says=[
        "never completed", "operation 'delete' step 4 (GET", f"still false after {poll['timeout']} s",
        "last status 200", '"status": "processing"'])
    polls = {k: v for k, v in _demo_counts(demo).items() if k.startswith("GET /api/privacy-requests/")}
    assert len(polls) == 1, polls
    # polled at its interval, no faster, and stopped at its timeout
    assert next(iter(polls.values()))["seen"] <= poll["timeout"] / poll["interval"] + 2, polls
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        states = {s["role"]: s["state"] for s in ledger.subjects_for("demo")}
        assert states["subject"] == "awaiting_request", states
        [req] = ledger.open_requests("demo")
        assert req["status"] == "open (last status 200)", req
    finally:
        ledger.close()


def test_a_locked_database_ends_as_errors_through_the_demo_fault_option(tmp_path):
    run, wall = _run(tmp_path, fault="database_locked")
    # The stores' positive control fails: an error for the check that judges the stores. The
    # checks that judge other stages (the request, the account, the recipients) keep the verdict
    # their own evidence supports — each check depends only on the stages it needs — and none
    # of them can fail or pass on the stores' account.
    residual = "ccpa.delete.no-residual-data"
    assert run.results[residual]["outcome"] == "error", run.outcomes()
    message = run.message(residual)
    assert len(message.splitlines()) == 1, message
    for part in ("positive control failed", "never seen in store(s) analytics, app, search"):
        assert part in message, message
    assert set(run.results) == DELETION_CHECKS, run.outcomes()
    assert "failed" not in run.outcomes().values(), run.outcomes()
    assert "Traceback" not in run.stdout + run.stderr
    assert run.returncode == 1
    # One positive-control window, each pass of the sweep bounded by SQLite's busy timeout.
    operation, propagation = _timeouts()["operation"], _timeouts()["propagation"]
    assert wall / (propagation * 3 + operation) < 1.0, f"the run took {wall:.1f} s"


def test_the_demo_refuses_an_unknown_fault_by_name(capsys):
    from privacy_checks.demo.__main__ import main

    assert main(["--data-dir", "/nonexistent", "--admin-token", "x", "--fault", "slow_respones"]) == 2
    assert "unknown demo fault 'slow_respones'" in capsys.readouterr().err
