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
import socket
import threading
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
    """The text of every leaf part, transfer encoding and charset undone (attachments too)."""
    texts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            texts.append(payload.decode(charset, "replace"))
        except LookupError:  # a charset name Python does not know
            texts.append(payload.decode("utf-8", "replace"))
    return "\n".join(texts)


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
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        msg = email.message_from_bytes(content, policy=email.policy.default)
        headers = message_headers(msg, envelope.mail_from or "", list(envelope.rcpt_tos))
        body = decoded_text(msg)
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
