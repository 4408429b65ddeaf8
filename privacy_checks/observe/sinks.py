"""Capture of what a target sends to third parties.

`CaptureServer` is an HTTP server the framework runs in the controller process, so that
pytest-xdist workers share it: it records every request the target sends (method, path,
headers, body, arrival time), answers with scripted responses, and catches requests to
undeclared paths too. Workers read the captures through its control endpoint with
`CaptureClient`; a single process uses the same client, so there is one code path.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import PrivacyChecksError

CONTROL_PREFIX = "/__privacy_checks__"
_MAX_BODY = 2_000_000


@dataclass
class Capture:
    seq: int
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    received_at: str
    scheme: str = "http"

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def context(self) -> dict[str, Any]:
        """The names a profile's `deletion_notice` condition can use."""
        return {"method": self.method, "path": self.path, "headers": self.headers, "json": self.json,
                "text": self.body, "status": None}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:  # the captures are the log
        pass

    def _read_body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, _MAX_BODY)) if length else b""
        return raw.decode("utf-8", "replace")

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith(CONTROL_PREFIX):
            return self._control(path[len(CONTROL_PREFIX):], query)
        body = self._read_body()
        self.server.record(self.command, path, query, dict(self.headers), body)
        status, payload = self.server.response_for(path)
        self._send(status, payload)

    def _control(self, path: str, query: str) -> None:
        if path == "/captures":
            from urllib.parse import parse_qs

            args = parse_qs(query)
            since = int((args.get("since") or ["0"])[0] or 0)
            exact = (args.get("path") or [None])[0]
            caps = self.server.since(since)
            if exact is not None:
                caps = [c for c in caps if c.path.lower() == exact.lower()]
            self._send(200, {"captures": [c.to_dict() for c in caps], "last": self.server.last_seq()})
        elif path == "/responses" and self.command == "POST":
            self.server.responses.update(json.loads(self._read_body() or "{}"))
            self._send(200, {"ok": True})
        elif path == "/health":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": "unknown control path"})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr) -> None:
        super().__init__(addr, _Handler)
        self._captures: list[Capture] = []
        self._lock = threading.Lock()
        self.responses: dict[str, dict] = {}

    def record(self, method: str, path: str, query: str, headers: dict, body: str) -> None:
        with self._lock:
            self._captures.append(Capture(len(self._captures) + 1, method, path, query, headers, body,
                                          datetime.now(UTC).isoformat()))

    def add(self, method: str, path: str, query: str, headers: dict, body: str, *, scheme: str) -> None:
        """A capture from another observer (SMTP), kept in this sequence so workers read it too."""
        with self._lock:
            self._captures.append(Capture(len(self._captures) + 1, method, path, query, headers, body,
                                          datetime.now(UTC).isoformat(), scheme=scheme))

    def since(self, seq: int) -> list[Capture]:
        with self._lock:
            return list(self._captures[seq:])

    def last_seq(self) -> int:
        with self._lock:
            return len(self._captures)

    def response_for(self, path: str) -> tuple[int, Any]:
        best = ""
        for prefix in self.responses:
            if path.startswith(prefix) and len(prefix) > len(best):
                best = prefix
        if best:
            spec = self.responses[best]
            return int(spec.get("status", 200)), spec.get("json", {"ok": True})
        return 200, {"ok": True}


class CaptureServer:
    """The capture sink; `url` is what the target is told to send to."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, advertised_url: str | None = None) -> None:
        from .tls_sink import DualServer  # https and http on one port; each capture records which

        try:
            self._server = DualServer((host, port))
        except OSError as exc:
            raise PrivacyChecksError(f"capture sink cannot bind {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = self._server.server_address[:2]
        self.url = advertised_url or f"http://{self.host}:{self.port}"
        self.control_url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="privacy-checks-sink", daemon=True)
        self._thread.start()

    def set_responses(self, responses: dict[str, dict]) -> None:
        self._server.responses.update(responses)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class CaptureClient:
    """Reads captures from a CaptureServer (in this process or the xdist controller)."""

    def __init__(self, control_url: str, *, timeout: float = 5.0) -> None:
        import requests

        self.control_url = control_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False

    def captures(self, since: int = 0, path: str | None = None) -> list[Capture]:
        """Captures after `since`; with `path`, only those to that path (any case), e.g. "mailto:a@b"."""
        import requests

        url = f"{self.control_url}{CONTROL_PREFIX}/captures"
        params = {"since": since, **({"path": path} if path is not None else {})}
        try:
            resp = self._session.get(url, params=params, timeout=self.timeout)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise PrivacyChecksError(f"capture sink at {self.control_url} is not answering: {exc}") from None
        return [Capture(**c) for c in resp.json()["captures"]]

    def last_seq(self) -> int:
        caps = self._session.get(f"{self.control_url}{CONTROL_PREFIX}/captures?since=999999999",
                                 timeout=self.timeout).json()
        return int(caps["last"])

    def set_responses(self, responses: dict[str, dict]) -> None:
        self._session.post(f"{self.control_url}{CONTROL_PREFIX}/responses", json=responses, timeout=self.timeout)


@dataclass
class SinkHit:
    sink: str
    role: str
    capture: Capture
    subject_id: str
    field: str
    form: str
    excerpt: str

    def where(self) -> str:
        return f"{self.sink} ({self.role}) {self.capture.method} {self.capture.path} at {self.capture.received_at}"


def classify(path: str, sinks: list[dict]) -> dict | None:
    """The declared sink a captured path belongs to (longest path prefix), or None.

    Mail is captured as "mailto:<recipient>" and belongs to the sink whose `mailbox` is that
    address or a pattern such as "*@domain" (an exact address wins over a pattern).
    """
    if path.startswith("mailto:"):
        return _classify_mailbox(path[len("mailto:"):], sinks)
    best = None
    for sink in sinks:
        prefix = sink.get("path")
        if prefix and path.startswith(prefix) and (best is None or len(prefix) > len(best["path"])):
            best = sink
    return best


def _classify_mailbox(address: str, sinks: list[dict]) -> dict | None:
    from fnmatch import fnmatchcase

    address = address.strip().strip("<>").lower()
    best, best_rank = None, (-1, -1)
    for sink in sinks:
        pattern = (sink.get("mailbox") or "").strip().lower()
        if pattern and fnmatchcase(address, pattern):
            rank = (int(pattern == address), len(pattern))
            if rank > best_rank:
                best, best_rank = sink, rank
    return best


def mail_recipient(cap: Capture) -> str | None:
    """The envelope recipient of a captured mail (lower case), or None for an HTTP delivery."""
    if not cap.path.startswith("mailto:"):
        return None
    return cap.path[len("mailto:"):].strip().strip("<>").lower()


def addressee_token(cap: Capture) -> str | None:
    """The canary of the synthetic subject a mail is addressed to, or None.

    A subject's own address carries its canary (subjects.py), so mail to it is recognised in
    any process, whoever created the subject. What such a mail carries of *that* subject is the
    subject's own (a code, an acknowledgement, a notice to the consumer), never a disclosure;
    another subject's data in it is still one (to an address no sink claims: undeclared).
    """
    from .forms import CANARY_RE

    address = mail_recipient(cap)
    m = CANARY_RE.search(address) if address else None
    return m.group(0) if m else None


def addressee(cap: Capture) -> str | None:
    """The id of the synthetic subject a mail is addressed to (see `addressee_token`), or None."""
    from ..subjects import subject_id_for

    token = addressee_token(cap)
    return subject_id_for(token) if token else None


def mail_owners(needles) -> dict[str, str]:
    """Address -> subject id, for every needle whose value is an email address: a second address
    field carries a canary of its own, so it is recognised by value."""
    return {n.value.strip().lower(): n.subject_id for n in needles
            if "@" in n.value and " " not in n.value.strip()}


def owner_of(cap: Capture, owners: dict[str, str]) -> str | None:
    """The synthetic subject a mail is addressed to: by the canary in the address, or by one of
    the subject's own address values (`owners`); None for anyone else and for HTTP."""
    address = mail_recipient(cap)
    if address is None:
        return None
    return owners.get(address) or addressee(cap)


def own_mail(captures: list[Capture], subject_id: str) -> list[Capture]:
    """The mail addressed to the subject itself, oldest first."""
    return [c for c in captures if addressee(c) == subject_id]


def find_in_captures(captures: list[Capture], needles, sinks: list[dict]) -> list[SinkHit]:
    """Every needle found in a capture (path, query, headers or body), with its sink.

    A subject's values in mail to that subject's own address are left out: the subject is not
    a recipient of its own data (`addressee`)."""
    from .. import coverage
    from .forms import match_text

    captures = list(captures)
    coverage.note_deliveries(captures, sinks)
    hits = []
    owners = mail_owners(needles)
    for cap in captures:
        sink = classify(cap.path, sinks)
        name, role = (sink["name"], sink["role"]) if sink else ("UNDECLARED", "undeclared")
        text = "\n".join([cap.path, cap.query, json.dumps(cap.headers), cap.body])
        own = owner_of(cap, owners)
        for m in match_text(text, needles):
            if own is not None and m.needle.subject_id == own:
                continue
            hits.append(SinkHit(name, role, cap, m.needle.subject_id, m.needle.field, m.form,
                                getattr(m, "excerpt", "") or ""))
    return hits


def browser_delivery(cap: Capture, profile) -> bool:
    """Whether a capture came from a visitor's browser to a recipient `browser.recipients` declares
    (the capture server may stand in for a site's vendors too): suites/web judges those, by
    registrable domain, not the server-side recipient checks by path."""
    host = (next((v for k, v in cap.headers.items() if k.lower() == "host"), "") or "").rsplit(":", 1)[0].lower()
    domains = [d.lower() for r in (profile.browser.get("recipients") or []) for d in r.get("domains", [])]
    return bool(host) and any(host == d or host.endswith("." + d) for d in domains)


def store_backed_note(sinks: list[dict], names) -> str:
    """Said beside 'never received the subject' by the deletion procedure, whose notices are
    recognised by their request at the capture servers: a sink declared through a store is read
    by the sharing, sale and correction procedures, not by this one."""
    backed = sorted(s["name"] for s in sinks if s.get("name") in set(names) and s.get("store"))
    if not backed:
        return ""
    return (f"; {', '.join(backed)} {'is' if len(backed) == 1 else 'are'} declared through a store (sinks[].store), "
            "which this check does not read: a deletion notice is recognised by its request at the capture "
            "servers (the sharing, sale and correction checks do read such sinks)")


def wait_for(predicate, *, timeout: float, interval: float = 0.2):
    """Poll `predicate` until it returns something truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
