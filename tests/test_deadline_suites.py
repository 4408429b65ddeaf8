"""The response-deadline suites pass on the clean demo, fail — naming the request and how many days
late — with each deadline flaw on, and judge a request across runs on injected days."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from privacy_checks.demo.launch import DemoProcess
from privacy_checks.flows.deadlines import ENV_NOW, now_from_env
from privacy_checks.ledger import SCHEMA_VERSION, Ledger
from privacy_checks.outcomes import CheckError
from privacy_checks.runtime import demo_profile_path

SUITES = ("suites/ccpa/test_response_deadlines.py", "suites/gdpr/test_response_deadlines.py")
ACK = "ccpa.deadlines.acknowledge-10-business-days"
RESPOND = "ccpa.deadlines.respond-45-days"
OPT_OUT = "ccpa.deadlines.opt-out-15-business-days"
GDPR = "gdpr.deadlines.respond-one-month"
REQUEST_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def standalone_demo(tmp_path):
    """One demo that outlives several runs, as a real target would."""
    demo = DemoProcess(data_dir=str(tmp_path / "demo-data")).start()
    yield demo
    demo.stop()


def test_clean_demo_passes_every_deadline_check(suite_runner):
    run = suite_runner(*SUITES)
    assert run.returncode == 0, run.stdout[-3000:]
    assert run.outcomes() == {ACK: "passed", RESPOND: "passed", OPT_OUT: "passed", GDPR: "passed"}


@pytest.mark.parametrize(("flaw", "expected", "where"), [
    ("overdue_requests", {RESPOND, OPT_OUT, GDPR}, rf"target log request {REQUEST_ID} \(\w+\): open \d+ days? past due"),
    # the demo's profile reads the acknowledgement from the mail the subject received
    ("no_acknowledgement", {ACK}, rf"ledger request {REQUEST_ID} \(access\): not acknowledged, \d+ days? past due"
                                  r".*no receipt mail to the subject reached the SMTP capture"),
    ("extension_without_notice", {RESPOND, GDPR},
     rf"target log request {REQUEST_ID} \(access\): open \d+ days? past due .*extension without notice"),
])
def test_each_deadline_flaw_fails_exactly_its_checks_naming_the_request_and_days_late(suite_runner, flaw, expected,
                                                                                     where):
    run = suite_runner(*SUITES, flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failing() == expected, run.outcomes()
    for check in expected:
        assert run.results[check]["outcome"] == "failed"
        assert re.search(where, run.message(check)), run.message(check)
    if OPT_OUT in expected:
        assert "11 CCR §7026(f)" in run.message(OPT_OUT)


def test_a_request_passes_as_pending_on_one_day_and_fails_as_overdue_on_a_later_one(tmp_path, standalone_demo):
    from tests.conftest import run_suites

    ledger_file = tmp_path / "ledger.sqlite"
    day1 = datetime.now(UTC)
    reports = tmp_path / "reports-day1"
    first = run_suites(tmp_path, SUITES[0], env=standalone_demo.env(),
                       args=("--target", str(demo_profile_path()), f"--privacy-reports={reports}"))
    assert first.outcomes()[RESPOND] == "passed", first.stdout[-3000:]
    # the pass says what it rests on: requests not late yet, not requests answered in time
    assert any("still inside their deadline (pending): not late yet, not shown answered in time" in r
               for r in first.results[RESPOND]["remarks"]), first.results[RESPOND]
    ledger = Ledger(f"sqlite:///{ledger_file}")
    pending = [r for r in ledger.open_requests("demo") if r["kind"] == "access"]
    assert len(pending) == 1, pending
    request_id, subject_id = pending[0]["request_id"], pending[0]["subject_id"]
    assert ledger.subject(subject_id)["state"] == "awaiting_request"
    evidence = json.loads((reports / "evidence" / f"{RESPOND}.json").read_text())["evidence"]
    shown = [line for stage in evidence["stages"] for line in stage.get("pending", [])]
    assert any(line.startswith(f"ledger request {request_id} (access): pending, due ") for line in shown), shown

    # 20 days back-dated, due 45 days after receipt: 30 days on, it is 5 days late
    day2 = day1 + timedelta(days=30)
    second = run_suites(tmp_path, SUITES[0], env={**standalone_demo.env(), ENV_NOW: day2.isoformat()},
                        args=("--target", str(demo_profile_path())))
    assert second.outcomes()[RESPOND] == "failed", second.stdout[-3000:]
    message = second.message(RESPOND)
    assert f"ledger request {request_id} (access): open 5 days past due" in message, message
    row = next(r for r in _all_requests(ledger) if r["request_id"] == request_id)
    assert row["judgement"] == "failed"
    # judged at last, its subject is removed from the target and the ledger says so
    assert ledger.subject(subject_id)["state"] == "cleaned"
    ledger.close()


def _all_requests(ledger) -> list[dict]:
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(ledger.requests.select()).mappings().all()]


def test_impossible_dates_in_the_ledger_fail_naming_the_request_and_field(tmp_path, standalone_demo):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    received = datetime.now(UTC) - timedelta(days=3)
    bad_order = ledger.record_request(run_id="run-earlier", subject_id=None, target="demo", regime="ccpa",
                                      kind="delete", request_id="00000000-0000-4000-8000-000000000001",
                                      received_at=received, status="completed")
    ledger.update_request(bad_order, completed_at=(received - timedelta(days=2)).isoformat())
    no_zone = ledger.record_request(run_id="run-earlier", subject_id=None, target="demo", regime="ccpa",
                                    kind="access", request_id="00000000-0000-4000-8000-000000000002",
                                    received_at=received, status="open")
    ledger.update_request(no_zone, received_at="2026-01-05T09:00:00")
    ledger.close()
    run = run_suites_for(tmp_path, standalone_demo)
    message = run.message(RESPOND)
    assert run.outcomes()[RESPOND] == "failed", run.stdout[-3000:]
    assert re.search(r"ledger request 00000000-0000-4000-8000-000000000001 \(delete\): impossible record: "
                     r"completed_at \S+ is before received_at", message), message
    assert ("ledger request 00000000-0000-4000-8000-000000000002 (access): impossible record: "
            "received_at 2026-01-05T09:00:00 has no time zone") in message, message


def run_suites_for(tmp_path, demo, env=None):
    from tests.conftest import run_suites

    return run_suites(tmp_path, SUITES[0], args=("--target", str(demo_profile_path())),
                      env={**demo.env(), **(env or {})})


def test_a_corrupt_ledger_is_a_clear_error_not_a_pass(tmp_path, standalone_demo):
    (tmp_path / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    run = run_suites_for(tmp_path, standalone_demo)
    assert run.returncode != 0
    assert set(run.outcomes().values()) == {"error"}, run.outcomes()
    assert "corrupt" in run.message(RESPOND), run.message(RESPOND)


def test_a_ledger_from_a_newer_version_is_a_clear_error(tmp_path, standalone_demo):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    with ledger.engine.begin() as conn:
        conn.execute(ledger.meta.update().values(value=str(SCHEMA_VERSION + 1)))
    ledger.close()
    run = run_suites_for(tmp_path, standalone_demo)
    assert set(run.outcomes().values()) == {"error"}, run.outcomes()
    assert "newer privacy-checks" in run.message(RESPOND), run.message(RESPOND)


@pytest.mark.parametrize(("raw", "expected"), [
    ("", None),
    ("2026-03-01T12:00:00+01:00", datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
    ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
])
def test_injected_now_is_read_with_its_zone(raw, expected):
    now = now_from_env({ENV_NOW: raw})
    assert now == expected if expected else abs(now - datetime.now(UTC)) < timedelta(seconds=5)


def test_injected_now_without_a_zone_names_the_variable():
    with pytest.raises(CheckError, match=f"{ENV_NOW}='2026-03-01T12:00:00' has no time zone"):
        now_from_env({ENV_NOW: "2026-03-01T12:00:00"})


def test_injected_now_that_is_not_a_date_names_the_variable():
    with pytest.raises(CheckError, match=f"{ENV_NOW}='yesterday' is not an ISO 8601 date-time"):
        now_from_env({ENV_NOW: "yesterday"})


def test_acknowledgements_read_from_mail_are_an_error_when_no_mail_reaches_the_capture(tmp_path, standalone_demo):
    """The demo's profile reads receipts from mail; a demo that mails nothing (started without an
    SMTP server) leaves the capture blind: the acknowledgement check cannot be made, which is an
    error, never a failure and never a pass; the other deadline checks do not need mail."""
    from tests.conftest import run_suites

    run = run_suites(tmp_path, SUITES[0], env=standalone_demo.env(), args=("--target", str(demo_profile_path())))
    outcomes = run.outcomes()
    assert outcomes[ACK] == "error", run.stdout[-3000:]
    assert "positive control failed: no mail at all to the control subject" in run.message(ACK)
    assert outcomes[RESPOND] == "passed" and outcomes[OPT_OUT] == "passed", outcomes


@pytest.mark.parametrize("flaw", [None, "no_acknowledgement"])
def test_without_mail_the_acknowledgement_is_judged_from_the_targets_request_log(tmp_path, flaw):
    """A profile with no read_acknowledgement operation: the acknowledgement is what the target's
    own request record says (acknowledged_at), judged the same way as the mail is."""
    import yaml

    from tests.conftest import run_suites

    profile = yaml.safe_load(demo_profile_path().read_text())
    del profile["operations"]["read_acknowledgement"]
    path = tmp_path / "no-mail.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    demo = DemoProcess(data_dir=str(tmp_path / "demo-data"), flaws=[flaw] if flaw else []).start()
    try:
        run = run_suites(tmp_path, SUITES[0], env=demo.env(), args=("--target", str(path)))
    finally:
        demo.stop()
    if flaw is None:
        assert run.outcomes()[ACK] == "passed", run.stdout[-3000:]
        return
    assert run.failing() == {ACK}, run.outcomes()
    message = run.message(ACK)
    assert re.search(rf"request {REQUEST_ID} \(access\): not acknowledged, \d+ days? past due", message), message
    assert "SMTP capture" not in message, message
