"""Pages in headless Chromium: every request, cookie and storage write a visitor's browser makes.

Most selling and sharing on a website happens in the visitor's browser (tags, pixels, session
recorders), where no server-side observer sees it. A `Browser` drives Debian's own Chromium
(`/usr/bin/chromium`) through Playwright's Python package — no browser download: Playwright
gives typed waits, request interception and a CDP session in one well-kept library, where
Selenium would need chromedriver for the driving and the DevTools protocol anyway for request
bodies. Each `Visitor` is its own Chromium with a fresh profile (cookie jar, storage, cache) that
runs a profile's journey steps and records, for every request its pages make: method, URL, headers,
body, resource type, initiator (script URL, parser or navigation, from the DevTools protocol),
the page and step it happened on, and the time; and at the end every cookie and every origin's
localStorage.

Parties are judged by registrable domain ("eTLD+1") from the Public Suffix List snapshot that
`tldextract` ships (never fetched): `stats.mediapro.test` and `www.mediapro.test` are one party,
`pixel.adpartner.test` another. Hosts under a suffix the list does not know (`.test`, an
intranet TLD) take their last two labels, which is what Chromium does for unknown registries;
an IP address or a single-label host is its own party.

Safety: a request to a host outside the profile's `allowed_hosts` is recorded and then
aborted, so it never leaves the machine (what the page tried to send is still evidence).
Chromium's own background traffic is switched off by flags; DNS prefetching too.

A GPC visitor sends `Sec-GPC: 1` on every request (context-wide extra header) and sees
`navigator.globalPrivacyControl === true`: Chromium does not implement the property, so an
init script defines it before any page script runs, in every frame.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import tempfile
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit

from ..outcomes import CheckError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ENV = "PRIVACY_CHECKS_CHROMIUM"
DEBIAN_PACKAGE = "chromium"
# Root needs --no-sandbox; the rest stop Chromium's own traffic (updates, sync, field trials,
# QUIC probes), which on a closed network only hammers refused connections.
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic", "--dns-prefetch-disable", "--disable-features=Translate,MediaRouter",
)
GPC_INIT_SCRIPT = """
Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true, configurable: true});
"""
DEFAULT_TIMEOUTS = {"navigation": 20.0, "step": 10.0}
# How long a page may keep making requests after a step before the next one starts.
SETTLE_S = 0.2
MAX_BODY = 64_000
ROLES = ("first_party", "service_provider", "third_party", "sale", "undeclared")
# Parties whose receiving a visitor's data is sharing (CCPA) or needs consent (ePrivacy).
OUTSIDE = ("third_party", "sale", "undeclared")


class BrowserUnavailable(CheckError):
    """Chromium (or Playwright) is not installed: one line saying how to install it."""


class BrowserStepError(CheckError):
    """A page did not load or a step could not be performed; carries a screenshot when one was taken."""

    def __init__(self, message: str, *, screenshot: bytes | None = None, page: str = "") -> None:
        super().__init__(message)
        self.screenshot = screenshot
        self.page = page


# -- parties ----------------------------------------------------------------------------------

@cache
def _extractor():
    import tldextract

    # suffix_list_urls=() and no cache: the snapshot bundled with the package, nothing fetched
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def registrable_domain(host: str) -> str:
    """The registrable domain (eTLD+1) of a host, as a browser decides first and third party."""
    host = (host or "").strip("[]").rstrip(".").lower()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if "." not in host:
        return host
    parts = _extractor()(host)
    if parts.suffix and parts.domain:
        return f"{parts.domain}.{parts.suffix}"
    if parts.suffix:  # the host is itself a public suffix
        return host
    return ".".join(host.split(".")[-2:])


def _host_matches(host: str, domain: str) -> bool:
    host, domain = host.lower().lstrip("."), domain.lower().lstrip(".")
    return host == domain or host.endswith("." + domain)


@dataclass(frozen=True)
class Party:
    name: str
    role: str  # one of ROLES
    domain: str  # registrable domain

    @property
    def outside(self) -> bool:
        return self.role in OUTSIDE

    def describe(self) -> str:
        if self.role == "first_party":
            return f"{self.domain} (first party)"
        if self.role == "undeclared":
            return f"{self.domain} (UNDECLARED third party)"
        return f"{self.domain} ({self.name}, {self.role})"


class Parties:
    """Who a host belongs to: the first party, a declared recipient, or nobody declared."""

    def __init__(self, first_party: Iterable[str], recipients: Iterable[dict]) -> None:
        self.first = sorted({registrable_domain(h.removeprefix("*.")) for h in first_party if h})
        self.recipients = list(recipients)

    def of(self, host: str) -> Party:
        domain = registrable_domain(host)
        if domain in self.first:
            return Party("first party", "first_party", domain)
        for r in self.recipients:
            if any(_host_matches(host, d) or registrable_domain(d) == domain for d in r.get("domains", [])):
                return Party(r["name"], r["role"], domain)
        return Party("undeclared", "undeclared", domain)


# -- what a visitor's browser did -------------------------------------------------------------

@dataclass
class RequestRecord:
    seq: int
    at: str
    visitor: str
    step: int
    step_label: str
    page: str
    method: str
    url: str
    host: str
    party: Party
    resource_type: str
    headers: dict[str, str]
    body: str
    initiator: str = ""
    blocked: bool = False
    status: int | None = None
    set_cookies: list[str] = field(default_factory=list)

    def text(self) -> str:
        """Everything the request carried, for matching: URL, headers, body."""
        return "\n".join([self.url, json.dumps(self.headers, ensure_ascii=False), self.body])

    def to_dict(self, redact: Callable[[str], str]) -> dict[str, Any]:
        from ..evidence import redact_body, redact_headers, redact_url

        headers = {k: (_cookie_names(v) if k.lower() == "cookie" else v) for k, v in self.headers.items()}
        headers = redact_headers({k: v for k, v in headers.items() if k.lower() != "cookie"}) | {
            k: v for k, v in headers.items() if k.lower() == "cookie"}
        return {"seq": self.seq, "at": self.at, "visitor": self.visitor, "step": self.step,
                "step_label": redact(self.step_label), "page": redact(redact_url(self.page)), "method": self.method,
                "url": redact(redact_url(self.url)), "domain": self.party.domain, "party": self.party.name,
                "role": self.party.role, "resource_type": self.resource_type,
                "headers": {k: redact(v) for k, v in headers.items()},
                "body": redact(redact_body(self.body, self.headers.get("content-type", ""))),
                "initiator": redact(self.initiator), "blocked": self.blocked, "status": self.status,
                "set_cookies": self.set_cookies}


def _cookie_names(header: str) -> str:
    """A Cookie header with every value redacted: which cookies went is evidence, their values secrets."""
    from ..evidence import REDACTED

    names = [part.split("=", 1)[0].strip() for part in header.split(";") if part.strip()]
    return "; ".join(f"{n}={REDACTED}" for n in names)


@dataclass
class CookieRecord:
    name: str
    value: str
    domain: str
    path: str
    party: Party
    secure: bool
    http_only: bool
    same_site: str
    expires: float
    set_by: str = ""  # the URL of the response that set it, when a Set-Cookie header did

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "domain": self.domain, "path": self.path, "registrable_domain": self.party.domain,
                "party": self.party.name, "role": self.party.role, "secure": self.secure,
                "http_only": self.http_only, "same_site": self.same_site,
                "expires": None if self.expires < 0 else datetime.fromtimestamp(self.expires, UTC).isoformat(),
                "set_by": self.set_by}


@dataclass
class StoredItem:
    """One value a visitor's browser keeps: a cookie, or a localStorage entry of an origin."""

    kind: str  # "cookie" or "localStorage"
    where: str  # the cookie's domain, or the storage's origin
    name: str
    value: str
    party: Party

    def describe(self) -> str:
        return f"{self.kind} {self.name} of {self.where} ({self.party.describe()})"


@dataclass
class Screenshot:
    visitor: str
    step: int
    label: str
    page: str
    png: bytes


@dataclass
class StepRecord:
    index: int
    label: str
    page: str
    started_at: str
    first_request: int  # seq of the first request made during the step


# -- TLS: which certificates the browser accepts ---------------------------------------------

def spki_pin(host: str, port: int, *, cafile: str | None, check_hostname: bool = True,
             timeout: float = 5.0) -> str:
    """The base64 SHA-256 of the public key a TLS server presents, after verifying its chain
    against `cafile` (Chromium's --ignore-certificate-errors-spki-list takes exactly this).
    Without `check_hostname` only the chain is verified: a resolve rule may send a name to an
    address whose certificate names only the address."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    ctx.check_hostname = check_hostname
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise CheckError(f"cannot verify the TLS certificate of {host}:{port} for the browser "
                         f"({'CA ' + cafile if cafile else 'system CAs'}): {exc}") from None
    key = x509.load_der_x509_certificate(der).public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def resolver_rules(resolve: dict[str, str]) -> str:
    """Chromium's --host-resolver-rules for a {host pattern: IP address} map."""
    return ", ".join(f"MAP {host} {ip}" for host, ip in resolve.items())


def chromium_executable(configured: str | None = None) -> str:
    """The Chromium to drive: the profile's `browser.executable`, $PRIVACY_CHECKS_CHROMIUM, or
    Debian's /usr/bin/chromium. A missing one is one line saying how to install it."""
    path = configured or os.environ.get(CHROMIUM_ENV) or CHROMIUM
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not found:
        raise BrowserUnavailable(f"Chromium not found at {path}: install Debian's '{DEBIAN_PACKAGE}' package "
                                 f"(apt-get install {DEBIAN_PACKAGE}), or set browser.executable in the profile "
                                 f"or {CHROMIUM_ENV}")
    return found


# -- the browser ------------------------------------------------------------------------------

_DRIVER: list = []


def _driver():
    """Playwright's driver, started once per process (it takes seconds) and stopped at exit;
    every Chromium it launches belongs to one visitor and is closed with it."""
    if not _DRIVER:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise BrowserUnavailable("the Python package 'playwright' is not installed: pip install playwright "
                                     "(no browser download needed: Debian's chromium is driven)") from None
        _DRIVER.append(sync_playwright().start())
        atexit.register(_stop_driver)
    return _DRIVER[0]


def _stop_driver() -> None:
    while _DRIVER:
        try:
            _DRIVER.pop().stop()
        except Exception:  # noqa: BLE001 - at exit the driver may already be gone
            pass


class Browser:
    """Headless Chromium for one procedure: `visitor()` launches one, with a fresh profile, per visitor."""

    def __init__(self, *, allowed_hosts: list[str], parties: Parties, executable: str | None = None,
                 resolve: dict[str, str] | None = None, spki_pins: Iterable[str] = (),
                 ignore_tls_errors: bool = False, timeouts: dict[str, float] | None = None,
                 screenshots: bool = True) -> None:
        self.allowed_hosts = list(allowed_hosts)
        self.parties = parties
        self.executable = chromium_executable(executable)
        self.resolve = dict(resolve or {})
        self.spki_pins = [p for p in spki_pins if p]
        self.ignore_tls_errors = ignore_tls_errors
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.screenshots = screenshots
        self._pw = None
        self._visitors: list[Visitor] = []
        self._seq = 0
        self.version = ""

    def args(self) -> list[str]:
        args = list(CHROMIUM_FLAGS)
        if self.resolve:
            args.append(f"--host-resolver-rules={resolver_rules(self.resolve)}")
        if self.spki_pins:
            args.append(f"--ignore-certificate-errors-spki-list={','.join(self.spki_pins)}")
        return args

    def start(self) -> Browser:
        self._pw = _driver()
        return self

    def launch(self, user_data_dir: str, **context_options):
        """A Chromium process with its own profile: one per visitor (see Visitor for why)."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            context = self._pw.chromium.launch_persistent_context(
                user_data_dir, executable_path=self.executable, args=self.args(), headless=True,
                timeout=self.timeouts["navigation"] * 1000, **context_options)
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"Chromium at {self.executable} did not start: {_first_line(exc)}") from None
        if not self.version:
            try:
                self.version = context.new_cdp_session(context.pages[0] if context.pages else context.new_page()).send(
                    "Browser.getVersion").get("product", "")
            except Exception:  # noqa: BLE001 - the version is only reported
                self.version = "chromium"
        return context

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def visitor(self, name: str, *, gpc: bool = False, secrets: Iterable[str] = ()) -> Visitor:
        if self._pw is None:
            raise CheckError("the browser is not started")
        visitor = Visitor(self, name, gpc=gpc, secrets=secrets)
        self._visitors.append(visitor)
        return visitor

    def close(self) -> None:
        for v in self._visitors:
            v.close()
        self._visitors.clear()
        self._pw = None  # the driver stays for the next procedure in this process (see _driver)


class Visitor:
    """One person's browser: a fresh context and page, recording everything it does."""

    def __init__(self, browser: Browser, name: str, *, gpc: bool, secrets: Iterable[str]) -> None:
        self.browser = browser
        self.name = name
        self.gpc = gpc
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self.requests: list[RequestRecord] = []
        self.steps: list[StepRecord] = []
        self.screenshots: list[Screenshot] = []
        self.gpc_seen: list[str] = []  # pages where navigator.globalPrivacyControl was checked
        self._by_id: dict[int, RequestRecord] = {}
        self._initiators: dict[tuple[str, str], deque[str]] = defaultdict(deque)
        self._set_cookie_by: dict[str, str] = {}
        self._step = (0, "start")
        kwargs: dict[str, Any] = {"ignore_https_errors": browser.ignore_tls_errors,
                                  "viewport": {"width": 1100, "height": 800}}
        if gpc:
            kwargs["extra_http_headers"] = {"Sec-GPC": "1"}
        # A profile of its own per visitor, in its own Chromium: Playwright's contexts are
        # incognito, where Chromium blocks third-party cookies ("UserPreferences"); a visitor
        # with Chromium's regular default (third-party cookies allowed, as in Chrome) is the one
        # trackers can follow, so that is the browser the checks observe.
        self._profile_dir = tempfile.TemporaryDirectory(prefix="privacy-checks-browser-")
        os.makedirs(os.path.join(self._profile_dir.name, "Default"))
        with open(os.path.join(self._profile_dir.name, "Default", "Preferences"), "w", encoding="utf-8") as fh:
            json.dump({"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}}, fh)
        self._closed = True  # until the context exists
        self.context = browser.launch(self._profile_dir.name, **kwargs)
        self._closed = False
        self.context.set_default_timeout(browser.timeouts["step"] * 1000)
        self.context.set_default_navigation_timeout(browser.timeouts["navigation"] * 1000)
        if gpc:
            self.context.add_init_script(GPC_INIT_SCRIPT)
        self.context.route("**/*", self._route)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("request", self._on_request)
        self.page.on("response", self._on_response)
        self.page.on("requestfailed", self._on_failed)
        self._cdp = self.context.new_cdp_session(self.page)
        self._cdp.on("Network.requestWillBeSent", self._on_cdp_request)
        self._cdp.send("Network.enable")

    # -- recording ----------------------------------------------------------------------------
    def _route(self, route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        from ..target import host_allowed

        if route.request.url.startswith(("data:", "blob:", "about:")) or host_allowed(host, self.browser.allowed_hosts):
            route.continue_()
        else:
            # recorded by the request event already; it must not leave the machine
            route.abort("blockedbyclient")

    def _on_cdp_request(self, event: dict) -> None:
        initiator = event.get("initiator") or {}
        kind = initiator.get("type", "")
        url = initiator.get("url") or ""
        for frame in ((initiator.get("stack") or {}).get("callFrames") or []):
            if frame.get("url"):
                url = frame["url"]
                break
        request = event.get("request") or {}
        self._initiators[(request.get("method", ""), request.get("url", ""))].append(f"{kind} {url}".strip())

    def _on_request(self, request) -> None:
        url = request.url
        if url.startswith(("data:", "blob:")):
            return
        host = urlsplit(url).hostname or ""
        try:
            body = request.post_data or ""
        except (UnicodeDecodeError, ValueError):
            raw = request.post_data_buffer or b""
            body = raw.decode("utf-8", "replace")
        try:
            page = request.frame.url
        except Exception:  # noqa: BLE001 - a detached frame has no URL any more
            page = ""
        from ..target import host_allowed

        record = RequestRecord(
            seq=self.browser.next_seq(), at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            visitor=self.name, step=self._step[0], step_label=self._step[1], page=page, method=request.method,
            url=url, host=host, party=self.browser.parties.of(host), resource_type=request.resource_type,
            headers=dict(request.headers), body=body[:MAX_BODY],
            blocked=not host_allowed(host, self.browser.allowed_hosts))
        self.requests.append(record)
        self._by_id[id(request)] = record

    def _on_response(self, response) -> None:
        record = self._by_id.get(id(response.request))
        if record is None:
            return
        record.status = response.status
        try:
            headers = response.headers_array()
        except Exception:  # noqa: BLE001 - the page went away; the status is enough
            return
        for h in headers:
            if h["name"].lower() == "set-cookie":
                for line in h["value"].split("\n"):
                    name = line.split("=", 1)[0].strip()
                    if name:
                        record.set_cookies.append(name)
                        self._set_cookie_by.setdefault(name, record.url)

    def _on_failed(self, request) -> None:
        record = self._by_id.get(id(request))
        if record is not None and record.status is None:
            record.status = 0

    def _join_initiators(self) -> None:
        for record in self.requests:
            if not record.initiator:
                queue = self._initiators.get((record.method, record.url))
                if queue:
                    record.initiator = queue.popleft()

    # -- steps --------------------------------------------------------------------------------
    def _begin(self, label: str) -> int:
        index = len(self.steps) + 1
        self._step = (index, label)
        self.steps.append(StepRecord(index, label, self.page.url, datetime.now(UTC).isoformat(timespec="milliseconds"),
                                     self.browser._seq + 1))
        return index

    def _fail(self, label: str, what: str, *, page: str | None = None) -> BrowserStepError:
        shot = self._screenshot(label, force=True)
        page = page or self.page.url
        return BrowserStepError(self.redact(f"visitor {self.name}, page {page}, step {len(self.steps)} ({label}): "
                                            f"{what}"), screenshot=shot, page=self.redact(page))

    def _screenshot(self, label: str, *, force: bool = False) -> bytes | None:
        if not (self.browser.screenshots or force):
            return None
        try:
            png = self.page.screenshot(timeout=self.browser.timeouts["step"] * 1000)
        except Exception:  # noqa: BLE001 - a page that cannot be drawn has no screenshot; the error says why
            return None
        self.screenshots.append(Screenshot(self.name, len(self.steps), label, self.page.url, png))
        return png

    def _settle(self) -> None:
        self.page.wait_for_timeout(SETTLE_S * 1000)

    def visit(self, url: str, *, label: str | None = None) -> None:
        from playwright.sync_api import Error as PlaywrightError

        label = label or f"visit {url}"
        self._begin(label)
        host = urlsplit(url).hostname or ""
        from ..target import host_allowed

        if not host_allowed(host, self.browser.allowed_hosts):
            raise BrowserStepError(self.redact(f"visitor {self.name}, step {len(self.steps)} ({label}): refused to "
                                               f"open {url}: host {host!r} is not in allowed_hosts "
                                               f"{self.browser.allowed_hosts}"))
        try:
            response = self.page.goto(url, wait_until="load")
        except PlaywrightError as exc:
            raise self._fail(label, f"the page never loaded: {_first_line(exc)}", page=url) from None
        if response is not None and response.status >= 400:
            raise self._fail(label, f"the page answered HTTP {response.status}", page=url)
        self._after_load()
        self._settle()
        self._screenshot(label)

    def _after_load(self) -> None:
        if self.gpc:
            try:
                if self.page.evaluate("navigator.globalPrivacyControl") is True:
                    self.gpc_seen.append(self.page.url)
            except Exception:  # noqa: BLE001 - checked again on the next page
                pass

    def _locate(self, selector: str, label: str):
        from playwright.sync_api import Error as PlaywrightError

        try:
            locator = self.page.locator(selector).first
            locator.wait_for(state="visible")
        except PlaywrightError as exc:
            timeout = self.browser.timeouts["step"]
            raise self._fail(label, f"selector {selector!r} never appeared within {timeout:.0f} s "
                                    f"({_first_line(exc)})") from None
        return locator

    def fill(self, selector: str, value: str, *, label: str | None = None) -> None:
        """Type the value key by key, as a person does, so a script listening to keystrokes sees it."""
        from playwright.sync_api import Error as PlaywrightError

        label = label or f"fill {selector}"
        self._begin(label)
        locator = self._locate(selector, label)
        try:
            locator.fill("")
            locator.press_sequentially(value)
        except PlaywrightError as exc:
            raise self._fail(label, f"could not type into {selector!r}: {_first_line(exc)}") from None

    def click(self, selector: str, *, label: str | None = None, navigates: bool = False) -> None:
        from playwright.sync_api import Error as PlaywrightError

        label = label or f"click {selector}"
        self._begin(label)
        locator = self._locate(selector, label)
        if navigates:
            # the form as filled in, before it goes: what a script reading fields saw
            self._screenshot(f"before {label}")
        try:
            if navigates:
                with self.page.expect_navigation(wait_until="load"):
                    locator.click()
                self._after_load()
            else:
                locator.click()
        except PlaywrightError as exc:
            what = "no page loaded after the click" if navigates else "the click failed"
            raise self._fail(label, f"{what}: {_first_line(exc)}") from None
        self._settle()
        self._screenshot(label)

    def follow_link(self, text: str, *, label: str | None = None) -> None:
        """Click the link whose text is `text` (e.g. "Do Not Sell or Share My Personal Information")."""
        from playwright.sync_api import Error as PlaywrightError

        label = label or f"follow link {text!r}"
        self._begin(label)
        locator = self.page.get_by_role("link", name=text, exact=False).first
        try:
            locator.wait_for(state="visible")
        except PlaywrightError:
            timeout = self.browser.timeouts["step"]
            raise self._fail(label, f"no link {text!r} on the page within {timeout:.0f} s") from None
        try:
            with self.page.expect_navigation(wait_until="load"):
                locator.click()
        except PlaywrightError as exc:
            raise self._fail(label, f"following the link loaded no page: {_first_line(exc)}") from None
        self._after_load()
        self._settle()
        self._screenshot(label)

    def wait_for(self, selector: str, *, label: str | None = None) -> None:
        label = label or f"wait for {selector}"
        self._begin(label)
        self._locate(selector, label)

    def text_of(self, selector: str, *, label: str | None = None) -> str:
        label = label or f"read {selector}"
        self._begin(label)
        return (self._locate(selector, label).text_content() or "").strip()

    def consent(self, spec: dict, choice: str) -> None:
        """Make a choice in the consent banner the profile describes; a missing banner is an error."""
        from playwright.sync_api import Error as PlaywrightError

        label = f"consent: {choice}"
        self._begin(label)
        banner = spec.get("banner")
        if banner:
            try:
                self.page.locator(banner).first.wait_for(state="visible")
            except PlaywrightError:
                timeout = self.browser.timeouts["step"]
                raise self._fail(label, f"the profile describes a consent banner (browser.consent.banner "
                                        f"{banner!r}) but the page does not show it within {timeout:.0f} s") from None
        button = spec.get(choice)
        if not button:
            raise self._fail(label, f"the profile gives no browser.consent.{choice} selector")
        locator = self._locate(button, label)
        try:
            locator.click()
        except PlaywrightError as exc:
            raise self._fail(label, f"the {choice} button could not be clicked: {_first_line(exc)}") from None
        self._settle()
        self._screenshot(label)

    def banner_shown(self, spec: dict) -> None:
        """Wait for the consent banner without choosing; a missing banner is an error."""
        from playwright.sync_api import Error as PlaywrightError

        label = "consent banner shown (no choice made)"
        self._begin(label)
        try:
            self.page.locator(spec["banner"]).first.wait_for(state="visible")
        except PlaywrightError:
            timeout = self.browser.timeouts["step"]
            raise self._fail(label, f"the profile describes a consent banner (browser.consent.banner "
                                    f"{spec['banner']!r}) but the page does not show it within {timeout:.0f} s") from None
        self._screenshot(label)

    def leave(self) -> str:
        """Unload the current page (for about:blank), so what it sends as it goes (pagehide beacons)
        is sent before whatever comes next; returns the URL left."""
        left = self.page.url
        self._begin("leave the page")
        self.page.goto("about:blank", wait_until="load")
        self._settle()
        return left

    def barrier(self, url: str) -> RequestRecord:
        """Load a first-party page and have it fetch itself: a first-party request that comes after
        everything earlier pages sent, unload beacons included (those go out as the page commits)."""
        from playwright.sync_api import Error as PlaywrightError

        self.visit(url, label=f"barrier: visit {url}")
        label = "barrier: first-party request"
        self._begin(label)
        before = self.browser._seq
        try:
            # evaluate() has no timeout of its own: the fetch carries one
            self.page.evaluate("([u, ms]) => fetch(u, {cache: 'no-store', signal: AbortSignal.timeout(ms)})"
                               ".then(r => r.status)", [self.page.url, self.browser.timeouts["step"] * 1000])
        except PlaywrightError as exc:
            raise self._fail(label, f"the barrier request failed: {_first_line(exc)}") from None
        self._settle()
        barrier = next((r for r in self.requests if r.seq > before and r.party.role == "first_party"), None)
        if barrier is None:
            raise self._fail(label, "no first-party request was observed after the journey, so requests still in "
                                    "flight cannot be ruled out")
        return barrier

    def run(self, step: dict, render: Callable[[Any], Any], resolve_url: Callable[[str], str],
            consent: dict | None, captured: dict) -> None:
        """One profile step (see docs/profile.md, browser.journeys)."""
        timeout = step.get("timeout")
        if timeout:
            self.page.set_default_timeout(float(timeout) * 1000)
        try:
            if "visit" in step:
                self.visit(resolve_url(str(render(step["visit"]))))
            elif "fill" in step:
                spec = step["fill"]
                self.fill(spec["selector"], str(render(spec["value"])), label=f"fill {spec['selector']}")
            elif "click" in step:
                self.click(step["click"])
            elif "submit" in step:
                self.click(step["submit"], label=f"submit {step['submit']}", navigates=True)
            elif "wait_for" in step:
                self.wait_for(step["wait_for"])
            elif "follow_link" in step:
                self.follow_link(step["follow_link"])
            elif "consent" in step:
                if not consent:
                    raise CheckError("a journey step makes a consent choice but the profile declares no "
                                     "browser.consent banner")
                self.consent(consent, step["consent"])
            elif "capture" in step:
                for name, selector in step["capture"].items():
                    value = self.text_of(selector, label=f"capture {name} from {selector}")
                    if not value:
                        raise self._fail(f"capture {name} from {selector}", f"{selector!r} holds no text to capture")
                    captured[name] = value
            else:
                raise CheckError(f"unknown browser step {sorted(step)}")
        finally:
            if timeout:
                self.page.set_default_timeout(self.browser.timeouts["step"] * 1000)

    # -- what it holds at the end -------------------------------------------------------------
    def cookies(self) -> list[CookieRecord]:
        out = []
        for c in self.context.cookies():
            host = c.get("domain", "").lstrip(".")
            out.append(CookieRecord(name=c["name"], value=c.get("value", ""), domain=c.get("domain", ""),
                                    path=c.get("path", "/"), party=self.browser.parties.of(host),
                                    secure=bool(c.get("secure")), http_only=bool(c.get("httpOnly")),
                                    same_site=str(c.get("sameSite", "")), expires=float(c.get("expires", -1)),
                                    set_by=self._set_cookie_by.get(c["name"], "")))
        return out

    def stored(self) -> list[StoredItem]:
        """Every cookie and localStorage entry the browser holds now, values included (never evidence)."""
        state = self.context.storage_state()
        items = [StoredItem("cookie", c.get("domain", ""), c["name"], c.get("value", ""),
                            self.browser.parties.of(c.get("domain", "").lstrip(".")))
                 for c in state.get("cookies", [])]
        for origin in state.get("origins", []):
            party = self.browser.parties.of(urlsplit(origin["origin"]).hostname or "")
            items += [StoredItem("localStorage", origin["origin"], i["name"], i["value"], party)
                      for i in origin.get("localStorage", [])]
        return items

    def holding(self, needles: Iterable) -> list[str]:
        """Which stored items hold one of `needles` (observe/forms.Needle), in any form the
        Matcher knows: one line per item and value, naming where and how, never the value."""
        from .forms import Matcher

        matcher = Matcher(list(needles))
        out = []
        for item in self.stored():
            for where, text in (("name", item.name), ("value", item.value)):
                for form in dict.fromkeys(f"{m.needle.field} ({m.form})" for m in matcher.find(text)):
                    out.append(f"{item.describe()}: {form} in its {where}")
        return out

    def storage(self) -> list[dict[str, Any]]:
        """localStorage per origin (keys and value lengths: the values may be secrets)."""
        try:
            state = self.context.storage_state()
        except Exception:  # noqa: BLE001 - storage is recorded where observable
            return []
        return [{"origin": o["origin"], "items": {i["name"]: f"{len(i['value'])} characters"
                                                    for i in o.get("localStorage", [])}}
                for o in state.get("origins", [])]

    def redact(self, text: str) -> str:
        """Values the profile gave literally or from the environment (secrets) never reach evidence."""
        from ..evidence import REDACTED

        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def timeline(self) -> dict[str, Any]:
        """What this visitor's browser did, for the evidence (redacted)."""
        self._join_initiators()
        return {"visitor": self.name, "gpc": self.gpc, "gpc_property_seen_on": self.gpc_seen,
                "steps": [{**asdict(s), "label": self.redact(s.label), "page": self.redact(s.page)} for s in self.steps],
                "requests": [r.to_dict(self.redact) for r in self.requests],
                "cookies": [c.to_dict() for c in self.cookies()] if not self._closed else [],
                "local_storage": self.storage() if not self._closed else []}

    def finish(self) -> dict[str, Any]:
        """Record the end state, then close the context."""
        self._join_initiators()
        self.final_cookies = self.cookies()
        data = self.timeline()
        self.close()
        return data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.context.close()
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass
        self._profile_dir.cleanup()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("="):
            return re.sub(r"\s+", " ", line)[:300]
    return type(exc).__name__


def join_url(base: str, path: str) -> str:
    """A step's URL: absolute as given, else resolved against the browser's start URL as a link
    on that page would be (`/web/signup` from the origin, `signup` from the start URL's folder)."""
    if re.match(r"^https?://", path):
        return path
    return urljoin(base, path)

