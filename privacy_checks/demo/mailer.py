"""The demo's mail relay: sends what the outbox records (codes, acknowledgements) over SMTP.

Optional (`--smtp-url`). The outbox table stays the record every check reads; this thread only
reads it, in its own thread, so a slow or absent mail server never holds up a request.
"""

from __future__ import annotations

import email.utils
import logging
import smtplib
import threading
from datetime import datetime
from email.message import EmailMessage
from urllib.parse import urlsplit

from .store import Store

SMTP_TIMEOUT = 5.0
SENDER = "privacy@mediapro.example"
ATTEMPTS = 3
BATCH = 50


class Mailer(threading.Thread):
    def __init__(self, store: Store, smtp_url: str, log: logging.Logger, interval: float = 0.05) -> None:
        super().__init__(name="privacy-checks-demo-mailer", daemon=True)
        parts = urlsplit(smtp_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 25
        self.store = store
        self.log = log
        self.interval = interval
        self._stopping = threading.Event()
        self._failures = 0
        with store.reading() as db:
            # mail recorded before a restart was sent (or given up on) by the previous process
            self._last = db.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._drain()
            except Exception as exc:  # noqa: BLE001 - a bad row must not stop all mail
                self.log.error("mailer error %s", type(exc).__name__)
            self._stopping.wait(self.interval)

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

    def _drain(self) -> None:
        with self.store.reading() as db:
            rows = [dict(r) for r in db.execute(
                "SELECT id, recipient, subject, body, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (self._last, BATCH),
            )]
        for row in rows:
            if self._stopping.is_set():
                return
            if self._send(row):
                self._failures = 0
            else:
                # retried on the next ticks, then given up: the outbox row remains the record
                self._failures += 1
                if self._failures < ATTEMPTS:
                    return
                self.log.warning("mail not delivered outbox_id=%s", row["id"])
                self._failures = 0
            self._last = row["id"]

    def _send(self, row: dict) -> bool:
        return send_mail(self.host, self.port, row["recipient"], row["subject"], row["body"] or row["subject"],
                         date=row.get("created_at"))


def send_mail(host: str, port: int, to: str, subject: str, text: str, date: str | None = None) -> bool:
    """One message over SMTP; False when it could not be handed over (the caller retries)."""
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = subject
    if date:
        # the time the outbox recorded it: a back-dated request's acknowledgement says when it was sent
        msg["Date"] = email.utils.format_datetime(datetime.fromisoformat(date.replace("Z", "+00:00")))
    msg.set_content(text)
    try:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(msg)
        return True
    except (smtplib.SMTPException, OSError, ValueError):  # ValueError: a header it cannot encode
        return False
