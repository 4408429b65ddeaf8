"""Evidence records: what a check did and saw, with secrets redacted before anything is kept.

Redaction happens when a record is made, not when a report is written, so no later writer
(Allure, the compliance report, a log) can leak a token, cookie or password.

Redaction by name (a field called `token`) misses a secret that turns up elsewhere: in a URL,
an error message, a traceback's local variables. So every live secret the run handles — the
profile's configured credentials, the `Authorization`/`Cookie`/`Set-Cookie` values it sends and
receives, and values it captures under a name that looks like a token, session, password, key
or code — is remembered (`remember_secret`), and `scrub` replaces each of them wherever it
appears. The plugin scrubs pytest's own failure output with it (tracebacks included).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

REDACTED = "[REDACTED]"
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
# A field whose name says it holds a secret is redacted wherever it appears in a body.
SECRET_NAME = re.compile(r"(?i)(token|secret|password|passwd|api[_-]?key|authorization|cookie|session|code)")
_MAX_BODY = 4000


# Live secrets of this process, remembered as the run meets them. Short values are left out:
# replacing "42" everywhere would shred every message and hide nothing worth hiding.
MIN_SECRET_LENGTH = 6
_LIVE: set[str] = set()
_LIVE_PATTERN: list = [None]


def remember_secret(value: Any) -> None:
    """Remember a live secret value, so that `scrub` hides it wherever it appears."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str | int) or isinstance(value, bool):
        return
    text = str(value).strip()
    if len(text) >= MIN_SECRET_LENGTH and text not in _LIVE and text != REDACTED:
        _LIVE.add(text)
        _LIVE_PATTERN[0] = None


def remember_header_secrets(headers) -> None:
    """The values of Authorization / Cookie / Set-Cookie (and the credential inside them)."""
    for key, value in (headers or {}).items():
        if key.lower() not in SECRET_HEADERS or not isinstance(value, str):
            continue
        remember_secret(value)
        scheme, _, credential = value.partition(" ")
        if scheme.lower() in ("bearer", "basic", "token") and credential:
            remember_secret(credential)
        for part in re.split(r"[;,]\s*", value):
            name, eq, cookie = part.partition("=")
            if eq and name.strip().lower() not in ("path", "domain", "expires", "max-age", "samesite"):
                remember_secret(cookie)


def scrub(text: str) -> str:
    """`text` with every remembered live secret, and any bearer/basic credential, replaced."""
    if not text:
        return text
    if _LIVE:
        if _LIVE_PATTERN[0] is None:
            _LIVE_PATTERN[0] = re.compile("|".join(re.escape(v) for v in sorted(_LIVE, key=len, reverse=True)))
        text = _LIVE_PATTERN[0].sub(REDACTED, text)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}")


def has_secret(text: str) -> bool:
    return bool(text) and scrub(text) != text


def scrub_value(value: Any) -> Any:
    """`scrub` applied to every string inside a JSON-like value."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS or SECRET_NAME.search(k) and k.lower() != "content-type"
                else v) for k, v in headers.items()}


def redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_NAME.search(str(k)) else redact_value(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


# Bounded repetitions: an unbounded [\w-]* around the keyword backtracks quadratically on a
# long run of word characters (a 4 KB body of digits took seconds).
_TEXT_SECRET = re.compile(
    r"""(?ix)
    (["']?(?:[\w-]{0,40}(?:token|secret|password|passwd|api[_-]?key|session|code)[\w-]{0,40})["']?\s{0,8}[:=]\s{0,8})
    ("[^"]{0,4000}"|'[^']{0,4000}'|[^\s&,;}]{1,4000})""")
_BEARER = re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


def redact_text(text: str | None) -> str:
    """Redact a body we could not parse as JSON (form bodies, HTML, error pages)."""
    if not text:
        return ""
    text = text[: _MAX_BODY * 2]
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _TEXT_SECRET.sub(lambda m: m.group(1) + REDACTED, text)


def redact_body(raw: bytes | str | None, content_type: str = "") -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if "json" in content_type or text[:1] in ("{", "["):
        try:
            return json.dumps(redact_value(json.loads(text)), ensure_ascii=False)[:_MAX_BODY]
        except ValueError:
            pass
    return redact_text(text)[:_MAX_BODY]


@dataclass
class Exchange:
    """One HTTP request and its response, redacted."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int
    response_headers: dict[str, str]
    response_body: str
    started_at: str
    elapsed_s: float

    @classmethod
    def from_response(cls, resp, *, started: datetime, elapsed: float) -> Exchange:
        req = resp.request
        remember_header_secrets(req.headers)
        remember_header_secrets(resp.headers)
        return cls(
            method=req.method, url=redact_url(req.url),
            request_headers=redact_headers(dict(req.headers)),
            request_body=redact_body(req.body, req.headers.get("Content-Type", "")),
            status=resp.status_code, response_headers=redact_headers(dict(resp.headers)),
            response_body=redact_body(resp.content, resp.headers.get("Content-Type", "")),
            started_at=started.isoformat(), elapsed_s=round(elapsed, 4))

    def to_dict(self) -> dict[str, Any]:
        return scrub_value(asdict(self))

    def summary(self) -> str:
        return f"{self.method} {self.url} -> {self.status} ({self.elapsed_s:.2f} s)"


def _at(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="milliseconds")


def redact_url(url: str) -> str:
    return re.sub(r"(?i)([?&][^=&]*(?:token|secret|password|key|code)[^=&]*=)[^&]*", rf"\1{REDACTED}", url)


@dataclass
class Attachment:
    """A file kept with the evidence (a browser's request timeline, a PNG screenshot). Made from
    redacted data only; written beside the evidence JSON and attached in Allure."""

    name: str
    filename: str
    media_type: str
    data: bytes

    def payload(self) -> bytes:
        """The bytes to write or attach: text scrubbed of every live secret met so far (an image
        is kept as it is)."""
        if self.media_type.startswith("text/") or self.media_type == "application/json":
            return scrub(self.data.decode("utf-8", "replace")).encode("utf-8")
        return self.data

    def to_dict(self) -> dict[str, Any]:
        import hashlib

        data = self.payload()
        out: dict[str, Any] = {"name": self.name, "file": self.filename, "media_type": self.media_type,
                               "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        if self.media_type == "application/json":
            out["content"] = json.loads(data)
        return out


@dataclass
class Evidence:
    """What one check recorded: stages, findings and exchanges, for the reports.

    A stage is recorded when it ends; it began when the one before it ended (the first, when
    the record was made), so each stage carries its real time (``began_at``, ``ended_at``,
    ``seconds``) and the Allure steps show where a procedure spent it."""

    check_id: str
    stages: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    began: float = field(default_factory=time.time)

    def stage(self, name: str, **details: Any) -> None:
        ended = time.time()
        began = self.began if not self.stages else self.stages[-1].get("_ended", self.began)
        self.stages.append(scrub_value({"stage": name, **redact_value(details), "began_at": _at(began),
                                        "ended_at": _at(ended), "seconds": round(ended - began, 3)}))
        self.stages[-1]["_ended"] = ended

    def finding(self, **details: Any) -> None:
        self.findings.append(scrub_value(redact_value(details)))

    def note(self, text: str) -> None:
        self.notes.append(scrub(redact_text(text)))

    def attach(self, name: str, data: bytes | str | Any, media_type: str, filename: str) -> Attachment:
        """Keep a file with the evidence; `data` must already be redacted (a dict or list is kept as
        JSON). A file name already taken gets a numbered one."""
        if not isinstance(data, bytes | str):
            data = json.dumps(data, indent=1, ensure_ascii=False, default=str)
        raw = data.encode("utf-8") if isinstance(data, str) else data
        taken = {a.filename for a in self.attachments}
        stem, dot, ext = filename.rpartition(".")
        n = 2
        while filename in taken:
            filename = f"{stem}-{n}{dot}{ext}"
            n += 1
        attachment = Attachment(name, filename, media_type, raw)
        self.attachments.append(attachment)
        return attachment

    def to_dict(self) -> dict[str, Any]:
        stages = [{k: v for k, v in s.items() if k != "_ended"} for s in self.stages]
        out = {"check_id": self.check_id, "stages": stages, "findings": self.findings,
               "exchanges": [e.to_dict() for e in self.exchanges], "notes": self.notes}
        if self.attachments:
            out["attachments"] = [a.to_dict() for a in self.attachments]
        # scrubbed again when written: a secret met after a stage was recorded is hidden too
        return scrub_value(out)
