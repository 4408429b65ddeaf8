"""Procedures behind suites/web: what a visitor's browser sends, judged where the data leaves.

Every procedure drives real headless Chromium (observe/browser.py) through the journeys the
profile's `browser:` section declares, one visitor (one fresh browser) per synthetic subject,
and keeps each visitor's request timeline and cookies as evidence. The order is the one the
server-side procedures keep (flows/sharing.py):

1. positive control — the *reference visit* (suites/web/conftest.py runs it once per run): a
   control visitor with no opt-out and no GPC, consent accepted, signs up and browses. It must
   show that the recipients a choice has to stop do receive a visitor's identifiers (canaries in
   any form, or the value of a cookie the visitor's browser holds), that what a visitor types is
   seen leaving the page for the first party, and that third-party requests do happen once
   consent is given; otherwise an absence for the subject would prove nothing (*error*);
2. the subject visitor runs the same journeys with the choice under test: `Sec-GPC: 1` plus
   `navigator.globalPrivacyControl`, the site's own "Do Not Sell or Share" link, or no choice
   and then a rejection in the consent banner;
3. barrier — a later first-party page fetches itself, so everything earlier pages sent (their
   unload beacons included) has been observed before anything is judged;
4. judge, per request: its recipient by registrable domain, and what of the subject it carried,
   through observe/forms.py's Matcher (exact, case-folded, URL-encoded, base64, md5/sha1/sha256
   of the normalised value — the "advanced matching" digest of a trimmed lower-case email).

Procedures never raise for a broken promise; checks/web.py judges the recorded outcome.
"""

from __future__ import annotations

import json
import re
import tempfile
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import PrivacyChecksError
from ..evidence import redact_text
from ..observe import browser as obs
from ..observe.forms import Matcher, Needle, excerpt
from ..outcomes import ControlFailed, NotApplicable, NotVerified, not_offered, settle
from ..profile import host_allowed

_SUBJECT_FIELD = re.compile(r"\{\{\s*subject\.(\w+)\s*\}\}")
_TEMPLATE = re.compile(r"\{\{.*?\}\}")
MAX_SCREENSHOTS = 5  # per visitor: the pages behind the first findings


# -- what the checks judge --------------------------------------------------------------------

@dataclass
class Leak:
    """Something of a visitor's that a request carried to a recipient."""

    visitor: str
    page: str
    step: str
    seq: int
    at: str
    method: str
    url: str
    domain: str
    recipient: str
    role: str
    field: str
    form: str
    where: str
    excerpt: str
    before_submit: bool = False

    def request_line(self) -> str:
        return (f"page {self.page} (step '{self.step}'): {self.method} {self.url} to {self.domain} "
                f"({self.recipient}, {self.role}) at {self.at}")


def group(leaks: list[Leak]) -> list[str]:
    """One line per request: page, step, request URL, domain and recipient, every field it carried."""
    by_seq: dict[int, list[Leak]] = {}
    for leak in leaks:
        by_seq.setdefault(leak.seq, []).append(leak)
    out = []
    for items in by_seq.values():
        first = items[0]
        what = ", ".join(dict.fromkeys(f"{i.field} ({i.form}, in {i.where})" for i in items))
        when = " before the form was submitted" if any(i.before_submit for i in items) else ""
        out.append(f"{first.request_line()}{when}: {what}; {first.excerpt}")
    return out


@dataclass
class CookieFinding:
    visitor: str
    name: str
    domain: str
    party: str
    set_by: str

    def describe(self) -> str:
        by = f", set by {self.set_by}" if self.set_by else ""
        return f"cookie {self.name} on {self.domain}: {self.party}{by} (in the browser of the {self.visitor})"


@dataclass
class WebOutcome:
    kind: str
    label: str = ""
    error: str | None = None
    skip: Exception | None = None
    examined: dict[str, int] = field(default_factory=dict)
    leaks: list[Leak] = field(default_factory=list)
    requests_outside: list[str] = field(default_factory=list)
    cookies: list[CookieFinding] = field(default_factory=list)
    control: list[str] = field(default_factory=list)
    barrier: str = ""
    typed: list[str] = field(default_factory=list)
    evidence: Any = None
    # kept for the procedures that take the reference visit as their positive control
    control_attachments: list = field(default_factory=list)
    identifier_leaks: list[Leak] = field(default_factory=list)
    typed_seen_first: int = 0  # requests to the first party (or a service provider) carrying typed values
    third_party_cookies: int = 0  # cookies of any party but the first in the visitor's browser
    outside_while_browsing: int = 0  # third-party requests of the browse journey and barrier page, consent given


# -- one procedure's browser ------------------------------------------------------------------

def browser_spec(profile) -> dict:
    spec = profile.browser
    if not spec:
        raise NotVerified("the profile declares no browser section (browser: pages a visitor opens, see "
                          "docs/profile.md), so what a visitor's browser sends to third parties cannot be observed")
    return spec


def _first_party(profile, spec: dict) -> list[str]:
    if spec.get("first_party"):
        return list(spec["first_party"])
    hosts = [urlsplit(profile.base_url).hostname or ""]
    if spec.get("start_url"):
        hosts.append(urlsplit(spec["start_url"]).hostname or "")
    return [h for h in hosts if h]


def _resolved(host: str, resolve: dict[str, str]) -> str:
    for pattern, ip in resolve.items():
        if host_allowed(host, [pattern]):
            return ip.strip("[]")
    return host


def _capture_ca(sink_url: str) -> str | None:
    """Our capture server's CA (PEM), so the browser reaches it under the vendors' names."""
    from ..observe.sinks import CONTROL_PREFIX

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{sink_url.rstrip('/')}{CONTROL_PREFIX}/tls", timeout=5) as resp:
            return json.loads(resp.read()).get("ca_pem")
    except (OSError, ValueError):
        return None


def _pins(run, profile, spec: dict, start_url: str) -> list[str]:
    """Keys the browser accepts although no system CA vouches for them: the target's, verified
    against the profile's tls.ca_bundle, and our capture server's, verified against its own CA
    (the demo's vendors send to it under their own names)."""
    pins = []
    bundle = (profile.tls or {}).get("ca_bundle")
    start = urlsplit(start_url)
    if bundle and start.scheme == "https":
        address = _resolved(start.hostname or "", spec.get("resolve") or {})
        pins.append(obs.spki_pin(address, start.port or 443, cafile=bundle, check_hostname=False))
    sink = run.sink_url
    pem = _capture_ca(sink) if sink else None
    if pem:
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as fh:
            fh.write(pem)
            fh.flush()
            parts = urlsplit(sink)
            pins.append(obs.spki_pin(parts.hostname or "127.0.0.1", parts.port or 443, cafile=fh.name,
                                     check_hostname=False))
    return pins


class WebSession:
    """The browser work of one procedure: visitors, the subjects they are, their evidence."""

    def __init__(self, run, test_id: str, evidence) -> None:
        self.run, self.test_id, self.evidence = run, test_id, evidence
        self.profile, self.target = run.profile, run.target
        self.spec = browser_spec(self.profile)
        self.start_url = self.spec.get("start_url") or self.profile.base_url
        self.parties = obs.Parties(_first_party(self.profile, self.spec), self.spec.get("recipients") or [])
        self.journeys: dict[str, list[dict]] = self.spec.get("journeys") or {}
        self.consent_spec = self.spec.get("consent") or {}
        tls = self.profile.tls or {}
        self.browser = obs.Browser(
            allowed_hosts=self.profile.allowed_hosts, parties=self.parties, executable=self.spec.get("executable"),
            resolve=self.spec.get("resolve") or {}, ignore_tls_errors=tls.get("verify") is False,
            spki_pins=[] if tls.get("verify") is False else _pins(run, self.profile, self.spec, self.start_url),
            timeouts=self.spec.get("timeouts"))
        self.browser.start()
        self.visitors: list[obs.Visitor] = []
        self.typed: dict[str, dict[str, str]] = {}  # visitor -> {field: value typed}
        self.submitted: dict[str, int] = {}  # visitor -> seq of the first request of its first submit
        evidence.stage("browser", chromium=self.browser.executable, first_party=self.parties.first,
                       recipients=[{k: r[k] for k in ("name", "role", "domains")} for r in self.parties.recipients],
                       start_url=self.start_url)

    # -- visitors -----------------------------------------------------------------------------
    def visitor(self, name: str, *, gpc: bool = False) -> obs.Visitor:
        visitor = self.browser.visitor(name, gpc=gpc, secrets=self._secrets())
        self.visitors.append(visitor)
        self.typed[name] = {}
        return visitor

    def _secrets(self) -> list[str]:
        """Values typed into pages that come from the profile itself (literals, ${VAR}): secrets."""
        out = []
        for steps in self.journeys.values():
            for step in steps:
                value = (step.get("fill") or {}).get("value")
                if isinstance(value, str) and not _TEMPLATE.search(value):
                    out.append(value)
        return out

    def sign_up(self, visitor: obs.Visitor, role: str, *, consent: str | None = "accept"):
        """Make the visitor a synthetic subject: through the `signup` journey when the profile has
        one (the ids it captures go to the ledger), else the `create_subject` operation and `login`."""
        if "signup" in self.journeys:
            return self.run.create_subject(self.test_id, role=role,
                                           creator=lambda s: self.journey(visitor, "signup", s, consent=consent))
        subject = self.run.create_subject(self.test_id, role=role)
        if "login" in self.journeys:
            self.journey(visitor, "login", subject, consent=consent)
        return subject

    def journey(self, visitor: obs.Visitor, name: str, subject, *, consent: str | None = "accept") -> None:
        """Run a journey. When the profile says consent is required, right after the visitor's first
        page loads it makes `consent`'s choice in the banner ("accept" or "reject"), or with "none"
        only makes sure the banner is shown; None leaves the banner alone."""
        steps = self.journeys.get(name)
        if not steps:
            raise ControlFailed(f"the profile declares no browser.journeys.{name}")
        ctx = {"subject": subject.template_context(), "captured": subject.captured, "params": {}}

        def render(value):
            return self.target.render(value, ctx)

        for step in steps:
            fresh = not visitor.steps
            before = self.browser._seq
            visitor.run(step, render, lambda path: obs.join_url(self.start_url, path), self.consent_spec,
                        subject.captured)
            if "fill" in step:
                for field_name in _SUBJECT_FIELD.findall(step["fill"]["value"]):
                    if field_name in subject.fields:
                        self.typed[visitor.name][field_name] = subject.fields[field_name]
            if "submit" in step and visitor.name not in self.submitted:
                self.submitted[visitor.name] = before + 1
            if fresh and "visit" in step and consent and self.consent_spec.get("required"):
                if consent == "none":
                    visitor.banner_shown(self.consent_spec)
                else:
                    visitor.consent(self.consent_spec, consent)

    def browse(self, visitor: obs.Visitor, subject, *, consent: str | None = "accept") -> None:
        self.journey(visitor, "browse", subject, consent=consent)

    def barrier(self, visitor: obs.Visitor) -> obs.RequestRecord:
        url = obs.join_url(self.start_url, self.spec.get("barrier") or self.start_url)
        return visitor.barrier(url)

    def finish(self, visitor: obs.Visitor, *, shots_for: list[Leak] | None = None) -> list:
        """Record the visitor's timeline (and screenshots of the pages behind findings) as evidence."""
        timeline = visitor.finish()
        from .. import coverage

        coverage.note_browser(self.browser.parties, visitor.requests)  # the run's scope: who the browser saw
        made = [self.evidence.attach(f"request timeline: {visitor.name}", timeline, "application/json",
                                     f"timeline-{_slug(visitor.name)}.json")]
        steps = sorted({leak_step(leak, visitor) for leak in shots_for or []} - {None})
        shots: list[obs.Screenshot] = []
        for step in steps:
            # the page as it was when the step ended (the form as filled in, for a typing step)
            shot = next((s for s in visitor.screenshots if s.step >= step), None) or (
                visitor.screenshots[-1] if visitor.screenshots else None)
            if shot is not None and shot not in shots:
                shots.append(shot)
        for shot in shots[:MAX_SCREENSHOTS]:
            made.append(self.evidence.attach(f"screenshot: {visitor.name}, step {shot.step} ({shot.label})",
                                             shot.png, "image/png",
                                             f"screenshot-{_slug(visitor.name)}-step{shot.step}.png"))
        self.evidence.stage(f"visitor {visitor.name}", requests=len(visitor.requests),
                            cookies=len(getattr(visitor, "final_cookies", [])),
                            steps=[s.label for s in visitor.steps])
        return made

    def failed_step(self, exc: obs.BrowserStepError | None) -> None:
        if exc is not None and exc.screenshot:
            self.evidence.attach(f"screenshot: the page when it failed ({exc.page})", exc.screenshot, "image/png",
                                 "screenshot-error.png")
        for visitor in self.visitors:
            if not visitor._closed:
                self.evidence.attach(f"request timeline: {visitor.name}", visitor.finish(), "application/json",
                                     f"timeline-{_slug(visitor.name)}.json")

    def close(self) -> None:
        self.browser.close()

    # -- judging ------------------------------------------------------------------------------
    def leaks(self, visitor: obs.Visitor, needles: list[Needle], *, outside_only: bool = True,
              since: int = 0, until: int | None = None, typed: bool = False) -> list[Leak]:
        """What of `needles` each request of the visitor carried (to outside parties only, by
        default); for typed values, whether it left before the form was submitted (key-logging)."""
        matcher = Matcher(needles)
        submitted = self.submitted.get(visitor.name) if typed else None
        out = []
        for record in visitor.requests:
            if record.seq <= since or (until is not None and record.seq > until):
                continue
            if outside_only and not record.party.outside:
                continue
            for where, text in _parts(record):
                for m in matcher.find(text):
                    shown = visitor.redact(redact_text(excerpt(text, m.start, m.end)))
                    out.append(Leak(visitor.name, visitor.redact(_short_url(record.page)),
                                    visitor.redact(record.step_label), record.seq,
                                    record.at, record.method, visitor.redact(_short_url(record.url)),
                                    record.party.domain, record.party.name, record.party.role, m.needle.field, m.form,
                                    where, shown, before_submit=bool(submitted and record.seq < submitted)))
        return out

    def identifiers(self, visitor: obs.Visitor, subject) -> list[Needle]:
        """The subject's canary-bearing values, and the values of every cookie its browser holds
        that look like an identifier: either reaching a third party identifies the visitor."""
        needles = subject.needles(subject.strong_fields())
        cookies = getattr(visitor, "final_cookies", None)
        for c in cookies if cookies is not None else visitor.cookies():
            if _identifier_like(c.value):
                needles.append(Needle(subject.id, f"cookie {c.name} ({c.domain})", c.value))
        return needles


def _identifier_like(value: str) -> bool:
    """A value only this browser holds: 'accepted' is a choice and '1732905600' a time, while
    '7f3a9c…' or a session token identifies (letters and digits mixed, or long and not a word)."""
    mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    return (len(value) >= 8 and mixed) or (len(value) >= 16 and not value.isdigit() and not value.isalpha())


def _parts(record: obs.RequestRecord) -> list[tuple[str, str]]:
    parts = [("URL", record.url)]
    parts += [(f"{name} header", value) for name, value in record.headers.items()]
    if record.body:
        parts.append(("body", record.body))
    return parts


def _short_url(url: str) -> str:
    return url if len(url) <= 160 else url[:157] + "…"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "visitor"


def leak_step(leak: Leak, visitor: obs.Visitor) -> int | None:
    if leak.visitor != visitor.name:
        return None
    return next((r.step for r in visitor.requests if r.seq == leak.seq), None)


def _run_in_browser(out: WebOutcome, run, test_id: str, evidence, body) -> None:
    session = WebSession(run, test_id, evidence)
    try:
        body(session)
    except obs.BrowserStepError as exc:
        session.failed_step(exc)
        raise
    except PrivacyChecksError:
        session.failed_step(None)  # a failed control: what the visitors did shows why
        raise
    finally:
        session.close()


# -- the reference visit: the positive control of every web check ----------------------------

def run_reference_visit(run, *, test_id: str, evidence) -> WebOutcome:
    """A visitor with no choice made against sharing (consent accepted where asked, no GPC, no
    opt-out) signs up and browses; form data and cookies are judged on it, and it is the positive
    control of the GPC, opt-out and consent procedures."""
    out = WebOutcome(kind="reference", label="an ordinary visit (consent accepted, no GPC, no opt-out)",
                     evidence=evidence)
    return settle(out, _run_in_browser, out, run, test_id, evidence, lambda s: _reference(s, out))


def _reference(s: WebSession, out: WebOutcome) -> None:
    visitor = s.visitor("reference visitor")
    subject = s.sign_up(visitor, "control")
    # the browse journey's own third-party requests, not what the signup's last page sends as it goes
    left = visitor.leave()
    browse_from = s.browser._seq
    s.browse(visitor, subject)
    barrier = s.barrier(visitor)
    out.outside_while_browsing = sum(1 for r in visitor.requests if r.party.outside and browse_from < r.seq < barrier.seq
                                     and r.page not in (left, "about:blank"))
    out.barrier = f"{barrier.method} {barrier.url} (request #{barrier.seq})"
    visitor.final_cookies = visitor.cookies()
    # what it typed, where it went
    typed = s.typed[visitor.name]
    out.typed = sorted(typed)
    typed_needles = subject.needles(list(typed))
    seen_first = [leak for leak in s.leaks(visitor, typed_needles, outside_only=False)
                  if leak.role in ("first_party", "service_provider")]
    out.leaks = s.leaks(visitor, typed_needles, typed=True)
    out.identifier_leaks = s.leaks(visitor, s.identifiers(visitor, subject))
    out.requests_outside = sorted({f"{r.party.describe()}" for r in visitor.requests if r.party.outside})
    cookies = visitor.final_cookies
    out.cookies = [_cookie_finding(visitor, c)
                   for c in cookies if c.party.role == "undeclared"]
    out.examined = {"requests": len(visitor.requests), "cookies": len(cookies), "typed fields": len(typed)}
    out.third_party_cookies = sum(1 for c in cookies if c.party.role != "first_party")
    out.control = [f"typed fields seen leaving for the first party in {len({x.seq for x in seen_first})} "
                   f"request(s)", f"{len(out.identifier_leaks)} identifier(s) of the control sent to "
                   f"third-party or sale domains", f"third parties contacted: {', '.join(out.requests_outside)}",
                   f"{out.outside_while_browsing} third-party request(s) from the browse journey's and barrier's pages"]
    evidence = s.evidence
    evidence.stage("reference visit", barrier=out.barrier, examined=out.examined, typed_fields=out.typed,
                   first_party_received_typed=group(seen_first)[:5],
                   identifiers_to_third_parties=group(out.identifier_leaks)[:10],
                   third_parties=out.requests_outside)
    for leak in out.leaks:
        evidence.finding(kind="typed data reached a third party", location=leak.request_line(), field=leak.field,
                         form=leak.form, where=leak.where, excerpt=leak.excerpt)
    for c in out.cookies:
        evidence.finding(kind="undeclared third-party cookie", location=c.describe())
    shots = s.finish(visitor, shots_for=out.leaks or ([] if not out.cookies else
                                                      [_cookie_leak(visitor, c) for c in out.cookies]))
    out.control_attachments = [a for a in shots if a.media_type == "application/json"]
    out.typed_seen_first = len({x.seq for x in seen_first})


def _cookie_finding(visitor: obs.Visitor, c: obs.CookieRecord) -> CookieFinding:
    from ..evidence import redact_url

    return CookieFinding(visitor.name, c.name, c.domain, c.party.describe(), visitor.redact(redact_url(c.set_by)))


def _cookie_leak(visitor: obs.Visitor, cookie: CookieFinding) -> Leak:
    """A stand-in finding for a cookie: the request that set it, for its screenshot."""
    record = next((r for r in visitor.requests if cookie.name in r.set_cookies), None)
    seq = record.seq if record else (visitor.requests[-1].seq if visitor.requests else 0)
    return Leak(visitor.name, "", "", seq, "", "", "", "", "", "", cookie.name, "", "", "")


def _require_reference(s: WebSession, reference: WebOutcome, what: str) -> None:
    if reference.skip is not None:
        raise reference.skip
    if reference.error:
        # its screenshot and timeline show why, in this check's evidence too
        for attachment in getattr(reference.evidence, "attachments", []):
            s.evidence.attachments.append(attachment)
        raise ControlFailed(f"positive control failed: the reference visit could not be made ({reference.error})")
    if not reference.identifier_leaks and what == "identifiers":
        raise ControlFailed("positive control failed: in the reference visit (consent accepted, no GPC, no opt-out) "
                            "no third-party or sale domain received any identifier of the visitor (canary or "
                            f"cookie value) over {reference.examined.get('requests', 0)} requests, so an absence "
                            "for the subject would prove nothing")
    if not reference.requests_outside and what == "third parties":
        raise ControlFailed("positive control failed: in the reference visit (consent accepted) no page made any "
                            "third-party request, so an absence before consent would prove nothing")
    if not reference.outside_while_browsing and what == "third parties":
        # the pages a subject loads after rejecting must be shown to call third parties once consent is given
        raise ControlFailed("positive control failed: in the reference visit (consent accepted) the pages of "
                            "browser.journeys.browse and the barrier page made no third-party request, so an absence "
                            "on them after the subject rejects would prove nothing")


def _adopt_reference(s: WebSession, reference: WebOutcome) -> None:
    s.evidence.stage("positive control: the reference visit", control=reference.control, barrier=reference.barrier,
                     identifiers_to_third_parties=group(reference.identifier_leaks)[:10])
    for a in reference.control_attachments:
        s.evidence.attachments.append(a)


# -- Global Privacy Control -------------------------------------------------------------------

def run_gpc(run, *, test_id: str, evidence, reference: WebOutcome) -> WebOutcome:
    out = WebOutcome(kind="gpc", label="Global Privacy Control (Sec-GPC: 1 and navigator.globalPrivacyControl)",
                     evidence=evidence)

    def body(s: WebSession) -> None:
        not_offered(s.profile, "gpc")
        _require_reference(s, reference, "identifiers")
        _adopt_reference(s, reference)
        visitor = s.visitor("subject (GPC)", gpc=True)
        subject = s.sign_up(visitor, "subject")
        s.browse(visitor, subject)
        barrier = s.barrier(visitor)
        out.barrier = f"{barrier.method} {barrier.url} (request #{barrier.seq})"
        visitor.final_cookies = visitor.cookies()
        missing = [r for r in visitor.requests if r.headers.get("sec-gpc") != "1" and not r.blocked]
        if missing or not visitor.gpc_seen:
            raise ControlFailed("the GPC signal was not sent as declared: "
                                + (f"{len(missing)} request(s) lacked Sec-GPC: 1 (first: {missing[0].url})"
                                   if missing else "navigator.globalPrivacyControl was never true on a page"))
        out.leaks = s.leaks(visitor, s.identifiers(visitor, subject))
        cookies = visitor.final_cookies
        out.cookies = [_cookie_finding(visitor, c)
                       for c in cookies if c.party.outside]
        out.examined = {"requests": len(visitor.requests), "cookies": len(cookies)}
        s.evidence.stage("subject with GPC", barrier=out.barrier, examined=out.examined,
                         gpc_property_seen_on=visitor.gpc_seen[:5])
        _record_findings(s, out, "identifier sent to a third party with GPC on",
                         "third-party advertising cookie set with GPC on")
        s.finish(visitor, shots_for=out.leaks + [_cookie_leak(visitor, c) for c in out.cookies])

    return settle(out, _run_in_browser, out, run, test_id, evidence, body)


def _record_findings(s: WebSession, out: WebOutcome, leak_kind: str, cookie_kind: str) -> None:
    for leak in out.leaks:
        s.evidence.finding(kind=leak_kind, location=leak.request_line(), field=leak.field, form=leak.form,
                           where=leak.where, excerpt=leak.excerpt)
    for c in out.cookies:
        s.evidence.finding(kind=cookie_kind, location=c.describe())


# -- the site's own opt-out link --------------------------------------------------------------

def run_opt_out(run, *, test_id: str, evidence, reference: WebOutcome) -> WebOutcome:
    out = WebOutcome(kind="opt_out", label="opt-out through the site's Do Not Sell or Share link", evidence=evidence)

    def body(s: WebSession) -> None:
        not_offered(s.profile, "opt_out")
        if not s.journeys.get("opt_out"):
            raise ControlFailed("the profile declares no browser.journeys.opt_out (following the 'Do Not Sell or "
                                "Share My Personal Information' link and acting on it); declare it, or give the "
                                "reason the target lacks this right in not_offered.opt_out")
        _require_reference(s, reference, "identifiers")
        _adopt_reference(s, reference)
        visitor = s.visitor("subject (opts out)")
        subject = s.sign_up(visitor, "subject")
        s.browse(visitor, subject)
        before_opt_out = s.browser._seq
        s.journey(visitor, "opt_out", subject)
        opted_out = s.browser._seq
        s.browse(visitor, subject)
        barrier = s.barrier(visitor)
        out.barrier = f"{barrier.method} {barrier.url} (request #{barrier.seq})"
        visitor.final_cookies = visitor.cookies()
        needles = s.identifiers(visitor, subject)
        own_control = s.leaks(visitor, needles, until=before_opt_out)
        if not own_control:
            raise ControlFailed("positive control failed: before opting out, the subject's own page views sent none "
                                "of its identifiers to a third-party or sale domain, so an absence afterwards would "
                                "prove nothing")
        out.leaks = s.leaks(visitor, needles, since=opted_out)
        later = [r for r in visitor.requests if r.seq > opted_out]
        out.examined = {"requests": len(later), "cookies": len(visitor.final_cookies)}
        s.evidence.stage("subject before the opt-out (its own positive control)", received=group(own_control)[:5])
        s.evidence.stage("subject after the opt-out", judged_from_request=opted_out + 1, barrier=out.barrier,
                         examined=out.examined)
        _record_findings(s, out, "identifier sent to a third party after the opt-out", "")
        s.finish(visitor, shots_for=out.leaks)

    return settle(out, _run_in_browser, out, run, test_id, evidence, body)


# -- consent ----------------------------------------------------------------------------------

def run_consent(run, *, test_id: str, evidence, reference: WebOutcome) -> WebOutcome:
    out = WebOutcome(kind="consent", label="consent before third-party requests and cookies", evidence=evidence)

    def body(s: WebSession) -> None:
        spec = s.consent_spec
        if not spec:
            raise NotVerified("the profile does not say whether consent is required before third-party requests "
                              "(browser.consent); declare required: true with the banner's selectors, or "
                              "required: false")
        if not spec.get("required"):
            raise NotApplicable("the profile says no consent is required before third-party requests and cookies "
                                "(browser.consent.required: false)")
        _require_reference(s, reference, "third parties")
        _adopt_reference(s, reference)
        visitor = s.visitor("subject (no choice, then rejects)")
        # phase 1: the banner must show on the first page; it is left alone while the visitor
        # signs up and browses
        subject = s.sign_up(visitor, "subject", consent="none")
        s.browse(visitor, subject, consent=None)
        barrier1 = s.barrier(visitor)
        cookies_before = [c for c in visitor.cookies() if c.party.outside]
        # phase 2: reject in the banner (still shown: no choice was made), then the same pages again;
        # everything up to the click was made before any choice
        rejected = s.browser._seq
        visitor.consent(spec, "reject")
        before = [r for r in visitor.requests if r.party.outside and r.seq <= rejected]
        s.browse(visitor, subject, consent=None)
        barrier2 = s.barrier(visitor)
        out.barrier = (f"{barrier1.url} (request #{barrier1.seq}) before any choice; {barrier2.url} "
                       f"(request #{barrier2.seq}) after rejecting")
        visitor.final_cookies = visitor.cookies()
        after = [r for r in visitor.requests if r.party.outside and r.seq > rejected]
        seen = {(c.name, c.domain) for c in cookies_before}
        cookies_after = [c for c in visitor.final_cookies if c.party.outside and (c.name, c.domain) not in seen]
        carried = _carried(s.leaks(visitor, s.identifiers(visitor, subject)))
        out.requests_outside = [_request_line(visitor, r, "before the visitor chose in the consent banner", carried)
                                for r in before]
        out.requests_outside += [_request_line(visitor, r, "after the visitor rejected", carried) for r in after]
        out.cookies = [_cookie_finding(visitor, c)
                       for c in cookies_before + cookies_after]
        out.examined = {"requests": len(visitor.requests), "cookies": len(visitor.final_cookies)}
        s.evidence.stage("subject: no choice, then reject", barrier=out.barrier, examined=out.examined,
                         third_party_requests_before_choice=len(before), after_reject=len(after))
        for line in out.requests_outside:
            s.evidence.finding(kind="third-party request without consent", location=line)
        for c in out.cookies:
            s.evidence.finding(kind="third-party cookie without consent", location=c.describe())
        s.finish(visitor, shots_for=[_record_leak(visitor, r) for r in (before + after)[:1]])

    return settle(out, _run_in_browser, out, run, test_id, evidence, body)


def _carried(leaks: list[Leak]) -> dict[int, list[str]]:
    """Per request, which of the visitor's identifiers it carried and how."""
    out: dict[int, list[str]] = {}
    for leak in leaks:
        item = f"{leak.field} ({leak.form}, in {leak.where})"
        if item not in out.setdefault(leak.seq, []):
            out[leak.seq].append(item)
    return out


def _request_line(visitor: obs.Visitor, r: obs.RequestRecord, when: str,
                  carried: dict[int, list[str]] | None = None) -> str:
    from ..evidence import redact_url

    if carried and r.seq in carried:
        sent = "the visitor's " + ", ".join(carried[r.seq])
    else:
        # the request itself tells the third party of the visit; a body's content is not shown (it may be a secret)
        kind = r.headers.get("content-type", "").split(";")[0] or "no content type"
        body = f"a {len(r.body)}-byte body ({kind})" if r.body else "no body"
        referer = redact_url(_short_url(r.headers.get("referer", "-")))
        sent = f"none of the visitor's identifiers ({body}, Referer {referer})"
    return visitor.redact(f"page {redact_url(_short_url(r.page))} (step '{r.step_label}'): {r.method} "
                          f"{redact_url(_short_url(r.url))} to {r.party.describe()} at {r.at}, {when}; sent: {sent}")


def _record_leak(visitor: obs.Visitor, r: obs.RequestRecord) -> Leak:
    return Leak(visitor.name, r.page, r.step_label, r.seq, r.at, r.method, r.url, r.party.domain, r.party.name,
                r.party.role, "", "", "", "")


def procedure(run, request, runner, **kwargs):
    """Body of a module- or package-scoped fixture: run `runner` once, yield its outcome."""
    yield from run.procedure(request, runner, **kwargs)
