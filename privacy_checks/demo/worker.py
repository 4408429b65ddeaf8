"""The demo's background work: webhook delivery to the sink and verified privacy requests."""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from .app import DemoApp
from .mailer import send_mail

DELIVERY_TIMEOUT = 5.0
BATCH = 50


class Worker(threading.Thread):
    def __init__(self, app: DemoApp, sink_url: str | None, log: logging.Logger, interval: float = 0.05,
                 sink_ca: Path | None = None, smtp_url: str | None = None) -> None:
        super().__init__(name="privacy-checks-demo-worker", daemon=True)
        self.app = app
        self.sink_url = sink_url.rstrip("/") if sink_url else None
        if self.sink_url and "plaintext_webhooks" in app.flaws and self.sink_url.startswith("https://"):
            # the sink takes both on one port; the flaw is choosing cleartext anyway
            self.sink_url = "http://" + self.sink_url[len("https://"):]
        smtp = urlsplit(smtp_url) if smtp_url else None
        self.smtp = (smtp.hostname or "127.0.0.1", smtp.port or 25) if smtp else None
        self.log = log
        self.interval = interval
        self._stopping = threading.Event()
        # Given a plain http sink and no CA (a demo started by hand before any run's capture sink
        # exists), ask the sink for its CA when delivering and move to https once it offers TLS;
        # a later run's sink has a new CA, so a failed delivery asks again.
        self._discover = bool(self.sink_url and self.sink_url.startswith("http://") and sink_ca is None
                              and "plaintext_webhooks" not in app.flaws)
        self._plain_url = self.sink_url
        self._opener = self._make_opener(sink_ca)

    @staticmethod
    def _make_opener(sink_ca) -> urllib.request.OpenerDirector:
        # an empty ProxyHandler: HTTP(S)_PROXY in the environment must not divert loopback deliveries
        tls = ssl.create_default_context(cafile=str(sink_ca)) if sink_ca else None
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls))

    def _discover_tls(self) -> None:
        import tempfile

        from ..observe.tls_sink import sink_tls

        with tempfile.TemporaryDirectory(prefix="privacy-checks-demo-sink-") as tmp:
            ca = Path(tmp) / "sink-ca.pem"
            https = sink_tls(self._plain_url, ca, timeout=DELIVERY_TIMEOUT)
            if https:
                self._opener = self._make_opener(ca)  # the context has read the CA: the file may go
        self.sink_url = https.rstrip("/") if https else self._plain_url

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._drain()
                self.app.process_pending_requests()
                # deletion notices just queued go out now rather than a tick later
                self._drain()
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop all deliveries
                self.log.error("worker error %s", type(exc).__name__)
                traceback.print_exc()
            self._stopping.wait(self.interval)

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)

    def _drain(self) -> None:
        if self.sink_url is None:
            return
        while not self._stopping.is_set():
            rows = self.app.due_deliveries(BATCH)
            if rows and self._discover and self.sink_url == self._plain_url:
                self._discover_tls()
            for row in rows:
                if self._stopping.is_set():
                    return
                ok = self._post(row["path"], self.app.payload_of(row))
                if not ok and self._discover and self.sink_url != self._plain_url:
                    self._discover_tls()  # a new sink (new CA), or none: ask again
                    ok = self._post(row["path"], self.app.payload_of(row))
                self.app.delivery_done(row, ok)
            if len(rows) < BATCH:
                return

    def _post(self, path: str, payload: str) -> bool:
        if path.startswith("mailto:"):
            # a recipient reached by mail (the newsletter): the same queue, retries and records
            if self.smtp is None:
                return False
            message = json.loads(payload)
            return send_mail(*self.smtp, path[len("mailto:"):], message["subject"], message["text"])
        request = urllib.request.Request(
            f"{self.sink_url}{path}", data=payload.encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=DELIVERY_TIMEOUT) as response:
                response.read()
                return 200 <= response.status < 300
        except (urllib.error.URLError, http.client.HTTPException, OSError):
            return False
