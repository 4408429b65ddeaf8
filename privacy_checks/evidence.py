"""Evidence records: what a check did and saw, with secrets redacted before anything is kept.

Redaction happens when a record is made, not when a report is written, so no later writer
(Allure, the compliance report, a log) can leak a token, cookie or password.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

REDACTED = "[REDACTED]"
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
# A field whose name says it holds a secret is redacted wherever it appears in a body.
SECRET_NAME = re.compile(r"(?i)(token|secret|password|passwd|api[_-]?key|authorization|cookie|session|code)")
_MAX_BODY = 4000


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
        return cls(
            method=req.method, url=_redact_url(req.url),
            request_headers=redact_headers(dict(req.headers)),
            request_body=redact_body(req.body, req.headers.get("Content-Type", "")),
            status=resp.status_code, response_headers=redact_headers(dict(resp.headers)),
            response_body=redact_body(resp.content, resp.headers.get("Content-Type", "")),
            started_at=started.isoformat(), elapsed_s=round(elapsed, 4))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return f"{self.method} {self.url} -> {self.status} ({self.elapsed_s:.2f} s)"


def _redact_url(url: str) -> str:
    return re.sub(r"(?i)([?&][^=&]*(?:token|secret|password|key|code)[^=&]*=)[^&]*", rf"\1{REDACTED}", url)


@dataclass
class Attachment:
    """A file kept with the evidence (a browser's request timeline, a PNG screenshot). Made from
    redacted data only; written beside the evidence JSON and attached in Allure."""

    name: str
    filename: str
    media_type: str
    data: bytes

    def to_dict(self) -> dict[str, Any]:
        import hashlib

        out: dict[str, Any] = {"name": self.name, "file": self.filename, "media_type": self.media_type,
                               "sha256": hashlib.sha256(self.data).hexdigest(), "bytes": len(self.data)}
        if self.media_type == "application/json":
            out["content"] = json.loads(self.data)
        return out


@dataclass
class Evidence:
    """What one check recorded: stages, findings and exchanges, for the reports."""

    check_id: str
    stages: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)

    def stage(self, name: str, **details: Any) -> None:
        self.stages.append({"stage": name, **redact_value(details)})

    def finding(self, **details: Any) -> None:
        self.findings.append(redact_value(details))

    def note(self, text: str) -> None:
        self.notes.append(redact_text(text))

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
        out = {"check_id": self.check_id, "stages": self.stages, "findings": self.findings,
               "exchanges": [e.to_dict() for e in self.exchanges], "notes": self.notes}
        if self.attachments:
            out["attachments"] = [a.to_dict() for a in self.attachments]
        return out
