"""The proxy a run reaches the target through (profile ``proxy:``), the allow-list still deciding.

```yaml
proxy:
  url: http://proxy.corp.example:3128        # every request to the target goes through it
  no_proxy: [127.0.0.1, "*.internal.example"] # hosts reached directly (allowed_hosts patterns)
```
or ``proxy: {from_environment: true}``: the run's ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
(either case), as curl and requests read them. Without ``proxy:`` no proxy is used, whatever the
environment says: a proxy is a host the run contacts, so the profile must say so.

The allow-list stays authoritative: a request's destination is checked against
``allowed_hosts`` before anything is sent, proxy or not, and the proxy's own host must be in
``allowed_hosts`` too. HTTP requests go through the proxy as requests does it (absolute URLs for
http, CONNECT for https); the raw TLS probes of suites/transport open a CONNECT tunnel.
"""

from __future__ import annotations

import base64
import socket
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .errors import TargetError


def _host_allowed(host: str, allowed: list[str]) -> bool:
    from .target import host_allowed

    return host_allowed(host, allowed)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:[REDACTED]@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


@dataclass
class Proxy:
    url: str | None = None
    no_proxy: list[str] = field(default_factory=list)
    from_environment: bool = False
    allowed_hosts: list[str] = field(default_factory=list)

    @classmethod
    def from_profile(cls, profile) -> Proxy:
        spec = (getattr(profile, "data", {}) or {}).get("proxy") or {}
        return cls(url=spec.get("url"), no_proxy=list(spec.get("no_proxy") or []),
                   from_environment=bool(spec.get("from_environment")),
                   allowed_hosts=list(profile.allowed_hosts))

    def for_url(self, url: str) -> str | None:
        """The proxy URL a request to `url` goes through, or None for a direct connection."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not (self.url or self.from_environment) or _host_allowed(host, self.no_proxy):
            return None
        if self.url:
            proxy = self.url
        else:
            env = urllib.request.getproxies_environment()
            if urllib.request.proxy_bypass_environment(host, env):
                return None
            proxy = env.get(parts.scheme) or env.get("all")
        if not proxy:
            return None
        proxy_host = (urlsplit(proxy if "://" in proxy else f"http://{proxy}").hostname or "").lower()
        if not _host_allowed(proxy_host, self.allowed_hosts):
            raise TargetError(f"refused to use the proxy {redact(proxy)} for {url}: its host {proxy_host!r} is not "
                              f"in allowed_hosts {self.allowed_hosts}")
        return proxy if "://" in proxy else f"http://{proxy}"

    def requests_proxies(self, url: str) -> dict[str, str]:
        """For requests' ``proxies=`` (the session itself never reads the environment)."""
        proxy = self.for_url(url)
        return {"http": proxy, "https": proxy} if proxy else {}

    def connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """A TCP connection to host:port, through a CONNECT tunnel when a proxy applies."""
        proxy = self.for_url(f"https://{host}:{port}/")
        if proxy is None:
            return _direct(host, port, timeout)
        p = urlsplit(proxy)
        sock = _direct(p.hostname or "", p.port or 80, timeout)
        lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
        if p.username is not None:
            token = base64.b64encode(f"{unquote(p.username)}:{unquote(p.password or '')}".encode()).decode()
            lines.append(f"Proxy-Authorization: Basic {token}")
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 16384:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        except OSError as exc:
            sock.close()
            raise TargetError(f"proxy {redact(proxy)}: CONNECT {host}:{port} failed: {exc.strerror or exc}") from None
        status = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
        if len(status.split()) < 2 or status.split()[1] != "200":
            sock.close()
            raise TargetError(f"proxy {redact(proxy)} refused CONNECT {host}:{port}: {status or 'no answer'}")
        return sock


def _direct(host: str, port: int, timeout: float) -> socket.socket:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise TargetError(f"connecting to {host}:{port} timed out after {timeout:.0f} s") from None
    except OSError as exc:
        raise TargetError(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    sock.settimeout(timeout)
    return sock


DIRECT = Proxy()
