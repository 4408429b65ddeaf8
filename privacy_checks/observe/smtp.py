"""Capture of the mail a target sends: verification codes, acknowledgements, marketing.

`SmtpCaptureServer` is an SMTP server (aiosmtpd) the framework runs in its own process on a
loopback port, next to the HTTP `CaptureServer`. Every message becomes one `Capture` per
envelope recipient, with method "SMTP" and path "mailto:<recipient>", so the sink logic that
judges HTTP deliveries (`find_in_captures`, `classify` against a sink's `mailbox`) judges mail
the same way. Its body is the decoded text of every MIME part: a canary inside a base64 or
quoted-printable part is then found as itself, not only as an encoding of itself.

Given the HTTP capture server (`record_into=`), captures are appended to its sequence, so
pytest-xdist workers read mail through the `CaptureClient` they already have.
"""

from __future__ import annotations

import email
import email.policy
import html
import io
import socket
import threading
import zipfile
from datetime import UTC, datetime
from email.message import Message

from aiosmtpd.controller import Controller

from ..errors import PrivacyChecksError
from .sinks import Capture

_MAX_MESSAGE = 10_000_000


class _MailLog:
    """Where captures go when there is no HTTP capture server to share a sequence with."""

    def __init__(self) -> None:
        self._captures: list[Capture] = []
        self._lock = threading.Lock()

    def add(self, method: str, path: str, query: str, headers: dict, body: str, *, scheme: str) -> None:
        with self._lock:
            self._captures.append(Capture(len(self._captures) + 1, method, path, query, headers, body,
                                          datetime.now(UTC).isoformat(), scheme=scheme))

    def since(self, seq: int) -> list[Capture]:
        with self._lock:
            return list(self._captures[seq:])

    def last_seq(self) -> int:
        with self._lock:
            return len(self._captures)


def decoded_text(msg: Message) -> str:
    """The text of every leaf part, transfer encoding and charset undone (attachments too).

    Each part's own headers come first (an attachment's file name can carry a value), HTML is
    also given with its character references undone (``&#64;`` is ``@``), and the members of a
    zip attachment are read too, so a value inside any of them is found as itself.
    """
    texts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part is not msg:
            texts.append("\n".join(f"{k}: {v}" for k, v in part.items()))
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001 - a part the parser cannot decode is kept as sent
            payload = None
        if payload is None:
            raw = part.get_payload()
            payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        if _is_zip(part, payload):
            texts += _zip_texts(payload)
            continue
        text = _text(payload, part.get_content_charset())
        texts.append(text)
        if part.get_content_type() == "text/html":
            texts.append(html.unescape(text))
    return "\n".join(texts)


def _text(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset name Python does not know
        return payload.decode("utf-8", "replace")


def _is_zip(part: Message, payload: bytes) -> bool:
    return payload[:4] == b"PK\x03\x04" and (
        part.get_content_type() in ("application/zip", "application/x-zip-compressed", "application/octet-stream")
        or (part.get_filename() or "").lower().endswith(".zip"))


def _zip_texts(payload: bytes) -> list[str]:
    """Each member's name and text; bounded, since a zip bomb must not stop the capture."""
    out, budget = [], _MAX_MESSAGE * 5
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            for info in zf.infolist()[:1000]:
                out.append(info.filename)
                if info.is_dir() or info.file_size > budget:
                    continue
                budget -= info.file_size
                with zf.open(info) as fh:
                    out.append(_text(fh.read(info.file_size + 1), None))
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError):
        out.append(payload.decode("utf-8", "replace"))
    return out


def recorded_body(content: bytes) -> tuple[str, list[str]]:
    """What a message is searched as: its decoded parts, plus the raw bytes when the MIME is
    broken (a defect, or a parser failure), so a malformed message is never dropped or half-read.
    Returns (body, defects)."""
    try:
        msg = email.message_from_bytes(content, policy=email.policy.default)
        body = decoded_text(msg)
        defects = [type(d).__name__ for part in msg.walk() for d in part.defects]
    except Exception as exc:  # noqa: BLE001 - whatever the parser met, the bytes are still searched
        return _raw(content), [f"unparsable: {type(exc).__name__}"]
    if defects:
        body = f"{body}\n{_raw(content)}"
    return body, defects


def _raw(content: bytes) -> str:
    # UTF-8 where the bytes are UTF-8, every other byte kept as itself: ASCII canaries match in
    # any case, and no byte is lost
    return content.decode("utf-8", "surrogateescape").encode("utf-8", "backslashreplace").decode("utf-8")


def message_headers(msg: Message, mail_from: str, rcpt_tos: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in msg.items():
        # the default policy undoes RFC 2047 encoded words ("=?utf-8?b?...?=")
        value = str(value)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    # the envelope can differ from the headers (Bcc): both are what was sent
    headers["X-Envelope-From"] = mail_from
    headers["X-Envelope-To"] = ", ".join(rcpt_tos)
    return headers


class _Handler:
    def __init__(self, log) -> None:
        self.log = log

    async def handle_DATA(self, server, session, envelope) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        body, defects = recorded_body(content)
        try:
            msg = email.message_from_bytes(content, policy=email.policy.default)
            headers = message_headers(msg, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception:  # noqa: BLE001 - headers that do not parse are in the raw body already
            headers = {"X-Envelope-From": envelope.mail_from or "", "X-Envelope-To": ", ".join(envelope.rcpt_tos)}
        if defects:
            headers["X-Privacy-Checks-MIME-Defects"] = ", ".join(dict.fromkeys(defects))
        for rcpt in envelope.rcpt_tos:
            self.log.add("SMTP", f"mailto:{rcpt}", "", headers, body, scheme="smtp")
        return "250 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd's Controller on a socket bound beforehand: port 0 works and bind errors are ours."""

    def __init__(self, handler, sock: socket.socket, **kwargs) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SmtpCaptureServer:
    """The SMTP capture sink; `url` (smtp://host:port) is what the target is told to send to."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record_into=None) -> None:
        try:
            sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            raise PrivacyChecksError(f"SMTP capture sink cannot bind {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = sock.getsockname()[:2]
        self.url = f"smtp://{host if ':' not in host else f'[{host}]'}:{self.port}"
        self._log = record_into if record_into is not None else _MailLog()
        self._controller = _Controller(_Handler(self._log), sock, ready_timeout=10.0,
                                       data_size_limit=_MAX_MESSAGE)
        try:
            self._controller.start()
        except Exception as exc:  # noqa: BLE001 - aiosmtpd raises whatever its thread met
            sock.close()
            raise PrivacyChecksError(f"SMTP capture sink on {host}:{self.port} did not start: {exc}") from None

    def captures(self, since: int = 0) -> list[Capture]:
        return self._log.since(since)

    def last_seq(self) -> int:
        return self._log.last_seq()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpCaptureServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
