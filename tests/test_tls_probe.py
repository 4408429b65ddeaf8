"""The transport probes against real sockets on loopback: TLS servers we control, a port that
accepts and never answers, certificates from the wrong CA or for the wrong name."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import warnings
from pathlib import Path

import pytest
import trustme

from privacy_checks.checks import transport as checks
from privacy_checks.errors import TargetError
from privacy_checks.evidence import Evidence
from privacy_checks.observe import transport as obs
from privacy_checks.outcomes import CheckError, PromiseBroken
from privacy_checks.profile import load_profile


class TlsServer:
    """A real TLS listener in a thread; handshakes and closes every connection."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def server_context(ca: trustme.CA, *names: str, legacy: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ca.issue_cert(*(names or ("127.0.0.1",))).configure_cert(ctx)
    return ctx


@pytest.fixture
def tls_server():
    servers = []

    def start(ctx):
        servers.append(TlsServer(ctx))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def silent_port():
    """A port that accepts connections and never says a word."""
    sock = socket.create_server(("127.0.0.1", 0))
    accepted = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    sock.close()


def profile_for(tmp_path: Path, port: int, ca: trustme.CA | None, scheme: str = "https"):
    lines = [f"name: probe\nbase_url: {scheme}://127.0.0.1:{port}\nallowed_hosts: [127.0.0.1]\n",
             "timeouts: {request: 2}\n"]
    if ca is not None:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        lines.append(f"tls: {{ca_bundle: {tmp_path / 'ca.pem'}}}\n")
    (tmp_path / "probe.yaml").write_text("".join(lines))
    return load_profile(tmp_path / "probe.yaml")


def test_a_modern_server_refuses_tls_1_0_and_1_1(tls_server):
    server = tls_server(server_context(trustme.CA()))
    for version in obs.LEGACY_VERSIONS:
        probe = obs.probe_tls_version("127.0.0.1", server.port, version, timeout=5)
        if obs.client_cannot_offer(obs.LEGACY_VERSIONS[version]):
            assert probe.outcome == "cannot_probe"
        else:
            assert probe.outcome == "refused", probe.describe()


def test_a_server_accepting_tls_1_0_is_caught_and_the_check_fails_naming_it(tls_server, tmp_path):
    if obs.client_cannot_offer("TLSv1"):
        pytest.skip(f"this machine cannot offer TLS 1.0: {obs.client_cannot_offer('TLSv1')}")
    ca = trustme.CA()
    server = tls_server(server_context(ca, legacy=True))
    probe = obs.probe_tls_version("127.0.0.1", server.port, "TLS 1.0", timeout=5)
    assert probe.outcome == "accepted" and "TLSv1" in probe.detail
    with pytest.raises(PromiseBroken, match=rf"127\.0\.0\.1:{server.port} accepts deprecated .*TLS 1\.0"):
        checks.legacy_tls_refused(profile_for(tmp_path, server.port, ca), Evidence("t"))


def test_a_client_that_cannot_offer_tls_1_0_reports_cannot_probe_not_a_pass(tls_server, tmp_path, monkeypatch):
    server = tls_server(server_context(trustme.CA()))
    monkeypatch.setattr(ssl, "HAS_TLSv1", False)
    obs.client_cannot_offer.cache_clear()
    try:
        probe = obs.probe_tls_version("127.0.0.1", server.port, "TLS 1.0", timeout=5)
        assert probe.outcome == "cannot_probe" and "without TLS 1.0" in probe.detail
        with pytest.raises(CheckError, match=r"cannot probe 127\.0\.0\.1:\d+ for TLS 1\.0"):
            checks.legacy_tls_refused(profile_for(tmp_path, server.port, None), Evidence("t"))
    finally:
        obs.client_cannot_offer.cache_clear()


def test_a_tls_port_that_hangs_is_a_timeout_error_naming_host_and_port(silent_port, tmp_path):
    started = time.monotonic()
    with pytest.raises(TargetError, match=rf"127\.0\.0\.1:{silent_port} timed out after 1 s"):
        obs.probe_tls_version("127.0.0.1", silent_port, "TLS 1.1", timeout=1)
    with pytest.raises(TargetError, match=rf"127\.0\.0\.1:{silent_port} timed out"):
        obs.check_certificate("127.0.0.1", silent_port, None, timeout=1)
    with pytest.raises(TargetError, match=rf"127\.0\.0\.1:{silent_port}"):
        checks.certificate_trusted(profile_for(tmp_path, silent_port, None), Evidence("t"))
    assert time.monotonic() - started < 10


def test_a_certificate_from_the_configured_ca_is_trusted(tls_server, tmp_path):
    ca = trustme.CA()
    server = tls_server(server_context(ca))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    result = obs.check_certificate("127.0.0.1", server.port, str(tmp_path / "ca.pem"), timeout=5)
    assert result.trusted, result.reason
    assert "trustme" in result.issuer
    checks.certificate_trusted(profile_for(tmp_path, server.port, ca), Evidence("t"))


def test_a_certificate_from_another_ca_fails_as_not_trusted_for_the_host(tls_server, tmp_path):
    server = tls_server(server_context(trustme.CA(organization_name="some other CA")))
    with pytest.raises(PromiseBroken) as info:
        checks.certificate_trusted(profile_for(tmp_path, server.port, trustme.CA()), Evidence("t"))
    message = str(info.value)
    assert message.startswith("certificate not trusted for 127.0.0.1"), message
    assert "issued by" in message and "some other CA" in message


def test_a_certificate_for_another_name_fails_as_not_trusted_for_the_host(tls_server, tmp_path):
    ca = trustme.CA()
    server = tls_server(server_context(ca, "other.example"))
    with pytest.raises(PromiseBroken, match=r"certificate not trusted for 127\.0\.0\.1 .*mismatch"):
        checks.certificate_trusted(profile_for(tmp_path, server.port, ca), Evidence("t"))


def test_a_target_without_https_fails_every_endpoint_check_with_one_reason(tmp_path):
    profile = profile_for(tmp_path, 9, None, scheme="http")
    for check in (checks.legacy_tls_refused, checks.certificate_trusted, checks.hsts_one_year,
                  checks.http_only_redirects):
        with pytest.raises(PromiseBroken, match=r"the target has no https: base_url http://127\.0\.0\.1:9"):
            check(profile, Evidence("t"))


def test_nothing_listening_on_plain_http_is_an_answer_but_a_hang_is_not(silent_port):
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert obs.http_get(f"http://127.0.0.1:{port}/", timeout=2).status is None
    with pytest.raises(TargetError, match=rf"127\.0\.0\.1:{silent_port} never answered"):
        obs.http_get(f"http://127.0.0.1:{silent_port}/", timeout=1)


@pytest.mark.parametrize(("value", "age"), [
    ("max-age=31536000; includeSubDomains", 31536000),
    ('includeSubDomains; max-age="63072000"', 63072000),
    ("MAX-AGE=5", 5),
    ("includeSubDomains", None),
    (None, None),
])
def test_hsts_max_age_is_read_from_the_header(value, age):
    assert obs.hsts_max_age(value) == age
