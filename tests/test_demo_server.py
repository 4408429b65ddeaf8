"""The demo target as a real process on loopback, driven over real HTTPS, with a real capture sink."""

from __future__ import annotations

import hashlib
import io
import json
import os
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from privacy_checks.demo.server import POLICY_LAST_MODIFIED

ADMIN_TOKEN = "test-admin-token"
STORES = ("app.sqlite", "search.sqlite", "analytics.sqlite")
TIMEOUT = 10


# ---- a capture sink standing in for the CRM, the email provider and the partner -------------

@dataclass
class Captured:
    path: str
    headers: dict[str, str]
    payload: Any


class Sink:
    def __init__(self) -> None:
        self.received: list[Captured] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    sink.received.append(Captured(self.path, dict(self.headers), json.loads(raw)))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def at(self, path: str, email: str) -> list[Captured]:
        with self._lock:
            return [c for c in self.received if c.path == path and c.payload.get("email") == email]

    def wait_for(self, path: str, email: str, count: int = 1, timeout: float = TIMEOUT) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.at(path, email)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} delivery(ies) to {path} for {email} not seen within {timeout}s")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    capture = Sink()
    yield capture
    capture.close()


# ---- the demo process ----------------------------------------------------------------------

@dataclass
class Demo:
    proc: subprocess.Popen[str]
    url: str
    http_url: str
    data: Path
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, token: str | None = ADMIN_TOKEN, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(
            method, self.url + path, headers=headers, verify=str(self.data / "tls" / "ca.pem"),
            timeout=TIMEOUT, **kwargs,
        )

    def signup(self, **overrides: Any) -> dict[str, Any]:
        person = make_person()
        person.update(overrides)
        headers = {"X-Forwarded-For": person.pop("ip_address")}
        gpc = person.pop("gpc", None)
        if gpc:
            headers["Sec-GPC"] = "1"
        response = self.call("POST", "/api/users", token=None, json=person, headers=headers)
        assert response.status_code == 201, response.text
        login = self.call("POST", "/api/login", token=None,
                          json={"username": person["username"], "password": person["password"]})
        assert login.status_code == 200, login.text
        return {**person, "ip_address": headers["X-Forwarded-For"], "id": response.json()["id"],
                "token": login.json()["token"], "login": login, "created": response.json()}

    def verified_request(self, person: dict[str, Any], kind: str) -> dict[str, Any]:
        created = self.call("POST", "/api/privacy-requests", token=person["token"],
                            json={"type": kind, "user_id": str(person["id"])})
        assert created.status_code == 202, created.text
        request_id = created.json()["id"]
        messages = self.call("GET", "/api/outbox", params={"to": person["email"], "request_id": request_id})
        code = messages.json()["messages"][0]["code"]
        assert code and len(code) == 6
        verified = self.call("POST", f"/api/privacy-requests/{request_id}/verify", token=person["token"],
                             json={"code": code})
        assert verified.status_code == 200 and verified.json()["status"] == "processing", verified.text
        return self.wait_request(request_id, "completed")

    def wait_request(self, request_id: str, status: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call("GET", f"/api/privacy-requests/{request_id}").json()
            if body["status"] == status:
                return body
            time.sleep(0.1)
        raise AssertionError(f"request {request_id} not {status} within {timeout}s: {body}")

    def rows_containing(self, needle: str) -> list[tuple[str, str]]:
        """Every (store, table) whose rows mention needle: a crude residual sweep."""
        hits = []
        for store in STORES:
            db = sqlite3.connect(f"file:{self.data / store}?mode=ro", uri=True, timeout=5)
            try:
                tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
                for table in tables:
                    # table names come from sqlite_master, not from input
                    for row in db.execute(f"SELECT * FROM {table}"):
                        if needle in repr(row):
                            hits.append((store, table))
                            break
            finally:
                db.close()
        return hits


def make_person() -> dict[str, Any]:
    tag = "pcq" + uuid.uuid4().hex[:8]
    return {
        "full_name": f"Ada Lovelace {tag}", "email": f"ada.{tag}@example.com", "username": f"ada_{tag}",
        "password": f"pw-{tag}-secret", "company": f"Analytical {tag}", "department": "Engineering",
        "phone": "+1-202-555-0143", "postal_address": f"1 Main St {tag}", "chat_username": f"chat_{tag}",
        "custom_field": f"notes {tag}", "ip_address": "192.0.2.44",
    }


def _read_ready_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.2):
            line = proc.stdout.readline()
            if line.startswith("privacy-checks demo ready "):
                return line.strip()
            if not line:
                break
    raise AssertionError(f"demo did not become ready: rc={proc.poll()} stderr={proc.stderr.read() if proc.poll() is not None else ''}")


@pytest.fixture
def demo_proc(tmp_path: Path, sink: Sink) -> Iterator[Callable[..., Demo]]:
    started: list[Demo] = []

    def start(*flaws: str) -> Demo:
        data = tmp_path / f"demo{len(started)}"
        command = [sys.executable, "-m", "privacy_checks.demo", "--host", "127.0.0.1", "--port", "0",
                   "--data-dir", str(data), "--admin-token", ADMIN_TOKEN, "--sink-url", sink.url]
        for flaw in flaws:
            command += ["--flaw", flaw]
        env = {k: v for k, v in os.environ.items() if k != "PRIVACY_CHECKS_DEMO_FLAWS"}
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
        line = _read_ready_line(proc)
        fields = dict(part.split("=", 1) for part in line.split()[3:])
        demo = Demo(proc, fields["url"], fields["http"], Path(fields["data"]))
        started.append(demo)
        return demo

    yield start
    for demo in started:
        demo.session.close()
        if demo.proc.poll() is None:
            os.killpg(demo.proc.pid, signal.SIGTERM)
            try:
                demo.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(demo.proc.pid, signal.SIGKILL)
                demo.proc.wait(5)
        demo.proc.stdout.close()
        demo.proc.stderr.close()


# ---- tests ---------------------------------------------------------------------------------

def test_signup_login_activity_reach_recipients(demo_proc: Callable[..., Demo], sink: Sink) -> None:
    demo = demo_proc()
    ada = demo.signup()
    assert "password" not in ada["created"] and ada["created"]["ip_address"] == "192.0.2.44"
    cookie = ada["login"].headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ada["login"].headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"

    activity = demo.call("POST", f"/api/users/{ada['id']}/activity", token=ada["token"],
                         json={"course": "phishing-101", "note": ada["custom_field"]},
                         headers={"X-Forwarded-For": "192.0.2.45"})
    assert activity.status_code == 201, activity.text

    sink.wait_for("/crm/contacts", ada["email"], count=2)
    sink.wait_for("/email/subscribers", ada["email"], count=2)
    leads = sink.wait_for("/partner/leads", ada["email"], count=2)
    assert {lead.payload["ip_address"] for lead in leads} == {"192.0.2.44", "192.0.2.45"}
    assert all(lead.headers["Content-Type"] == "application/json" for lead in leads)

    me = demo.call("GET", f"/api/users/{ada['id']}", token=ada["token"]).json()
    assert me["email"] == ada["email"] and me["deleted"] is False and me["opted_out"] is False
    with sqlite3.connect(f"file:{demo.data / 'app.sqlite'}?mode=ro", uri=True) as db:
        (stored,) = db.execute("SELECT password_hash FROM users WHERE id = ?", (ada["id"],)).fetchone()
    assert stored.startswith("scrypt$") and ada["password"] not in stored
    log = (demo.data / "logs" / "app.log").read_text()
    assert f"user_id={ada['id']}" in log and ada["email"] not in log and ada["full_name"] not in log


def test_access_control(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc()
    ada, bob = demo.signup(), demo.signup()
    assert demo.call("GET", f"/api/users/{ada['id']}", token=None).status_code == 401
    assert demo.call("GET", f"/api/users/{ada['id']}", token="nope").status_code == 401
    assert demo.call("GET", f"/api/users/{bob['id']}", token=ada["token"]).status_code == 403
    assert demo.call("GET", "/api/outbox", token=ada["token"]).status_code == 403
    assert demo.call("POST", "/api/users", token=None, json={"email": "x@example.com"}).status_code == 400
    duplicate = {k: v for k, v in make_person().items() if k != "ip_address"} | {"email": ada["email"]}
    assert demo.call("POST", "/api/users", token=None, json=duplicate).status_code == 409
    wrong = demo.call("POST", "/api/login", token=None, json={"username": ada["username"], "password": "x"})
    assert wrong.status_code == 401


def test_verified_deletion_removes_subject_everywhere(demo_proc: Callable[..., Demo], sink: Sink) -> None:
    demo = demo_proc()
    ada = demo.signup()
    assert demo.call("POST", f"/api/users/{ada['id']}/activity", token=ada["token"],
                     json={"course": "phishing-101", "note": ada["custom_field"]}).status_code == 201
    control = demo.signup()
    sink.wait_for("/partner/leads", ada["email"], count=2)
    tag = ada["username"].removeprefix("ada_")
    assert {store for store, _ in demo.rows_containing(tag)} == set(STORES)

    wrong = demo.call("POST", "/api/privacy-requests", token=ada["token"], json={"type": "delete"})
    bad = demo.call("POST", f"/api/privacy-requests/{wrong.json()['id']}/verify", token=ada["token"],
                    json={"code": "not-it"})
    assert bad.status_code == 403
    done = demo.verified_request(ada, "delete")
    assert done["completed_at"] and done["due_at"] > done["received_at"]

    assert demo.call("GET", f"/api/users/{ada['id']}").status_code == 404
    assert demo.call("POST", "/api/login", token=None,
                     json={"username": ada["username"], "password": ada["password"]}).status_code == 401
    # only the §7101 record of the request survives: the confirmation message in the outbox
    assert demo.rows_containing(tag) == [("app.sqlite", "outbox")]
    kept = demo.call("GET", "/api/outbox", params={"to": ada["email"]}).json()["messages"]
    assert [m["subject"] for m in kept] == ["Your deletion request is complete"]
    for path in ("/crm/deletions", "/email/deletions", "/partner/deletions"):
        assert sink.wait_for(path, ada["email"])[0].payload == {"user_id": ada["id"], "email": ada["email"]}
    assert demo.call("GET", f"/api/users/{control['id']}").status_code == 200


def test_soft_delete_flaw_keeps_the_row(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc("soft_delete")
    ada = demo.signup()
    demo.verified_request(ada, "delete")
    assert demo.call("GET", f"/api/users/{ada['id']}").status_code == 404
    assert demo.call("POST", "/api/login", token=None,
                     json={"username": ada["username"], "password": ada["password"]}).status_code == 401
    with sqlite3.connect(f"file:{demo.data / 'app.sqlite'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT email, deleted FROM users WHERE id = ?", (ada["id"],)).fetchone()
    assert row == (ada["email"], 1)
    assert ("search.sqlite", "documents") in demo.rows_containing(ada["email"])


def test_opt_out_and_gpc_stop_partner_sharing(demo_proc: Callable[..., Demo], sink: Sink) -> None:
    demo = demo_proc()
    ada = demo.signup()
    sink.wait_for("/partner/leads", ada["email"])
    opt_out = demo.call("POST", "/api/privacy-requests", token=ada["token"], json={"type": "opt_out"})
    assert opt_out.status_code == 202 and opt_out.json()["status"] == "completed"
    demo.call("POST", f"/api/users/{ada['id']}/activity", token=ada["token"], json={"course": "gdpr-201"})

    grace = demo.signup(gpc=True)
    assert grace["created"]["opted_out"] is True
    # both users' crm deliveries prove the worker has drained past their partner leads
    sink.wait_for("/crm/contacts", ada["email"], count=2)
    sink.wait_for("/crm/contacts", grace["email"])
    time.sleep(0.3)
    assert len(sink.at("/partner/leads", ada["email"])) == 1
    assert sink.at("/partner/leads", grace["email"]) == []
    assert demo.call("GET", f"/api/price?user_id={ada['id']}", token=ada["token"]).json() == {
        "plan": "standard", "price_cents": 4900, "service_level": "full"}


def test_limit_and_objection_restrict_the_partner(demo_proc: Callable[..., Demo], sink: Sink) -> None:
    demo = demo_proc()
    bob, cy = demo.signup(), demo.signup()
    for person, kind in ((bob, "limit"), (cy, "object")):
        answer = demo.call("POST", "/api/privacy-requests", token=person["token"], json={"type": kind})
        assert answer.status_code == 202 and answer.json()["status"] == "completed"
        demo.call("POST", f"/api/users/{person['id']}/activity", token=person["token"], json={"course": "c"})
        sink.wait_for("/crm/contacts", person["email"], count=2)
    time.sleep(0.2)
    enrolled = [c.payload for c in sink.at("/partner/leads", bob["email"]) if c.payload["event"] == "enrol"]
    assert len(enrolled) == 1 and "phone" not in enrolled[0] and "custom_field" not in enrolled[0]
    assert [c for c in sink.at("/partner/leads", cy["email"]) if c.payload["event"] == "enrol"] == []
    me = demo.call("GET", f"/api/users/{bob['id']}").json()
    assert me["limited"] is True and me["opted_out"] is False


def test_access_export_json_and_csv(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc()
    ada = demo.signup()
    demo.call("POST", f"/api/users/{ada['id']}/activity", token=ada["token"],
              json={"course": "phishing-101", "note": "first"})
    done = demo.verified_request(ada, "access")
    assert done["export_url"] == f"/api/privacy-requests/{done['id']}/export?format=json"
    exported = demo.call("GET", done["export_url"], token=ada["token"]).json()
    assert exported["user"]["custom_field"] == ada["custom_field"]
    # the export says a password is held (11 CCR §7024(d)) and discloses neither it nor its hash
    assert "password_hash" not in exported["user"] and ada["password"] not in json.dumps(exported)
    assert exported["user"]["password"] == "[held as a salted hash; not disclosed]"
    assert [a["course"] for a in exported["activity"]] == ["phishing-101"]
    assert exported["categories"] == ["A", "B", "F"]
    assert exported["tickets"] == []  # Ada filed none
    assert demo.call("GET", done["export_url"]).status_code == 403  # the admin is not the consumer
    archive = demo.call("GET", f"/api/privacy-requests/{done['id']}/export?format=csv", token=ada["token"])
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        assert sorted(files.namelist()) == ["activity.csv", "logins.csv", "orders.csv", "payments.csv", "tickets.csv",
                                            "users.csv"]
        assert ada["email"] in files.read("users.csv").decode()


def test_http_listener_only_redirects(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc()
    response = requests.post(f"{demo.http_url}/api/login?next=1", json={"username": "u", "password": "p"},
                             allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 308
    assert response.headers["Location"] == f"{demo.url}/api/login?next=1"
    assert response.content == b"" and "Set-Cookie" not in response.headers
    gpc = demo.call("GET", "/.well-known/gpc.json", token=None)
    assert gpc.json() == {"gpc": True, "lastUpdate": POLICY_LAST_MODIFIED}
    assert "Last modified:" in demo.call("GET", "/privacy-policy", token=None).text


def test_unknown_flaw_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "privacy_checks.demo", "--data-dir", str(tmp_path), "--admin-token", "t",
         "--flaw", "no_such_flaw"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unknown demo flaw 'no_such_flaw'; known flaws: ")
    assert "soft_delete" in lines[0]


def test_sigterm_stops_every_process(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc()
    port = int(demo.url.rsplit(":", 1)[1])
    started = time.monotonic()
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(timeout=5) == 0
    assert time.monotonic() - started < 2.5
    with pytest.raises(ProcessLookupError):
        os.killpg(demo.proc.pid, 0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# ---- every flaw changes what it says (flaws that do not interfere share one process) -------

def test_retention_and_disclosure_flaws(demo_proc: Callable[..., Demo], sink: Sink) -> None:
    demo = demo_proc("keep_in_search_index", "keep_in_analytics", "no_downstream_delete", "pii_in_logs",
                     "plaintext_password", "sells_data", "shares_with_undeclared")
    ada = demo.signup()
    demo.call("POST", f"/api/users/{ada['id']}/activity", token=ada["token"], json={"course": "c1"})
    sink.wait_for("/databroker/purchase", ada["email"])
    sink.wait_for("/adtech/audience", ada["email"], count=2)
    sink.wait_for("/partner/leads", ada["email"], count=2)
    log = (demo.data / "logs" / "app.log").read_text()
    assert ada["email"] in log and ada["full_name"] in log
    with sqlite3.connect(f"file:{demo.data / 'app.sqlite'}?mode=ro", uri=True) as db:
        (stored,) = db.execute("SELECT password_hash FROM users WHERE id = ?", (ada["id"],)).fetchone()
    assert stored == ada["password"]

    demo.verified_request(ada, "delete")
    hits = demo.rows_containing(ada["email"])
    assert ("search.sqlite", "documents") in hits and ("analytics.sqlite", "events") not in hits
    digest = hashlib.sha256(ada["email"].lower().encode()).hexdigest()
    assert ("analytics.sqlite", "events") in demo.rows_containing(digest)
    time.sleep(0.3)
    assert not [c for c in sink.received if c.path.endswith("/deletions")]


def test_discriminate_flaw(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc("discriminate")
    ada = demo.signup(gpc=True)
    assert demo.call("GET", f"/api/price?user_id={ada['id']}").json() == {
        "plan": "standard", "price_cents": 6900, "service_level": "reduced"}


def test_deletion_hits_the_control_subject(demo_proc: Callable[..., Demo]) -> None:
    demo = demo_proc("delete_hits_other_subject")
    ada = demo.signup()
    control = demo.signup()
    demo.verified_request(ada, "delete")
    assert demo.call("GET", f"/api/users/{control['id']}").status_code == 404


def test_choice_flaws(demo_proc: Callable[..., Demo], sink: Sink) -> None:
    demo = demo_proc("ignore_opt_out", "ignore_gpc", "ignore_limit", "ignore_objection",
                     "opt_out_requires_verification", "insecure_cookies", "no_hsts", "plaintext_http")
    ada, bob, cy = demo.signup(), demo.signup(), demo.signup(gpc=True)
    assert ada["login"].headers["Set-Cookie"] == f"session={ada['token']}; Path=/"
    assert "Strict-Transport-Security" not in ada["login"].headers
    assert cy["created"]["opted_out"] is False
    plain = requests.get(f"{demo.http_url}/.well-known/gpc.json", allow_redirects=False, timeout=TIMEOUT)
    assert plain.status_code == 200

    opt_out = demo.call("POST", "/api/privacy-requests", token=ada["token"], json={"type": "opt_out"})
    assert opt_out.json()["status"] == "verifying"
    demo.verified_request(ada, "opt_out")
    for person, kind in ((bob, "limit"), (cy, "object")):
        answer = demo.call("POST", "/api/privacy-requests", token=person["token"], json={"type": kind})
        assert answer.json()["status"] == "completed"
    for person in (ada, bob, cy):
        demo.call("POST", f"/api/users/{person['id']}/activity", token=person["token"], json={"course": "c"})
        sink.wait_for("/partner/leads", person["email"], count=2)
    assert sink.at("/partner/leads", bob["email"])[-1].payload["phone"] == bob["phone"]


def test_the_demo_writes_its_lake_export_where_the_profiles_lake_glob_never_sees_it_half_written(tmp_path, monkeypatch):
    """The demo rewrites its Parquet export through a temporary file. Named `*.tmp.parquet`, it
    matched the demo profile's `lake/**/*.parquet`: a sweep could read it half-written, or list it
    just before the rename and find it gone, and report the lake unswept (a flaky error)."""
    import glob
    from types import SimpleNamespace

    import yaml

    from privacy_checks.demo import copies

    data = tmp_path / "demo-data"
    lake = data / "lake" / "analytics" / "events.parquet"
    lake.parent.mkdir(parents=True)
    profile = yaml.safe_load((Path(copies.__file__).parents[1] / "profiles" / "demo.yaml").read_text())
    pattern = next(s["lake"][0] for s in profile["stores"] if s.get("lake"))
    pattern = pattern.replace("${PRIVACY_CHECKS_DEMO_DATA}", str(data))
    seen: list[list[str]] = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(sorted(glob.glob(pattern, recursive=True)))  # the writer's file is complete, not yet renamed
        real_replace(src, dst)

    monkeypatch.setattr(copies.os, "replace", replace)
    writer = SimpleNamespace(lake=lake, flaws=frozenset())
    event = (1, 1, "a@example.test", "login", "c", "127.0.0.1", "2026-11-30T00:00:00", None, None)
    copies.Copies._write_lake(writer, [event])
    copies.Copies._write_lake(writer, [event])
    assert seen == [[], [str(lake)]], seen
    assert sorted(glob.glob(pattern, recursive=True)) == [str(lake)]
