"""The SMTP capture sink: real aiosmtpd on loopback, real smtplib clients, the real demo."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys

import pytest
import requests

from privacy_checks.demo.launch import DemoProcess
from privacy_checks.errors import PrivacyChecksError
from privacy_checks.observe.forms import Needle
from privacy_checks.observe.sinks import CaptureClient, CaptureServer, classify, find_in_captures, wait_for
from privacy_checks.observe.smtp import SmtpCaptureServer

SINKS = [
    {"name": "newsletter", "role": "third_party", "purpose": "marketing email", "mailbox": "*@news.example"},
    {"name": "support", "role": "service_provider", "purpose": "support", "mailbox": "help@news.example"},
    {"name": "crm", "role": "service_provider", "purpose": "crm", "path": "/crm/"},
]


def canary() -> str:
    return "pcqz" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(10))


def send(server: SmtpCaptureServer, msg) -> None:
    import smtplib

    with smtplib.SMTP(server.host, server.port, timeout=5) as smtp:
        smtp.send_message(msg)


@pytest.fixture
def smtp_server():
    server = SmtpCaptureServer()
    yield server
    server.stop()


def test_canaries_in_plain_and_base64_mime_parts_are_found_for_the_mailbox_sink(smtp_server):
    from email.message import EmailMessage

    plain, encoded = canary(), canary()
    msg = EmailMessage()
    msg["From"] = "shop@target.example"
    msg["To"] = "list@news.example"
    msg["Subject"] = "new lead"
    msg.set_content(f"lead note: {plain}")
    msg.add_attachment(f"name,note\nAda,{encoded}\n".encode(), maintype="application",
                       subtype="octet-stream", filename="leads.csv")
    assert encoded not in msg.as_string()  # on the wire it exists only base64-encoded

    send(smtp_server, msg)
    caps = wait_for(lambda: smtp_server.captures(), timeout=5, interval=0.05)
    assert [c.path for c in caps] == ["mailto:list@news.example"]
    assert caps[0].method == "SMTP" and caps[0].scheme == "smtp"
    assert caps[0].headers["X-Envelope-From"] == "shop@target.example"
    needles = [Needle("s1", "custom_field", plain), Needle("s1", "department", encoded)]
    hits = find_in_captures(caps, needles, SINKS)
    assert {(h.sink, h.role, h.field) for h in hits} == {
        ("newsletter", "third_party", "custom_field"), ("newsletter", "third_party", "department")}
    assert "mailto:list@news.example" in hits[0].where()


def test_each_envelope_recipient_is_its_own_capture_and_unknown_mailboxes_are_undeclared(smtp_server):
    from email.message import EmailMessage

    value = canary()
    msg = EmailMessage()
    msg["From"] = "shop@target.example"
    msg["To"] = "help@news.example"
    msg["Subject"] = f"about {value}"  # a header alone carries it
    msg.set_content("see subject")
    import smtplib

    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as smtp:
        smtp.send_message(msg, to_addrs=["help@news.example", "Hidden@Elsewhere.example"])
    caps = wait_for(lambda: smtp_server.captures(), timeout=5, interval=0.05)
    hits = find_in_captures(caps, [Needle("s1", "full_name", value)], SINKS)
    assert sorted((h.sink, h.role) for h in hits) == [("UNDECLARED", "undeclared"), ("support", "service_provider")]


def test_mailbox_classification_prefers_the_exact_address_and_ignores_path_sinks():
    assert classify("mailto:help@news.example", SINKS)["name"] == "support"
    assert classify("mailto:HELP@News.Example", SINKS)["name"] == "support"
    assert classify("mailto:anyone@news.example", SINKS)["name"] == "newsletter"
    assert classify("mailto:someone@crm.example", SINKS) is None
    assert classify("/crm/contacts", SINKS)["name"] == "crm"


def test_mail_joins_the_http_sinks_sequence_so_workers_read_it_through_the_control_endpoint():
    from email.message import EmailMessage

    http_sink = CaptureServer()
    try:
        with SmtpCaptureServer(record_into=http_sink._server) as smtp_sink:
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@target.example", "b@news.example", "hi"
            msg.set_content("hello")
            send(smtp_sink, msg)
            client = CaptureClient(http_sink.control_url)
            caps = wait_for(lambda: client.captures(), timeout=5, interval=0.05)
            assert [(c.method, c.path, c.scheme) for c in caps] == [("SMTP", "mailto:b@news.example", "smtp")]
            assert client.last_seq() == 1
    finally:
        http_sink.stop()


def test_an_address_that_cannot_be_bound_is_one_clear_error():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PrivacyChecksError, match=f"SMTP capture sink cannot bind 127.0.0.1:{port}"):
            SmtpCaptureServer(port=port)


def test_demo_with_smtp_url_mails_the_verification_code_to_the_subjects_address(smtp_server):
    email = f"{canary()}@example.com"
    demo = DemoProcess(smtp_url=smtp_server.url).start()
    try:
        session = requests.Session()
        session.trust_env = False
        ca = f"{demo.data_dir}/tls/ca.pem"
        admin = {"Authorization": f"Bearer {demo.admin_token}"}
        user = session.post(f"{demo.url}/api/users", json={"email": email, "username": canary(),
                                                           "password": "pw-" + canary()},
                            verify=ca, timeout=10)
        assert user.status_code == 201, user.text
        req = session.post(f"{demo.url}/api/privacy-requests", json={"type": "access", "user_id": user.json()["id"]},
                           headers=admin, verify=ca, timeout=10)
        assert req.status_code == 202, req.text

        def code_mail():
            return [c for c in smtp_server.captures() if "verification code" in c.body]

        mails = wait_for(code_mail, timeout=10, interval=0.05)
        assert mails, f"no verification mail arrived; got {[c.path for c in smtp_server.captures()]}"
        assert mails[0].path == f"mailto:{email}"
        # the subject's own address: its own mail, never a disclosure, even where a mailbox
        # pattern would claim the address
        sinks = [{"name": "email", "role": "service_provider", "purpose": "transactional email",
                  "mailbox": "*@example.com"}]
        assert classify(mails[0].path, sinks)["name"] == "email"
        assert find_in_captures(mails, [Needle("s1", "email", email)], sinks) == []
        # the outbox stays the record the other checks read
        outbox = session.get(f"{demo.url}/api/outbox", params={"to": email}, headers=admin, verify=ca, timeout=10)
        assert any("verification code" in (m.get("body") or "") for m in outbox.json()["messages"]), outbox.text
    finally:
        demo.stop()


def test_demo_refuses_an_smtp_url_off_loopback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "privacy_checks.demo", "--data-dir", str(tmp_path), "--admin-token", "t",
         "--smtp-url", "smtp://mail.example.com:25"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "smtp://mail.example.com:25" in proc.stderr and "Traceback" not in proc.stderr


# -- what a message is searched as ----------------------------------------------------------------

def _subject_address(token: str) -> str:
    return f"ada.lovelace.{token}@example.com"


def test_mail_to_a_subjects_own_address_is_its_own_but_another_subjects_data_in_it_is_a_disclosure(smtp_server):
    from email.message import EmailMessage

    from privacy_checks.subjects import subject_id_for

    mine, other = canary(), canary()
    me, them = subject_id_for(mine), subject_id_for(other)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "privacy@target.example", _subject_address(mine), "Your code"
    msg.set_content(f"Hello Ada {mine}, your code is 123456. Also on file: Bob {other}.")
    send(smtp_server, msg)
    caps = wait_for(lambda: smtp_server.captures(), timeout=5, interval=0.05)
    needles = [Needle(me, "full_name", f"Ada {mine}"), Needle(me, "email", _subject_address(mine)),
               Needle(them, "full_name", f"Bob {other}")]
    hits = find_in_captures(caps, needles, SINKS)
    # the subject's own name and address in its own mail are not shared with anyone
    assert [(h.sink, h.subject_id, h.field) for h in hits] == [("UNDECLARED", them, "full_name")]


def test_html_entities_zip_members_and_attachment_names_are_searched(smtp_server):
    import io
    import zipfile
    from email.message import EmailMessage

    in_html, in_zip, in_name = canary(), canary(), canary()
    html_value = "".join(f"&#{ord(c)};" for c in in_html)  # every character a character reference
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("leads.csv", f"name\nAda {in_zip}\n")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "shop@target.example", "list@news.example", "leads"
    msg.set_content("see attachments")
    msg.add_alternative(f"<p>{html_value}</p>", subtype="html")
    msg.add_attachment(buf.getvalue(), maintype="application", subtype="zip", filename="leads.zip")
    msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"{in_name}.bin")
    raw = msg.as_string()
    assert in_html not in raw and in_zip not in raw  # only as references and deflated bytes on the wire
    send(smtp_server, msg)
    caps = wait_for(lambda: smtp_server.captures(), timeout=5, interval=0.05)
    needles = [Needle("s1", "full_name", in_html), Needle("s1", "custom_field", in_zip),
               Needle("s1", "company", in_name)]
    assert {h.field for h in find_in_captures(caps, needles, SINKS)} == {"full_name", "custom_field", "company"}


def test_a_message_that_is_not_valid_mime_is_recorded_raw_and_searched_as_bytes(smtp_server):
    import smtplib

    value = canary()
    # declared base64, yet plain text: decoding it gives garbage, the bytes on the wire hold the value
    raw = (f"From: shop@target.example\r\nTo: list@news.example\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nlead: Ada {value} \xe9\xff!\r\n"
           ).encode("latin-1")
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as smtp:
        smtp.sendmail("shop@target.example", ["list@news.example"], raw)
    caps = wait_for(lambda: smtp_server.captures(), timeout=5, interval=0.05)
    assert len(caps) == 1 and "X-Privacy-Checks-MIME-Defects" in caps[0].headers, caps[0].headers
    hits = find_in_captures(caps, [Needle("s1", "custom_field", f"Ada {value}")], SINKS)
    assert {(h.sink, h.form) for h in hits} == {("newsletter", "exact")}


# -- mail steps: a profile reads codes and receipts from the mail the subject got ----------------

def _mail_target(tmp_path, operations: dict, http_sink):
    import yaml

    from privacy_checks.profile import load_profile
    from privacy_checks.target import Target

    path = tmp_path / "mail.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mail-steps", "base_url": "http://127.0.0.1:9", "allowed_hosts": ["127.0.0.1"],
        "capture": {"smtp": {}}, "operations": operations}))
    client = CaptureClient(http_sink.control_url)
    return Target(load_profile(path), mail=lambda address: client.captures(0, path=f"mailto:{address}"))


def test_a_mail_step_captures_from_the_newest_matching_message_and_names_what_it_saw(tmp_path):
    from email.message import EmailMessage

    from privacy_checks.errors import TargetError

    http_sink = CaptureServer()
    try:
        with SmtpCaptureServer(record_into=http_sink._server) as smtp_sink:
            token = canary()
            me = _subject_address(token)
            for request, code in (("r1", "111111"), ("r2", "222222")):
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = "privacy@target.example", me, "Confirm your request"
                msg["Date"] = "Sun, 01 Nov 2026 10:00:00 +0000"
                msg.set_content(f"The code for request {request} is {code}.")
                send(smtp_sink, msg)
            target = _mail_target(tmp_path, {
                "fetch_code": {"steps": [{
                    "mail": {"to": "{{ subject.email }}", "timeout": 5,
                             "match": "headers.Subject contains 'Confirm' and text contains '{{ captured.request_id }} '"},
                    "capture": {"code": "regex:is (\\d{6})", "sent": "json.date"}}]},
                "receipt": {"steps": [{"mail": {"to": "{{ subject.email }}", "timeout": 0.5, "required": False,
                                                "match": "headers.Subject contains 'We received'"},
                                       "capture": {"acknowledged_at": "json.date"}}]},
                "must_arrive": {"steps": [{"mail": {"to": "{{ subject.email }}", "timeout": 0.5,
                                                    "match": "headers.Subject contains 'We received'"}}]},
            }, http_sink)

            class Who:
                id, canary, fields = "s1", token, {"email": me.upper()}  # addresses compare in any case

                def template_context(self):
                    return {"email": self.fields["email"]}

            got = target.run("fetch_code", Who(), {"request_id": "r1"})
            assert got.captured["code"] == "111111" and got.captured["sent"] == "2026-11-01T10:00:00+00:00"
            assert target.run("fetch_code", Who(), {"request_id": "r2"}).captured["code"] == "222222"
            # required: false and nothing arrived: the step captures nothing and does not fail
            assert "acknowledged_at" not in target.run("receipt", Who(), {}).captured
            with pytest.raises(TargetError, match=r"no mail to .* matching .*We received.* within 0 s; "
                                                  r"2 other\(s\) to that address: 'Confirm your request'"):
                target.run("must_arrive", Who(), {})
    finally:
        http_sink.stop()


# -- the run starts it: profile-configured, controller-owned under xdist -------------------------

def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


MAIL_CHECK = '''
import smtplib
from email.message import EmailMessage

import pytest

from privacy_checks.observe.forms import Needle
from privacy_checks.observe.sinks import find_in_captures, wait_for


@pytest.mark.parametrize("n", range(4))
def test_mail_sent_to_the_profiles_smtp_capture_is_claimed_by_its_mailbox_sink(privacy_run, worker_id, n):
    port = int(privacy_run.profile.capture["smtp"]["bind"].rpartition(":")[2])
    assert privacy_run.smtp_url == f"smtp://127.0.0.1:{port}"
    value = f"lead {n} from {worker_id} pcqzabcdefghij"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "shop@target.example", "leads@news.example", "lead"
    msg.set_content(value)
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        smtp.send_message(msg)
    needle = [Needle("s1", "custom_field", value)]
    hits = wait_for(lambda: find_in_captures(privacy_run.capture.captures(), needle, privacy_run.profile.sinks),
                    timeout=10, interval=0.1)
    assert [(h.sink, h.role, h.capture.path) for h in hits] == [
        ("newsletter", "third_party", "mailto:leads@news.example")]
'''


def _mail_profile(tmp_path, port: int) -> str:
    import yaml

    path = tmp_path / "mail-target.yaml"
    path.write_text(yaml.safe_dump({
        "name": "mail-capture", "base_url": "http://127.0.0.1:9", "allowed_hosts": ["127.0.0.1"],
        "capture": {"smtp": {"bind": f"127.0.0.1:{port}"}},
        "sinks": [{"name": "newsletter", "role": "third_party", "purpose": "marketing newsletter",
                   "mailbox": "*@news.example"}]}))
    return str(path)


def test_a_profile_configured_smtp_capture_is_started_once_by_the_xdist_controller(tmp_path):
    from tests.conftest import ROOT

    port = _free_port()
    (tmp_path / "test_mail_check.py").write_text(MAIL_CHECK)
    # two workers, one listener: a worker binding the same port itself would fail
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_mail_check.py"), "-n", "2", "-q", "-p", "no:cacheprovider", "--target", _mail_profile(tmp_path, port),
         f"--ledger=sqlite:///{tmp_path / 'ledger.sqlite'}", "--privacy-results=",
         f"--privacy-reports={tmp_path / 'reports'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout, proc.stdout[-2000:]


def test_an_smtp_port_in_use_is_one_clear_error_on_every_check(tmp_path):
    from tests.conftest import run_suites

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        run = run_suites(tmp_path, "suites/ccpa/test_right_to_delete.py", args=("--target", _mail_profile(tmp_path, port)))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert set(run.outcomes().values()) == {"error"}, run.stdout[-3000:] + run.stderr[-3000:]
    for check in run.results:
        assert f"SMTP capture sink cannot bind 127.0.0.1:{port}" in run.message(check), run.message(check)
    assert "Traceback" not in run.stdout


MAIL_FETCH_CODE = '''  fetch_code:
    steps:
      - mail:
          to: "{{ subject.email }}"
          match: "headers.Subject contains 'Confirm' and text contains 'request {{ captured.request_id }} '"
          timeout: 10
        capture:
          code: "regex:request \\\\S+ is (\\\\d{6})"
'''


def test_a_profile_reads_the_verification_code_from_the_mail_the_target_sent(tmp_path):
    """A target told to mail to capture.smtp.bind, and a fetch_code that reads the mail: the
    right-to-know suite verifies its requests with codes that only the mail carried."""
    import re

    from privacy_checks.runtime import demo_profile_path
    from tests.conftest import run_suites

    port = _free_port()
    text = demo_profile_path().read_text()
    text = re.sub(r"  fetch_code:\n(    .*\n|      .*\n)+", lambda _m: MAIL_FETCH_CODE, text, count=1)
    assert "mail:" in text and "json.messages.0.code\n  verify_request" not in text
    profile = tmp_path / "demo-mail.yaml"
    # the demo profile binds its SMTP capture where the demo mails (DemoProcess.env)
    assert "bind: ${PRIVACY_CHECKS_DEMO_SMTP}" in text
    profile.write_text(text)
    demo = DemoProcess(smtp_url=f"smtp://127.0.0.1:{port}").start()
    try:
        run = run_suites(tmp_path, "suites/ccpa/test_right_to_know.py", args=("--target", str(profile)),
                         env=demo.env())
    finally:
        demo.stop()
    assert run.outcomes()["ccpa.know.verified-requester-only"] == "passed", run.stdout[-3000:]
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()
