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
        hits = find_in_captures(mails, [Needle("s1", "email", email)], [
            {"name": "email", "role": "service_provider", "purpose": "transactional email",
             "mailbox": "*@example.com"}])
        assert hits and all(h.sink == "email" for h in hits)
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
