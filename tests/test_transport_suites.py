"""The transport suites pass on the clean demo and fail — naming where — with each flaw on."""

from __future__ import annotations

import pytest
import yaml

from privacy_checks.demo.launch import DemoProcess
from tests.conftest import ROOT

SUITES = ("suites/transport/test_encryption_in_transit.py", "suites/transport/test_secrets_at_rest.py")
IN_TRANSIT = {
    "transport.https.personal-data-encrypted", "transport.http.redirect-only", "transport.https.hsts",
    "transport.tls.legacy-versions-refused", "transport.tls.certificate-trusted", "transport.cookies.secure",
    "transport.urls.no-personal-data", "transport.recipients.https",
}
AT_REST = {"transport.rest.password-hashed", "transport.rest.no-personal-data-in-logs"}
READ_ONLY = {"transport.http.redirect-only", "transport.https.hsts", "transport.tls.legacy-versions-refused",
             "transport.tls.certificate-trusted"}


def test_clean_demo_passes_every_transport_check(suite_runner):
    run = suite_runner(*SUITES)
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.results) == IN_TRANSIT | AT_REST
    assert set(run.outcomes().values()) == {"passed"}, {k: run.message(k)[:300] for k in run.failing()}


@pytest.mark.parametrize(("flaw", "check", "where"), [
    ("plaintext_http", "transport.http.redirect-only",
     ["/ answered 200 instead of a permanent redirect (301/308)"]),
    ("no_hsts", "transport.https.hsts", ["/: no Strict-Transport-Security header"]),
    ("weak_tls", "transport.tls.legacy-versions-refused",
     ["accepts deprecated protocol version(s): TLS 1.0 (negotiated TLSv1 ", "TLS 1.1 (negotiated TLSv1.1 "]),
    ("insecure_cookies", "transport.cookies.secure", ["cookie 'session' (path /) lacks Secure, HttpOnly, SameSite"]),
    ("pii_in_url", "transport.urls.no-personal-data",
     ["Location header answering POST /api/users: /api/users/", "?email=", "field email (exact)"]),
    ("plaintext_webhooks", "transport.recipients.https",
     ["crm (service_provider) POST /crm/contacts at", "delivered over http://, not https"]),
    ("plaintext_password", "transport.rest.password-hashed",
     ["app: table users, column password_hash, row id=", "field password (exact)"]),
    ("pii_in_logs", "transport.rest.no-personal-data-in-logs", ["logs: file ", "app.log, line", "email (exact"]),
])
def test_each_transport_flaw_fails_exactly_its_check_naming_where(suite_runner, flaw, check, where):
    run = suite_runner(*SUITES, flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert run.failing() == {check}, {k: run.message(k)[:300] for k in run.failing()}
    assert run.results[check]["outcome"] == "failed"
    for text in where:
        assert text in run.message(check), run.message(check)


def test_an_untrusted_certificate_fails_the_certificate_check_and_nothing_passes_on_trust(suite_runner):
    run = suite_runner(*SUITES, flaws=("untrusted_cert",))
    assert run.returncode == 1
    check = "transport.tls.certificate-trusted"
    assert run.results[check]["outcome"] == "failed"
    assert "certificate not trusted for 127.0.0.1" in run.message(check)
    assert "some other CA" in run.message(check)
    others = {k: v for k, v in run.outcomes().items() if k != check}
    # checks that never rely on trust still judge; the others cannot be made — never a pass or a fail
    assert others.pop("transport.tls.legacy-versions-refused") == "passed"
    assert others.pop("transport.http.redirect-only") == "passed"
    assert set(others.values()) == {"error"}, others
    assert all("certificate not trusted for 127.0.0.1" in run.message(k) for k in others)


def test_a_target_without_https_fails_every_in_transit_check_with_that_one_reason(suite_runner, tmp_path):
    demo = DemoProcess(flaws=["plaintext_http"]).start()
    try:
        profile = tmp_path / "plain.yaml"
        profile.write_text(f"name: plain\nbase_url: {demo.http_url}\nallowed_hosts: [127.0.0.1]\n"
                           "timeouts: {request: 5}\n")
        run = suite_runner(SUITES[0], args=("--target", str(profile)))
    finally:
        demo.stop()
    assert run.returncode == 1, run.stdout[-3000:]
    assert set(run.results) == IN_TRANSIT
    assert set(run.outcomes().values()) == {"failed"}, run.outcomes()
    for check in IN_TRANSIT:
        assert run.message(check).startswith(f"FAILED: the target has no https: base_url {demo.http_url}"), \
            run.message(check)


def test_read_only_checks_are_marked_and_create_no_subject(suite_runner, tmp_path):
    run = suite_runner(*SUITES, args=("-m", "read_only"))
    assert set(run.results) == READ_ONLY, run.outcomes()
    assert set(run.outcomes().values()) == {"passed"}, {k: run.message(k)[:300] for k in run.failing()}
    import sqlite3

    with sqlite3.connect(tmp_path / "ledger.sqlite") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        subjects = db.execute("SELECT count(*) FROM subjects").fetchone()[0] if "subjects" in tables else 0
    assert subjects == 0


def test_a_recipient_never_seen_receiving_the_subject_makes_the_delivery_check_an_error(suite_runner,
                                                                                        standalone_demo, tmp_path):
    """A recipient the profile says receives every subject, never seen receiving this one, is a
    blind spot: a cleartext delivery to it would go unseen. transport.recipients.https must say
    it could not be made (as deletion's recipients control does), never pass on the others."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    data["sinks"].append({"name": "adnetwork", "path": "/adnetwork/", "role": "third_party",
                          "purpose": "marketing audiences"})
    data["timeouts"]["propagation"] = 3
    profile = tmp_path / "demo-blind-recipient.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(SUITES[0], args=("--target", str(profile)), env=standalone_demo)
    check = "transport.recipients.https"
    assert run.results[check]["outcome"] == "error", run.outcomes()
    message = run.message(check)
    assert "positive control failed" in message and "adnetwork never received the subject" in message, message
    # the other in-transit checks do not judge the recipients
    assert {k for k, v in run.outcomes().items() if v != "passed"} == {check}, run.outcomes()
