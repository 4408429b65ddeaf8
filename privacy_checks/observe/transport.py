"""Observing transport security from the outside: TLS handshakes, certificates, plain-http
answers, HSTS, cookies, and personal data in URLs.

Every probe has a timeout and names host and port when it runs out. The TLS version probe
says honestly what it could test on this machine: before concluding "the server refused TLS
1.0" it proves that our own client can complete a TLS 1.0 handshake at all (against a local
server that only speaks TLS 1.0); when it cannot — a Python or OpenSSL build without the old
protocols — the answer is "cannot probe", never a pass.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import warnings
from dataclasses import dataclass, field
from functools import cache
from urllib.parse import urlsplit

from ..errors import TargetError
from .forms import match_text

ONE_YEAR = 31536000
LEGACY_VERSIONS = {"TLS 1.0": "TLSv1", "TLS 1.1": "TLSv1_1"}
_HAS = {"TLSv1": "HAS_TLSv1", "TLSv1_1": "HAS_TLSv1_1"}
# Handshake failures that come from our own configuration, not from the server's answer.
_OUR_SIDE = ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_CIPHER_MATCH", "UNSUPPORTED_PROTOCOL_VERSION")


def endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port


# -- TLS protocol versions --------------------------------------------------------------------

@dataclass
class VersionProbe:
    version: str  # "TLS 1.0"
    host: str
    port: int
    outcome: str  # accepted | refused | cannot_probe
    detail: str

    def describe(self) -> str:
        return f"{self.version} to {self.host}:{self.port}: {self.outcome} ({self.detail})"


def _legacy_context(attr: str, *, server: bool = False) -> ssl.SSLContext:
    """A context that offers exactly one old version, with every cipher OpenSSL still has."""
    version = getattr(ssl.TLSVersion, attr)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    if not server:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # acceptance of the protocol is the question, not trust
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # offering the old versions is the point
        ctx.minimum_version = version
        ctx.maximum_version = version
    # Modern OpenSSL refuses TLS 1.0/1.1 signatures and ciphers above security level 0.
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


@cache
def client_cannot_offer(attr: str) -> str | None:
    """Why this machine's client cannot complete a handshake at `attr`; None when it can.

    Proven, not assumed: a loopback server speaking only that version must accept us.
    """
    name = attr.replace("TLSv1_1", "TLS 1.1").replace("TLSv1", "TLS 1.0")
    if not getattr(ssl, _HAS[attr], False):
        return f"this Python's ssl module ({ssl.OPENSSL_VERSION}) was built without {name}"
    try:
        import trustme

        client = _legacy_context(attr)
        server = _legacy_context(attr, server=True)
        trustme.CA().issue_cert("127.0.0.1").configure_cert(server)
    except (ssl.SSLError, ValueError) as exc:
        return f"{ssl.OPENSSL_VERSION} cannot be configured to offer {name}: {exc}"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(5)
        try:
            with server.wrap_socket(conn, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            got = tls.version()
    except (ssl.SSLError, OSError) as exc:
        return (f"{ssl.OPENSSL_VERSION} could not complete a {name} handshake even with a local server "
                f"that speaks only {name} ({_reason(exc)})")
    finally:
        listener.close()
        thread.join(5)
    expected = {"TLSv1": "TLSv1", "TLSv1_1": "TLSv1.1"}[attr]
    if got != expected:
        return f"a handshake restricted to {name} negotiated {got}"
    return None


def probe_tls_version(host: str, port: int, version: str, *, timeout: float = 10.0, proxy=None) -> VersionProbe:
    """Offer only `version` ("TLS 1.0" or "TLS 1.1") to host:port and report what happened."""
    attr = LEGACY_VERSIONS[version]
    why = client_cannot_offer(attr)
    if why:
        return VersionProbe(version, host, port, "cannot_probe", why)
    ctx = _legacy_context(attr)
    raw = _connect(host, port, timeout, proxy)
    try:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            return VersionProbe(version, host, port, "accepted",
                                f"negotiated {tls.version()} with cipher {tls.cipher()[0]}")
    except TimeoutError:
        raise TargetError(f"TLS handshake with {host}:{port} timed out after {timeout:.0f} s "
                          "(the port accepted the connection but never answered)") from None
    except ssl.SSLError as exc:
        reason = _reason(exc)
        if any(code in reason.upper() for code in _OUR_SIDE):
            return VersionProbe(version, host, port, "cannot_probe",
                                f"our client gave up before the server could answer: {reason}")
        return VersionProbe(version, host, port, "refused", reason)
    except OSError as exc:
        # A reset or EOF in the middle of the handshake is how many servers refuse old versions.
        return VersionProbe(version, host, port, "refused", f"connection closed during the handshake: {exc}")
    finally:
        raw.close()


# -- certificates -----------------------------------------------------------------------------

@dataclass
class CertificateCheck:
    host: str
    port: int
    trusted: bool
    reason: str = ""
    subject: str = ""
    issuer: str = ""
    not_after: str = ""
    ca_bundle: str | None = None


def check_certificate(host: str, port: int, ca_bundle: str | None, *, timeout: float = 10.0,
                      proxy=None) -> CertificateCheck:
    """Whether host:port presents a certificate valid for `host` that chains to `ca_bundle`
    (the system's trust store when None). Unreachable or hanging ports raise TargetError."""
    ctx = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
    raw = _connect(host, port, timeout, proxy)
    result = CertificateCheck(host, port, trusted=False, ca_bundle=ca_bundle)
    try:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert() or {}
            result.trusted = True
            result.subject = _name(cert.get("subject"))
            result.issuer = _name(cert.get("issuer"))
            result.not_after = cert.get("notAfter", "")
            return result
    except ssl.SSLCertVerificationError as exc:
        result.reason = exc.verify_message or _reason(exc)
    except TimeoutError:
        raise TargetError(f"TLS handshake with {host}:{port} timed out after {timeout:.0f} s "
                          "(the port accepted the connection but never answered)") from None
    except (ssl.SSLError, OSError) as exc:
        raise TargetError(f"TLS handshake with {host}:{port} failed before any certificate was judged: "
                          f"{_reason(exc)}") from None
    finally:
        raw.close()
    # Describe what was presented instead, from an unverified second look.
    try:
        result.subject, result.issuer, result.not_after = _presented(host, port, timeout, proxy)
    except (ssl.SSLError, OSError, ValueError):
        pass
    return result


def _presented(host: str, port: int, timeout: float, proxy=None) -> tuple[str, str, str]:
    from cryptography import x509

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with _connect(host, port, timeout, proxy) as raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc.isoformat()


def _name(rdns) -> str:
    return ", ".join(f"{k}={v}" for rdn in rdns or () for k, v in rdn)


# -- plain http and response headers ----------------------------------------------------------

@dataclass
class HttpAnswer:
    url: str
    status: int | None  # None: nothing listens
    headers: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)
    body: str = ""
    refused: str = ""


def http_get(url: str, *, timeout: float, headers: dict[str, str] | None = None, verify=True,
             proxy=None) -> HttpAnswer:
    """One GET, no redirects followed. A refused connection is an answer (nothing listens);
    a timeout is not."""
    import requests

    with requests.Session() as session:
        session.trust_env = False  # only the profile's proxy (proxy.py), never the environment's on its own
        try:
            resp = session.get(url, headers=headers or {}, timeout=(min(5.0, timeout), timeout),
                               allow_redirects=False, verify=verify,
                               proxies=proxy.requests_proxies(url) if proxy is not None else {})
        except requests.exceptions.Timeout:
            host, port = endpoint(url)
            raise TargetError(f"GET {url} timed out after {timeout:.0f} s ({host}:{port} never answered)") from None
        except requests.exceptions.SSLError as exc:
            host, _ = endpoint(url)
            raise TargetError(f"GET {url}: TLS failure: certificate not trusted for {host} or handshake failed "
                              f"({_reason(exc)})") from None
        except requests.exceptions.ConnectionError as exc:
            if "refused" in str(exc).lower():
                return HttpAnswer(url, None, refused=str(exc)[-200:])
            raise TargetError(f"GET {url}: cannot reach it ({_reason(exc)})") from None
        raw_cookies = resp.raw.headers.getlist("Set-Cookie") if resp.raw is not None else []
        return HttpAnswer(url, resp.status_code, dict(resp.headers), list(raw_cookies),
                          resp.content[:20000].decode("utf-8", "replace"))


def hsts_max_age(value: str | None) -> int | None:
    if not value:
        return None
    m = re.search(r"(?i)(?:^|;)\s*max-age\s*=\s*\"?(\d+)\"?", value)
    return int(m.group(1)) if m else None


# -- cookies ----------------------------------------------------------------------------------

@dataclass
class CookieSeen:
    name: str
    secure: bool
    http_only: bool
    same_site: str | None
    path: str = "/"

    def missing(self) -> list[str]:
        out = [] if self.secure else ["Secure"]
        out += [] if self.http_only else ["HttpOnly"]
        if not self.same_site:
            out.append("SameSite")
        elif self.same_site.lower() == "none" and not self.secure:
            out.append("SameSite=None requires Secure")
        return out


def cookies_in(jar) -> list[CookieSeen]:
    out = []
    for c in jar:
        rest = {k.lower(): v for k, v in (getattr(c, "_rest", None) or {}).items()}
        out.append(CookieSeen(c.name, bool(c.secure), "httponly" in rest, rest.get("samesite"), c.path or "/"))
    return out


# -- personal data in URLs --------------------------------------------------------------------

def canaries_in_urls(exchanges, captures, needles) -> list[str]:
    """Where a needle appears in a URL path or query, a Location header or a Referer, in the
    framework's recorded exchanges and in what recipients received."""
    found = []

    def look(text: str, where: str) -> None:
        for m in match_text(text or "", needles):
            found.append(f"{where}: field {m.needle.field} ({m.form})")

    for ex in exchanges:
        parts = urlsplit(ex.url)
        look(parts.path + ("?" + parts.query if parts.query else ""), f"URL of {ex.method} {ex.url}")
        for name, value in ex.response_headers.items():
            if name.lower() in ("location", "content-location", "refresh"):
                look(value, f"{name} header answering {ex.method} {_path(ex.url)}: {value}")
        for name, value in ex.request_headers.items():
            if name.lower() == "referer":
                look(value, f"Referer sent with {ex.method} {_path(ex.url)}: {value}")
    for cap in captures:
        if cap.scheme == "smtp":
            continue  # a mail's "path" is its recipient's address, not a URL
        look(cap.path + ("?" + cap.query if cap.query else ""), f"URL of delivery {cap.method} {cap.path}")
        for name, value in cap.headers.items():
            if name.lower() == "referer":
                look(value, f"Referer on delivery {cap.method} {cap.path}: {value}")
    return found


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def listening(host: str, port: int, timeout: float) -> bool:
    """Whether anything accepts a TCP connection on host:port (a dead target does not)."""
    try:
        _connect(host, port, timeout).close()
    except TargetError:
        return False
    return True


# -- helpers ----------------------------------------------------------------------------------

def _connect(host: str, port: int, timeout: float, proxy=None) -> socket.socket:
    """A connection for a raw TLS probe: direct, or through the profile's proxy (CONNECT)."""
    from ..proxy import DIRECT

    return (proxy or DIRECT).connect(host, port, timeout)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = str(exc)
    # requests/urllib3 wrap the TLS error in several reprs; the verification clause is what matters
    m = re.search(r"certificate verify failed: [^'\"()]+", text)
    if m:
        return m.group(0).strip()
    if isinstance(reason, str) and reason not in text:
        text = f"{reason}: {text}"
    return re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)[:300]
