"""Verdicts that hold: no pass without something examined, one line per not-verified right.

The walk runs every suite against a profile that says as little as a profile can (one store,
no recipients, no export, no optional operation) and holds every check id to the rule: a
*passed* outcome carries a positive count of what it examined. The rule itself lives in the
outcome model (outcomes.examined, enforced by the plugin), so these tests also run it on a
check written without any knowledge of the demo.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import yaml

from conftest import ROOT, run_suites
from privacy_checks.demo.launch import DemoProcess

NOTIFIED = {"ccpa.delete.recipients-notified", "gdpr.erasure.recipients-notified"}

MINIMAL = """\
# The least a profile can say: one store, no recipients, no export, no optional operation.
name: minimal-demo
base_url: ${PRIVACY_CHECKS_DEMO_URL}
allowed_hosts: [127.0.0.1]
tls:
  ca_bundle: ${PRIVACY_CHECKS_DEMO_DATA}/tls/ca.pem
auth:
  admin: {type: bearer, token: "${PRIVACY_CHECKS_DEMO_ADMIN_TOKEN}"}
  subject: {type: bearer, token: "{{ captured.token }}"}
subject:
  fields: [full_name, email, username, password]
timeouts: {propagation: 5}
operations:
  create_subject:
    steps:
      - method: POST
        path: /api/users
        json: {full_name: "{{ subject.full_name }}", email: "{{ subject.email }}",
               username: "{{ subject.username }}", password: "{{ subject.password }}"}
        expect: [201]
        capture: {user_id: json.id}
  login:
    steps:
      - method: POST
        path: /api/login
        json: {username: "{{ subject.username }}", password: "{{ subject.password }}"}
        expect: [200]
        capture: {token: json.token}
  delete:
    steps:
      - method: POST
        path: /api/privacy-requests
        auth: subject
        json: {type: delete, user_id: "{{ captured.user_id }}"}
        expect: [202]
        capture: {request_id: json.id}
      - method: GET
        path: /api/outbox
        auth: admin
        query: {to: "{{ subject.email }}", request_id: "{{ captured.request_id }}"}
        poll: {until: "json.messages.0.code != null", interval: 0.2, timeout: 20}
        capture: {code: json.messages.0.code}
      - method: POST
        path: /api/privacy-requests/{{ captured.request_id }}/verify
        auth: subject
        json: {code: "{{ captured.code }}"}
      - method: GET
        path: /api/privacy-requests/{{ captured.request_id }}
        auth: admin
        poll: {until: "json.status == 'completed'", interval: 0.2, timeout: 30}
  cleanup:
    steps:
      - method: DELETE
        path: /api/admin/users/{{ captured.user_id }}
        auth: admin
        expect: [204, 404]
stores:
  - name: app
    url: sqlite:///${PRIVACY_CHECKS_DEMO_DATA}/app.sqlite
retention_exceptions:
  - {store: app, table: outbox, column: recipient, field: email, form: exact,
     legal_basis: "11 CCR §7101(a)", reason: "record of the consumer's request and of our response"}
"""


def all_check_ids() -> set[str]:
    """Every check id the suites define (`@pytest.mark.check(...)`, or the transport suite's `@security(...)`)."""
    ids: set[str] = set()
    for path in (ROOT / "suites").rglob("test_*.py"):
        ids |= set(re.findall(r"""(?:mark\.check|^@security)\(\s*["']([^"']+)["']""", path.read_text(), re.M))
    return ids


def test_no_check_passes_with_nothing_examined_against_a_minimal_profile(tmp_path, standalone_demo):
    profile = tmp_path / "minimal.yaml"
    profile.write_text(MINIMAL)
    run = run_suites(tmp_path, "suites", args=("--target", str(profile)), env=standalone_demo)
    ids = all_check_ids()
    assert len(ids) > 50
    assert set(run.results) == ids, sorted(ids ^ set(run.results))
    passed = {k for k, v in run.results.items() if v["outcome"] == "passed"}
    assert passed, run.outcomes()  # the walk must exercise the rule on real passes too
    for check_id, result in run.results.items():
        if result["outcome"] == "passed":
            assert any(n > 0 for n in result["examined"].values()), (check_id, result)
        assert "Traceback" not in result["message"] and 'File "' not in result["message"], result["message"]
    # No recipient declared and none stated absent: not verified, saying what to declare.
    for check_id in NOTIFIED | {"transport.recipients.https", "ccpa.sale.nothing-sold"}:
        assert run.results[check_id]["outcome"] == "not verified", (check_id, run.results[check_id])
        assert "declare every service provider" in run.message(check_id)
        assert "lacks.recipients" in run.message(check_id)
    # The probes after the deletion (the login) run with the subject's captures.
    for check_id in ("ccpa.delete.account-gone", "ccpa.delete.no-residual-data"):
        assert run.results[check_id]["outcome"] == "passed", run.results[check_id]
    # A profile silent about an optional operation: not verified, not an error.
    assert run.results["ccpa.opt-out.sharing-stops"]["outcome"] == "not verified"
    assert run.results["ccpa.know.categories-disclosed"]["outcome"] == "not verified"
    report = json.loads((tmp_path / "reports" / "compliance-report.json").read_text())
    shown = {c["check_id"]: c["examined"] for c in report["checks"]}
    for check_id in passed:
        assert shown[check_id] == run.results[check_id]["examined"]


def test_a_profile_stating_no_recipients_makes_the_recipient_checks_not_applicable(tmp_path, standalone_demo):
    profile = tmp_path / "minimal.yaml"
    reason = "a self-hosted service that discloses personal data to no one"
    profile.write_text(MINIMAL + f"lacks:\n  recipients: {reason}\n")
    run = run_suites(tmp_path, "suites/ccpa/test_right_to_delete.py", "suites/gdpr/test_right_to_erasure.py",
                     "suites/transport/test_encryption_in_transit.py", args=("--target", str(profile)),
                     env=standalone_demo)
    for check_id in NOTIFIED | {"transport.recipients.https"}:
        assert run.results[check_id]["outcome"] == "not applicable", run.results[check_id]
        assert reason in run.message(check_id)
    html = (tmp_path / "reports" / "compliance-report.html").read_text()
    assert reason in html


def _write_check(tmp_path: Path, body: str) -> Path:
    test = tmp_path / "test_rule.py"
    test.write_text(textwrap.dedent('''\
        import pytest
        from privacy_checks.outcomes import examined


        # privacy_run: a test is a privacy check with a check marker and the framework's fixtures
        @pytest.mark.check("example.rule.looks-at-nothing")
        def test_a_check_that_looks_at_nothing(privacy_run):
            pass


        @pytest.mark.check("example.rule.looks-at-something")
        def test_a_check_that_looks_at_something(privacy_run):
            examined("rows read", 3)
        ''') + body)
    return test


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args,
                           f"--privacy-results={tmp_path / 'r.json'}", f"--privacy-reports={tmp_path / 'reports'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_pass_that_examined_nothing_is_not_verified_whatever_the_check(tmp_path):
    _write_check(tmp_path, "")
    proc = _pytest(tmp_path, "test_rule.py", "-q")
    results = {c["check_id"]: c for c in json.loads((tmp_path / "r.json").read_text())["checks"]}
    nothing = results["example.rule.looks-at-nothing"]
    assert nothing["outcome"] == "not verified", nothing
    assert "examined nothing" in nothing["message"]
    something = results["example.rule.looks-at-something"]
    assert something["outcome"] == "passed" and something["examined"] == {"rows read": 3}
    assert proc.returncode == 0, proc.stdout
    evidence_free = json.loads((tmp_path / "reports" / "compliance-report.json").read_text())
    assert {c["check_id"]: c["examined"] for c in evidence_free["checks"]}["example.rule.looks-at-something"] == {
        "rows read": 3}

    # --fail-not-verified: each one fails the run, listed with its reason on one line
    proc = _pytest(tmp_path, "test_rule.py", "-q", "--fail-not-verified")
    assert proc.returncode == 1
    assert "NOT VERIFIED: the check found nothing wrong but examined nothing" in proc.stdout
    assert "Traceback" not in proc.stdout and "def test_a_check_that_looks_at_nothing" not in proc.stdout


def test_not_offered_reaches_every_check_of_the_right_one_line_each(tmp_path, standalone_demo):
    """`not_offered: {know, delete, opt_out}`: every check of those rights, without a traceback."""
    profile = tmp_path / "minimal.yaml"
    profile.write_text(MINIMAL + "not_offered:\n  know: the target keeps no personal data\n"
                                 "  delete: accounts cannot be removed\n  opt_out: it never sells or shares\n")
    suites = ("suites/ccpa/test_right_to_know.py", "suites/ccpa/test_right_to_delete.py",
              "suites/gdpr/test_right_of_access.py", "suites/ccpa/test_opt_out.py")
    run = run_suites(tmp_path, *suites, args=("--target", str(profile), "--fail-not-verified"),
                     env=standalone_demo)
    know = {k for k in run.results if k.startswith(("ccpa.know.", "gdpr.access."))}
    delete = {k for k in run.results if k.startswith("ccpa.delete.")}
    assert len(know) == 9 and len(delete) == 6
    for check_id in know | delete:
        assert run.results[check_id]["outcome"] == "not verified", run.results[check_id]
        reason = "keeps no personal data" if check_id in know else "accounts cannot be removed"
        assert reason in run.message(check_id)
        assert "NOT VERIFIED: the profile says the target cannot drive" in run.message(check_id)
    for check_id in ("ccpa.opt-out.sharing-stops", "ccpa.opt-out.no-verification"):
        assert run.results[check_id]["outcome"] == "not applicable", run.results[check_id]
        assert "it never sells or shares" in run.message(check_id)
    assert run.returncode == 1
    assert "Traceback" not in run.stdout and "privacy_checks.outcomes.NotVerified" not in run.stdout
    # the short summary lists each one; the failures section gives each reason on one line
    summary = [line for line in run.stdout.splitlines() if line.startswith("NOT VERIFIED suites/")]
    assert len(summary) == len(know | delete), run.stdout[-3000:]
    reasons = [line for line in run.stdout.splitlines() if line.startswith("NOT VERIFIED: the profile says")]
    assert len(reasons) == len(know | delete), run.stdout[-3000:]


# -- a demo started by hand, as a real target would be -------------------------------------------

@contextmanager
def demo_process(tmp_path: Path, *flaws: str, sink_url: str = "http://127.0.0.1:9", smtp_url: str | None = None):
    """The demo as its own process (flaws switched on), and the environment its profile needs
    (the launcher's own list, so a new variable the demo profile names is never missing here)."""
    demo = DemoProcess(flaws=list(flaws), sink_url=sink_url, data_dir=str(tmp_path / "demo-data"),
                       admin_token="verdicts-admin-token", smtp_url=smtp_url).start()
    try:
        yield demo.env()
    finally:
        demo.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_profile(tmp_path: Path, **changes) -> Path:
    profile = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    profile.update(changes)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def test_the_capture_server_listens_where_the_profile_says_so_a_missing_notice_fails(tmp_path):
    """capture.bind is honoured: the demo delivers there, and a deletion without notices fails.
    The demo's newsletter is a recipient reached by mail, so the SMTP capture is bound too."""
    port, smtp_port = _free_port(), _free_port()
    with demo_process(tmp_path, "no_downstream_delete", sink_url=f"http://127.0.0.1:{port}",
                      smtp_url=f"smtp://127.0.0.1:{smtp_port}") as env:
        profile = _demo_profile(tmp_path, capture={"bind": f"127.0.0.1:{port}",
                                                   "advertised_url": f"http://127.0.0.1:{port}",
                                                   "smtp": {"bind": f"127.0.0.1:{smtp_port}"}})
        run = run_suites(tmp_path, "suites/ccpa/test_right_to_delete.py", args=("--target", str(profile)), env=env)
    assert run.results["ccpa.delete.recipients-notified"]["outcome"] == "failed", run.results
    assert "no deletion notice" in run.message("ccpa.delete.recipients-notified")


def test_a_declared_recipient_never_reached_is_an_error_that_voids_only_the_recipients_check(tmp_path):
    """Deliveries go nowhere we listen: the recipients' positive control fails (error, saying where
    the capture server listens); the checks of the stores still hold their verdicts."""
    with demo_process(tmp_path, "no_downstream_delete", "soft_delete") as env:
        run = run_suites(tmp_path, "suites/ccpa/test_right_to_delete.py", args=("--target", str(_demo_profile(
            tmp_path)),), env=env)
    notified = run.results["ccpa.delete.recipients-notified"]
    assert notified["outcome"] == "error", notified
    assert "never received the subject" in notified["message"] and "capture server listens" in notified["message"]
    assert run.results["ccpa.delete.no-residual-data"]["outcome"] == "failed", run.results
    assert "app: table users" in run.message("ccpa.delete.no-residual-data")


def test_a_target_that_stops_answering_after_the_sweep_keeps_the_residual_data_verdict(tmp_path):
    """The account probes (after the request) reach a dead address: only the checks that judge
    them are errors; residual data seen after the barrier is still a failure."""
    dead = f"https://127.0.0.1:{_free_port()}"
    with demo_process(tmp_path, "soft_delete") as env:
        profile = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
        profile["operations"]["read_subject"]["steps"][0]["path"] = dead + "/api/users/{{ captured.user_id }}"
        path = tmp_path / "dying.yaml"
        path.write_text(yaml.safe_dump({**profile, "sinks": [], "lacks": {"recipients": "none in this test"}},
                                       sort_keys=False))
        run = run_suites(tmp_path, "suites/ccpa/test_right_to_delete.py", args=("--target", str(path)), env=env)
    outcomes = run.outcomes()
    assert outcomes["ccpa.delete.no-residual-data"] == "failed", run.results
    assert "app: table users" in run.message("ccpa.delete.no-residual-data")
    assert outcomes["ccpa.delete.request-completes"] == "passed"
    for check_id in ("ccpa.delete.account-gone", "ccpa.delete.others-intact"):
        assert outcomes[check_id] == "error", run.results[check_id]
        assert "cannot reach" in run.message(check_id)


def test_a_dead_target_is_an_error_for_every_probe_that_needs_it(tmp_path):
    """Nothing listens at base_url: the read-only transport probes cannot pass for a dead target."""
    port, http_port = _free_port(), _free_port()
    profile = tmp_path / "dead.yaml"
    profile.write_text(f"name: dead\nbase_url: https://127.0.0.1:{port}\nallowed_hosts: [127.0.0.1]\n"
                       f"transport: {{http_url: 'http://127.0.0.1:{http_port}'}}\n")
    run = run_suites(tmp_path, "suites/transport/test_encryption_in_transit.py", args=("--target", str(profile),
                                                                                       "-m", "read_only"))
    for check_id in ("transport.http.redirect-only", "transport.https.hsts", "transport.tls.legacy-versions-refused",
                     "transport.tls.certificate-trusted"):
        assert run.results[check_id]["outcome"] == "error", run.results[check_id]


def test_the_at_rest_checks_run_on_a_plain_http_target(tmp_path):
    """No TLS: every in-transit check fails for that reason, the at-rest checks still judge the stores."""
    with demo_process(tmp_path, "plaintext_http") as env:
        profile = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
        path = tmp_path / "plain.yaml"
        path.write_text(yaml.safe_dump({**profile, "base_url": "${PRIVACY_CHECKS_DEMO_HTTP_URL}"}, sort_keys=False))
        run = run_suites(tmp_path, "suites/transport/test_secrets_at_rest.py",
                         "suites/transport/test_encryption_in_transit.py", args=("--target", str(path)), env=env)
    assert run.results["transport.https.personal-data-encrypted"]["outcome"] == "failed"
    for check_id in ("transport.rest.password-hashed", "transport.rest.no-personal-data-in-logs"):
        assert run.results[check_id]["outcome"] == "passed", run.results[check_id]
        assert run.results[check_id]["examined"]


def test_a_password_key_alone_is_evidence_a_disclosed_hash_of_the_password_fails(suite_runner, tmp_path):
    """The clean demo's export says `"password": "[held as a salted hash; not disclosed]"`, as
    11 CCR §7024(d) asks: shown as supporting evidence, not a failure (the flaw
    export_includes_password, whose export carries the salted hash itself, fails: see
    test_access_suites.py)."""
    run = suite_runner("suites/ccpa/test_right_to_know.py")
    check = "ccpa.know.nothing-forbidden-disclosed"
    assert run.results[check]["outcome"] == "passed", run.results[check]
    evidence = json.loads((tmp_path / "reports" / "evidence" / f"{check}.json").read_text())
    judged = next(s for s in evidence["evidence"]["stages"] if s["stage"] == "export judged")
    assert any(key.endswith("key user.password") for key in judged["keys_named_like_forbidden_items"]), judged
    assert run.results[check]["examined"]["fields never to be disclosed, looked for by value"] >= 1


def test_an_export_without_categories_or_verification_is_a_verdict_not_an_error(tmp_path):
    """Silent profile: not verified, saying what to declare. A profile stating the target lacks
    them: failed, since the law requires both."""
    suites = ("suites/ccpa/test_right_to_know.py",)
    checks = ("ccpa.know.categories-disclosed", "ccpa.know.verified-requester-only")
    with demo_process(tmp_path) as env:
        profile = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
        for op in ("request_access", "fetch_code", "verify_request"):
            del profile["operations"][op]
        del profile["export"]["categories"]
        silent = tmp_path / "silent.yaml"
        silent.write_text(yaml.safe_dump(profile, sort_keys=False))
        stating = tmp_path / "stating.yaml"
        stating.write_text(yaml.safe_dump({**profile, "lacks": {
            "export_categories": "the export is the raw account record", "verification": "anyone may ask"}},
            sort_keys=False))
        (tmp_path / "silent").mkdir()
        (tmp_path / "stating").mkdir()
        quiet = run_suites(tmp_path / "silent", *suites, args=("--target", str(silent)), env=env)
        said = run_suites(tmp_path / "stating", *suites, args=("--target", str(stating)), env=env)
    for check_id in checks:
        assert quiet.results[check_id]["outcome"] == "not verified", quiet.results[check_id]
        assert said.results[check_id]["outcome"] == "failed", said.results[check_id]
    assert "export.categories" in quiet.message(checks[0]) and "lacks.export_categories" in quiet.message(checks[0])
    assert "the export is the raw account record" in said.message(checks[0])
    assert "anyone may ask" in said.message(checks[1]) and "7060" in said.message(checks[1])


def test_an_opt_out_is_judged_for_verification_even_when_no_recipient_can_be_observed(tmp_path):
    """Deliveries go nowhere we listen: whether sharing stops cannot be judged (error), but the
    opt-out request itself — made with the subject's own session only — still is."""
    with demo_process(tmp_path) as env:
        run = run_suites(tmp_path, "suites/ccpa/test_opt_out.py", args=("--target", str(_demo_profile(tmp_path))),
                         env=env)
    assert run.results["ccpa.opt-out.sharing-stops"]["outcome"] == "error", run.results
    verification = run.results["ccpa.opt-out.no-verification"]
    assert verification["outcome"] == "passed", verification
    assert verification["examined"] == {"requests made with the subject's own session": 1}
