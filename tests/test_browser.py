"""The browser observer (observe/browser.py) against the demo's real pages in real Chromium,
and the pieces it stands on: parties by registrable domain, the `browser:` profile section."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from conftest import DEMO_LINT_ENV
from privacy_checks.demo.launch import DemoProcess
from privacy_checks.observe import browser as obs
from privacy_checks.observe.forms import Matcher, Needle
from privacy_checks.observe.sinks import CaptureClient, CaptureServer
from privacy_checks.observe.tls_sink import sink_tls
from privacy_checks.profile import lint

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ["*.mediapro.test", "*.adpartner.test", "*.replaytrack.test", "*.cookiematch.test"]


# -- parties ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "domain"), [
    ("www.example.co.uk", "example.co.uk"),       # a multi-label public suffix
    ("a.b.example.com", "example.com"),
    ("user.github.io", "user.github.io"),          # a private suffix of the list: each user is a party
    ("stats.mediapro.test", "mediapro.test"),      # unknown TLD: the last two labels, as Chromium does
    ("127.0.0.1", "127.0.0.1"),
    ("localhost", "localhost"),
    ("WWW.Example.COM.", "example.com"),
])
def test_registrable_domain_comes_from_the_public_suffix_list_offline(host, domain):
    assert obs.registrable_domain(host) == domain


def test_parties_are_first_party_declared_recipients_or_undeclared():
    parties = obs.Parties(["mediapro.test"], [
        {"name": "adpartner", "role": "third_party", "domains": ["adpartner.test"]},
        {"name": "crm", "role": "service_provider", "domains": ["crm.example.com"]}])
    assert parties.of("stats.mediapro.test").role == "first_party"
    assert parties.of("pixel.adpartner.test") == obs.Party("adpartner", "third_party", "adpartner.test")
    # a declared host stands for its registrable domain: the vendor's other hosts are the vendor too
    assert parties.of("eu.example.com").name == "crm"
    assert parties.of("sync.cookiematch.test").role == "undeclared"
    assert parties.of("sync.cookiematch.test").outside and not parties.of("www.mediapro.test").outside


def test_advanced_matching_digests_of_a_typed_email_are_found():
    """Ad networks hash the trimmed, lower-cased email; sha256 and md5 of it are both forms."""
    email = "Ada.Lovelace.pcqzabcdefghij@Example.com"
    typed = Needle("s1", "email", email)
    normalised = email.strip().lower().encode()
    for algo in ("sha256", "md5"):
        body = f'{{"em": "{hashlib.new(algo, normalised).hexdigest()}"}}'
        assert [(m.needle.field, m.form) for m in Matcher([typed]).find(body)] == [("email", algo)]


def test_a_gmail_address_is_also_found_as_ad_networks_normalise_it():
    typed = Needle("s1", "email", " Ada.Lovelace+pcqzabcdefghij@GMail.com")
    digest = hashlib.sha256(b"adalovelace@gmail.com").hexdigest()
    assert [m.form for m in Matcher([typed]).find(f"em={digest}")] == ["sha256"]


def test_the_server_side_recipient_checks_leave_browser_deliveries_to_suites_web():
    from types import SimpleNamespace

    from privacy_checks.observe.sinks import Capture, browser_delivery

    profile = SimpleNamespace(browser={"recipients": [{"name": "adpartner", "domains": ["adpartner.test"]}]})
    beacon = Capture(1, "POST", "/adpartner/collect", "", {"Host": "pixel.adpartner.test:4430"}, "{}", "t")
    webhook = Capture(2, "POST", "/partner/leads", "", {"Host": "127.0.0.1:4430"}, "{}", "t")
    assert browser_delivery(beacon, profile) and not browser_delivery(webhook, profile)
    assert not browser_delivery(beacon, SimpleNamespace(browser={}))


@pytest.mark.parametrize(("value", "identifies"), [
    ("886f63412031db9958e4f307", True), ("GJx_kT2-vQ9", True), ("accepted", False), ("1732905600", False),
    ("true", False), ("Zm9vLWJhci1iYXotcXV4LXF1dXg=", True)])
def test_which_cookie_values_count_as_identifiers(value, identifies):
    from privacy_checks.flows.web import _identifier_like

    assert _identifier_like(value) is identifies


def test_a_missing_chromium_is_one_line_naming_the_debian_package(tmp_path):
    with pytest.raises(obs.BrowserUnavailable) as err:
        obs.chromium_executable(str(tmp_path / "chromium"))
    message = str(err.value)
    assert "\n" not in message and "apt-get install chromium" in message and str(tmp_path) in message


# -- the profile section ----------------------------------------------------------------------

def _profile(tmp_path, browser: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text("name: t\nbase_url: https://app.example.com\nallowed_hosts: [app.example.com, "
                    "www.example.com]\nbrowser:\n" + browser)
    return path


@pytest.mark.parametrize(("browser", "expected"), [
    ("  journeys: {browse: [{visit: /, click: '#a'}]}\n", "browser.journeys.browse[0]: a browser step is exactly one of"),
    ("  journeys: {browse: [{visit: 'https://ads.example.net/x'}]}\n",
     "browser.journeys.browse[0].visit: host 'ads.example.net' is not in allowed_hosts"),
    ("  journeys: {browse: [{fill: {selector: '#password', value: hunter2}}]}\n",
     "browser.journeys.browse[0].fill.value: a password typed into a page must come from an environment variable"),
    ("  resolve: {www.example.com: other.example.com}\n  journeys: {browse: [{visit: /}]}\n",
     "browser.resolve['www.example.com']: 'other.example.com' is not an IP address"),
    ("  consent: {required: true}\n  journeys: {browse: [{visit: /}]}\n",
     "browser.consent: with required: true, give the banner, accept and reject selectors"),
    ("  journeys: {signup: [{visit: /}]}\n", "browser.journeys: declare at least the 'browse' journey"),
    ("  journeys: {browse: [{visit: /}], checkout: [{visit: /}]}\n",
     "'checkout' is not a journey the checks run"),
    ("  recipients: [{name: ads, role: partner, purpose: ads, domains: [ads.example.net]}]\n"
     "  journeys: {browse: [{visit: /}]}\n", "browser.recipients[0].role: 'partner' is not one of"),
])
def test_browser_section_mistakes_are_one_line_each(tmp_path, browser, expected):
    problems = lint(_profile(tmp_path, browser), env={})
    assert any(expected in p for p in problems), problems


def test_the_demo_profile_browser_section_is_valid():
    env = DEMO_LINT_ENV
    assert lint(ROOT / "fixtures" / "targets" / "demo.yaml", env=env) == []


# -- the observer on the demo's pages ---------------------------------------------------------

@pytest.fixture(scope="module")
def demo_site(tmp_path_factory):
    capture = CaptureServer()
    demo = DemoProcess(sink_url=capture.control_url).start()
    ca = tmp_path_factory.mktemp("sink") / "ca.pem"
    sink_tls(capture.control_url, ca)
    port = int(demo.url.rsplit(":", 1)[1])
    pins = [obs.spki_pin("127.0.0.1", port, cafile=f"{demo.data_dir}/tls/ca.pem", check_hostname=False),
            obs.spki_pin("127.0.0.1", capture.port, cafile=str(ca), check_hostname=False)]
    parties = obs.Parties(["mediapro.test"], [
        {"name": "adpartner", "role": "third_party", "domains": ["adpartner.test"]},
        {"name": "replaytrack", "role": "third_party", "domains": ["replaytrack.test"]}])
    browser = obs.Browser(allowed_hosts=["127.0.0.1", "*.mediapro.test", "*.adpartner.test"],
                          parties=parties, resolve={h: "127.0.0.1" for h in HOSTS}, spki_pins=pins,
                          timeouts={"navigation": 20, "step": 4}).start()
    yield browser, f"https://www.mediapro.test:{port}", capture
    browser.close()
    demo.stop()
    capture.stop()


CONSENT = {"banner": "#consent-banner", "accept": "#consent-accept", "reject": "#consent-reject"}


def test_a_visitor_records_every_request_with_its_party_initiator_and_cookies(demo_site):
    browser, site, capture = demo_site
    visitor = browser.visitor("visitor")
    before = CaptureClient(capture.control_url).last_seq()
    visitor.visit(f"{site}/web/")
    visitor.consent(CONSENT, "accept")
    visitor.visit(f"{site}/web/")
    barrier = visitor.barrier(f"{site}/web/")
    beacon = next(r for r in visitor.requests if r.url.endswith("/adpartner/collect"))
    assert beacon.party.name == "adpartner" and beacon.method == "POST" and beacon.resource_type == "ping"
    assert '"event":"PageView"' in beacon.body
    assert beacon.seq < barrier.seq and barrier.party.role == "first_party"
    timeline = visitor.finish()
    assert "adpartner/pixel.js" in next(r["initiator"] for r in timeline["requests"] if r["seq"] == beacon.seq)
    # the vendor's third-party cookie is kept (Chrome's default) and is named, never shown
    cookie = next(c for c in visitor.final_cookies if c.name == "_adp_uid")
    assert cookie.party.name == "adpartner" and "adpartner/pixel.js" in cookie.set_by
    sent = next(r for r in timeline["requests"] if r["seq"] == beacon.seq)["headers"]["cookie"]
    assert sent == "_adp_uid=[REDACTED]"
    # what the vendor's script sent also reached our capture server, under the vendor's name
    assert any(c.path == "/adpartner/collect" and c.headers.get("Host", "").startswith("pixel.adpartner.test")
               for c in CaptureClient(capture.control_url).captures(before))


def test_a_gpc_visitor_sends_the_header_on_every_request_and_sees_the_property(demo_site):
    browser, site, _ = demo_site
    visitor = browser.visitor("gpc", gpc=True)
    visitor.visit(f"{site}/web/")
    assert visitor.page.evaluate("navigator.globalPrivacyControl") is True
    assert visitor.requests and all(r.headers.get("sec-gpc") == "1" for r in visitor.requests)
    assert visitor.gpc_seen
    plain = browser.visitor("plain")
    plain.visit(f"{site}/web/")
    # Chromium itself has no GPC: without the init script the property is not there
    assert plain.page.evaluate("navigator.globalPrivacyControl") is None
    visitor.close()
    plain.close()


def test_requests_to_hosts_outside_the_allow_list_are_recorded_and_never_sent(demo_site):
    browser, site, _ = demo_site
    visitor = browser.visitor("visitor")
    visitor.visit(f"{site}/web/")
    visitor.consent(CONSENT, "accept")  # loads the recorder, whose host is not allowed here
    recorder = [r for r in visitor.requests if r.host == "cdn.replaytrack.test"]
    assert recorder and all(r.blocked and r.status == 0 for r in recorder)
    with pytest.raises(obs.BrowserStepError, match="host 'sync.cookiematch.test' is not in allowed_hosts"):
        visitor.visit(site.replace("www.mediapro", "sync.cookiematch") + "/cookiematch/sync")
    visitor.close()


def test_a_page_that_never_loads_is_an_error_naming_page_and_step_with_a_screenshot(demo_site):
    browser, site, _ = demo_site
    visitor = browser.visitor("visitor")
    with pytest.raises(obs.BrowserStepError) as err:
        visitor.visit(f"{site}/web/no-such-page")
    assert "/web/no-such-page" in str(err.value) and "step 1" in str(err.value) and "HTTP 404" in str(err.value)
    assert err.value.screenshot.startswith(b"\x89PNG")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(obs.BrowserStepError, match=rf"page https://www\.mediapro\.test:{closed}/web/, step 2 "
                                                   r"\(visit .*\): the page never loaded: .*ERR_CONNECTION_REFUSED"):
        visitor.visit(f"https://www.mediapro.test:{closed}/web/")
    visitor.visit(f"{site}/web/")
    with pytest.raises(obs.BrowserStepError) as err:
        visitor.wait_for("#never-there")
    assert "selector '#never-there' never appeared within 4 s" in str(err.value)
    assert f"page {site}/web/" in str(err.value) and "step 4 (wait for #never-there)" in str(err.value)
    assert err.value.screenshot.startswith(b"\x89PNG")
    visitor.close()


def test_a_consent_banner_the_page_lacks_is_an_error(demo_site):
    browser, site, _ = demo_site
    visitor = browser.visitor("visitor")
    visitor.visit(f"{site}/privacy-policy")
    with pytest.raises(obs.BrowserStepError, match=r"describes a consent banner \(browser.consent.banner "
                                                   r"'#consent-banner'\) but the page does not show it"):
        visitor.consent(CONSENT, "reject")
    visitor.close()


def test_values_from_the_profile_never_reach_the_timeline(demo_site):
    browser, site, _ = demo_site
    visitor = browser.visitor("visitor", secrets=["S3cret-from-env"])
    visitor.visit(f"{site}/web/signup")
    visitor.fill("#password", "S3cret-from-env")
    visitor.fill("#company", "Acme S3cret-from-env")
    visitor.visit(f"{site}/web/?q=S3cret-from-env")
    assert "S3cret-from-env" not in repr(visitor.finish())


def _canaries(*roles):
    from privacy_checks.subjects import SubjectFactory

    factory = SubjectFactory(seed="browser-storage", nonce="n1")
    return [factory.build("tests/test_browser.py::storage", role=role) for role in roles]


def test_a_canary_a_page_writes_to_local_storage_or_a_cookie_is_observed(demo_site):
    browser, site, _ = demo_site
    (subject,) = _canaries("subject")
    email, name = subject.fields["email"], subject.fields["full_name"]
    visitor = browser.visitor("visitor")
    visitor.visit(f"{site}/web/")
    visitor.page.evaluate("""([email, name]) => {
        localStorage.setItem('pc_em', email);
        document.cookie = 'pc_name=' + btoa(name) + '; path=/; Secure; SameSite=Lax';
    }""", [email, name])
    found = visitor.holding(subject.needles(["email", "full_name"]))
    assert f"localStorage pc_em of {site} (mediapro.test (first party)): email (exact) in its value" in found, found
    assert any(line.startswith("cookie pc_name of www.mediapro.test") and "full_name (base64) in its value" in line
               for line in found), found
    # the evidence keeps where and how long, never the value
    timeline = visitor.finish()
    assert {"origin": site, "items": {"pc_em": f"{len(email)} characters"}} in timeline["local_storage"]
    assert email not in repr(timeline) and "pc_name" in {c["name"] for c in timeline["cookies"]}


def test_a_canary_never_written_is_reported_absent_after_the_control_is_seen(demo_site):
    browser, site, _ = demo_site
    control, subject = _canaries("control", "subject")
    write = "([k, v]) => { localStorage.setItem(k, v); document.cookie = k + '=' + encodeURIComponent(v) + '; path=/'; }"
    visitor = browser.visitor("visitor")
    visitor.visit(f"{site}/web/")
    # positive control: the control's canary, written the same way, is seen in both stores
    visitor.page.evaluate(write, ["pc_ctl", control.fields["email"]])
    seen = visitor.holding(control.needles(["email"]))
    assert {line.split(" ", 1)[0] for line in seen} == {"localStorage", "cookie"}, seen
    # the subject's pages run, storing what they store of their own (the consent choice, the banner's state)
    visitor.consent(CONSENT, "reject")
    visitor.visit(f"{site}/web/account")
    # barrier: a later write by the control is seen by the same observer
    visitor.page.evaluate(write, ["pc_ctl2", control.fields["username"]])
    assert any("pc_ctl2" in line for line in visitor.holding(control.needles(["username"])))
    stored = visitor.stored()
    assert {i.name for i in stored} >= {"mp_consent", "pc_ctl", "pc_ctl2"}
    assert visitor.holding(subject.needles()) == []
    visitor.close()


# -- the judgements (checks/web.py) on recorded outcomes ------------------------------------

def _leak(**kw):
    from privacy_checks.flows.web import Leak

    base = dict(visitor="v", page="https://shop.example/signup", step="fill #email", seq=7, at="t", method="POST",
                url="https://rec.tracker.example/events", domain="tracker.example", recipient="undeclared",
                role="undeclared", field="email", form="exact", where="body", excerpt="«x»")
    return Leak(**{**base, **kw})


def test_form_data_judgement_needs_its_control_and_names_where_typed_data_went():
    from privacy_checks.checks import web
    from privacy_checks.flows.web import WebOutcome
    from privacy_checks.outcomes import ControlFailed, NotVerified, PromiseBroken

    outcome = WebOutcome(kind="reference", typed=["email"], examined={"requests": 9})
    with pytest.raises(ControlFailed, match="none of the typed fields"):
        web.form_data_not_leaked(outcome)
    outcome.typed_seen_first = 1
    web.form_data_not_leaked(outcome)
    outcome.leaks = [_leak(before_submit=True), _leak(field="full_name")]
    with pytest.raises(PromiseBroken, match=r"(?s)in 1 request\(s\).*page https://shop\.example/signup \(step 'fill "
                                            r"#email'\): POST https://rec\.tracker\.example/events to tracker\.example "
                                            r"\(undeclared, undeclared\) at t before the form was submitted: email "
                                            r"\(exact, in body\), full_name \(exact, in body\)"):
        web.form_data_not_leaked(outcome)
    with pytest.raises(NotVerified, match="type none of the subject's values"):
        web.form_data_not_leaked(WebOutcome(kind="reference"))


def test_a_cookie_judgement_with_no_third_party_cookie_is_not_a_pass():
    from privacy_checks.checks import web
    from privacy_checks.flows.web import CookieFinding, WebOutcome
    from privacy_checks.outcomes import CheckError, NotVerified, PromiseBroken

    with pytest.raises(NotVerified, match="no third-party cookie was set"):
        web.cookies_disclosed(WebOutcome(kind="reference", examined={"cookies": 2}))
    web.cookies_disclosed(WebOutcome(kind="reference", third_party_cookies=1))
    with pytest.raises(PromiseBroken, match="cookie cm_id on .cm.example: cm.example"):
        web.cookies_disclosed(WebOutcome(kind="reference", third_party_cookies=1, cookies=[
            CookieFinding("reference visitor", "cm_id", ".cm.example", "cm.example (UNDECLARED third party)", "")]))
    with pytest.raises(CheckError, match="observer blind"):
        web.cookies_disclosed(WebOutcome(kind="reference", error="observer blind"))
