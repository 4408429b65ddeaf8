"""TLS for the capture sink: one port takes both https and plain http, and records which.

Only the receiving end can say honestly whether a delivery travelled encrypted: a header the
target adds would be the target vouching for itself. So the sink looks at the first byte of
each connection (a TLS record starts with 0x16 = handshake; an HTTP request starts with a
method name), terminates TLS itself, and stores the scheme it actually saw on the wire in
`Capture.scheme`. Both on one port means a target is given the same address with `https://`,
and a target that falls back to `http://` still reaches the sink — and is caught doing it.

The certificate comes from a throwaway CA made when the sink starts; a target verifies the
sink with it (`GET /__privacy_checks__/tls` returns it as PEM; `sink_tls()` fetches it).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from . import sinks

TLS_HANDSHAKE = b"\x16"
# How long a connection may stay silent before its first byte; the sink is ours, so short.
SNIFF_TIMEOUT = 10.0
CONNECTION_TIMEOUT = 30.0

_conn = threading.local()


class _Handler(sinks._Handler):
    def _control(self, path: str, query: str) -> None:
        if path == "/tls":
            return self._send(200, {"ca_pem": self.server.ca_pem})
        return super()._control(path, query)


class DualServer(sinks._Server):
    """The capture server, answering https and http on the same port."""

    def __init__(self, addr) -> None:
        import trustme

        super().__init__(addr)
        self.RequestHandlerClass = _Handler
        ca = trustme.CA(organization_name="privacy-checks capture sink CA")
        names = dict.fromkeys([str(addr[0]), "127.0.0.1", "localhost", "::1"])
        leaf = ca.issue_cert(*[n for n in names if n not in ("", "0.0.0.0", "::")])
        self.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(self.tls_context)
        self.ca_pem = ca.cert_pem.bytes().decode()

    def finish_request(self, request, client_address) -> None:
        _conn.scheme = "http"
        request.settimeout(SNIFF_TIMEOUT)
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        request.settimeout(CONNECTION_TIMEOUT)
        if first != TLS_HANDSHAKE:
            return super().finish_request(request, client_address)
        try:
            conn = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust us, or hangs up: nothing was delivered
        _conn.scheme = "https"
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()

    def record(self, method: str, path: str, query: str, headers: dict, body: str) -> None:
        scheme = getattr(_conn, "scheme", "http")
        with self._lock:
            self._captures.append(sinks.Capture(len(self._captures) + 1, method, path, query, headers, body,
                                                datetime.now(UTC).isoformat(), scheme=scheme))


def sink_tls(sink_url: str, ca_path: Path, timeout: float = 2.0) -> str | None:
    """The https form of a capture sink's URL, its CA written to `ca_path`; None without TLS.

    A sink that is not ours (or predates TLS) simply yields None, and the target is told the
    URL as given.
    """
    parts = urlsplit(sink_url)
    if parts.scheme != "http":
        return None
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{sink_url.rstrip('/')}{sinks.CONTROL_PREFIX}/tls", timeout=timeout) as resp:
            pem = json.loads(resp.read()).get("ca_pem")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if not pem:
        return None
    ca_path.write_text(pem, encoding="utf-8")
    return parts._replace(scheme="https").geturl()
