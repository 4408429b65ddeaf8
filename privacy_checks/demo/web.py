"""The demo's website, and the third parties its pages load, for the browser checks (suites/web).

MediaPRO's pages live under /web/ on the demo's own address (the browser maps the host names
below to loopback with --host-resolver-rules): a signup form, an account page with the "Do Not
Sell or Share My Personal Information" link, a consent banner on every page, and a first-party
tag manager (/web/tags.js) that sends page views to the business's analytics host on its other
domain (stats.mediapro.test) and loads two vendors:

- the partner's advertising pixel, a script from tags.adpartner.test that sets the third-party
  cookie `_adp_uid` and sends a PageView carrying that id to pixel.adpartner.test;
- a session recorder, a script from cdn.replaytrack.test that sends clicks and (masked) form
  input to rec.replaytrack.test.

The scripts are served by the demo itself (it answers for those host names); what they send goes
to pixel.* and rec.*, which are the capture server's port, so our capture server records it.

With no flaw, both vendors load only after the visitor accepts in the consent banner and only
when the browser sends no Global Privacy Control signal and the visitor has not opted out
through the site's own link; the pixel never gets anything the visitor typed, and the recorder
masks every field. Each web flaw breaks exactly one of those promises (see FLAWS).
"""

from __future__ import annotations

import html
import json
import secrets
from urllib.parse import urlsplit

PARTNER = "adpartner.test"
RECORDER = "replaytrack.test"
COOKIE_MATCH = "cookiematch.test"
THIRD_PARTY_HOSTS = (PARTNER, RECORDER, COOKIE_MATCH)
WEB_FLAWS = ("pixel_ignores_gpc", "pixel_after_opt_out", "pixel_advanced_matching", "session_recorder_keylogs",
             "tracker_before_consent", "tracker_after_reject", "undeclared_cookie")
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

Page = tuple[int, bytes, str, dict[str, str]]


def _ok(body: str | bytes, content_type: str, headers: dict[str, str] | None = None) -> Page:
    data = body.encode() if isinstance(body, str) else body
    return 200, data, content_type, headers or {}


def third_party_host(host: str) -> str | None:
    """The vendor a Host header names, if it is one of the third parties the demo stands in for."""
    host = host.split(":")[0].lower().rstrip(".")
    return next((d for d in THIRD_PARTY_HOSTS if host == d or host.endswith("." + d)), None)


# -- first-party pages -------------------------------------------------------------------------

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24}
header,footer{background:#0b3d5c;color:#fff;padding:10px 24px} header a,footer a{color:#fff;margin-right:16px}
main{max-width:720px;margin:24px auto;padding:0 16px} label{display:block;margin-top:10px}
input{width:100%;padding:6px;font:inherit} button{margin-top:14px;padding:8px 16px;font:inherit}
#consent-banner{background:#fff7d6;border-bottom:2px solid #c9a227;padding:14px 24px}
"""


def _layout(title: str, body: str, script: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} · MediaPRO</title><style>{_STYLE}</style></head><body>"
        '<div id="consent-banner" hidden><p>We and our partners use cookies and similar technologies for '
        "analytics and advertising. You can accept or reject them.</p>"
        '<button id="consent-accept">Accept all</button> <button id="consent-reject">Reject all</button></div>'
        '<header><a href="/web/">MediaPRO</a><a href="/web/signup">Sign up</a><a href="/web/account">Account</a></header>'
        f"<main><h1>{html.escape(title)}</h1>{body}</main>"
        '<footer><a href="/privacy-policy">Privacy Policy</a>'
        '<a href="/web/do-not-sell" id="dnss-link">Do Not Sell or Share My Personal Information</a></footer>'
        '<script src="/web/tags.js"></script>'
        f"<script>{script}</script></body></html>"
    )


_SIGNUP_FIELDS = (("full_name", "Full name", "text"), ("email", "Email", "email"), ("username", "Username", "text"),
                  ("password", "Password", "password"), ("company", "Company", "text"),
                  ("department", "Department", "text"), ("phone", "Phone", "tel"),
                  ("postal_address", "Postal address", "text"))

_API = """
function mpToken(){return localStorage.getItem('mp_token')}
function mpUser(){return localStorage.getItem('mp_uid')}
async function mpApi(method, path, body){
  const headers={'Content-Type':'application/json'}; const t=mpToken(); if(t){headers.Authorization='Bearer '+t}
  const r=await fetch(path,{method,headers,body:body?JSON.stringify(body):undefined});
  const data=await r.json().catch(()=>({})); if(!r.ok){throw new Error(data.error||('HTTP '+r.status))} return data}
"""


def home() -> Page:
    body = ("<p>Security-awareness training for your whole company.</p>"
            '<p id="home-ready">Courses: phishing-101, passwords-201.</p>')
    return _ok(_layout("Security-awareness training", body), "text/html; charset=utf-8")


def signup() -> Page:
    inputs = "".join(f'<label for="{n}">{label}</label><input id="{n}" name="{n}" type="{t}" autocomplete="off">'
                     for n, label, t in _SIGNUP_FIELDS)
    body = f'<form id="signup-form">{inputs}<button id="signup-submit" type="submit">Create account</button></form>' \
           '<p id="signup-error" role="alert"></p>'
    script = _API + """
document.getElementById('signup-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = ev.target; const user = {};
  for (const el of f.querySelectorAll('input')) { if (el.value) user[el.name] = el.value; }
  try {
    const created = await mpApi('POST', '/api/users', user);
    const session = await mpApi('POST', '/api/login', {username: user.username, password: user.password});
    localStorage.setItem('mp_token', session.token); localStorage.setItem('mp_uid', String(created.id));
    location.assign('/web/account?welcome=1');
  } catch (e) { document.getElementById('signup-error').textContent = 'Sign-up failed: ' + e.message; }
});"""
    return _ok(_layout("Create your account", body, script), "text/html; charset=utf-8")


def account() -> Page:
    body = ('<p>Signed in as <strong id="account-name">…</strong> (account <span id="user-id"></span>)</p>'
            '<p id="account-email"></p>'
            '<p><a href="/web/do-not-sell">Do Not Sell or Share My Personal Information</a></p>'
            '<p id="account-error" role="alert"></p>')
    script = _API + """
(async () => {
  if (!mpUser()) { document.getElementById('account-error').textContent = 'Not signed in.'; return; }
  try {
    const me = await mpApi('GET', '/api/users/' + mpUser());
    document.getElementById('user-id').textContent = String(me.id);
    document.getElementById('account-email').textContent = me.email;
    document.getElementById('account-name').textContent = me.full_name;
  } catch (e) { document.getElementById('account-error').textContent = e.message; }
})();"""
    return _ok(_layout("Your account", body, script), "text/html; charset=utf-8")


def do_not_sell() -> Page:
    body = ("<p>California residents may opt out of the sale or sharing of their personal information. "
            "Once you opt out, our advertising and session-recording partners are no longer loaded for you.</p>"
            '<button id="opt-out-confirm">Opt out of sale and sharing</button>'
            '<p id="opt-out-done" hidden>You have opted out of the sale and sharing of your personal information.</p>'
            '<p id="opt-out-error" role="alert"></p>')
    script = _API + """
document.getElementById('opt-out-confirm').addEventListener('click', async () => {
  try {
    if (mpUser()) { await mpApi('POST', '/api/privacy-requests', {type: 'opt_out', user_id: mpUser()}); }
    localStorage.setItem('mp_opted_out', '1');
    document.getElementById('opt-out-done').hidden = false;
  } catch (e) { document.getElementById('opt-out-error').textContent = e.message; }
});"""
    return _ok(_layout("Do Not Sell or Share My Personal Information", body, script), "text/html; charset=utf-8")


def collect() -> Page:
    """First-party analytics: page views only."""
    return 204, b"", "text/plain", {}


def tags_js(flaws: frozenset[str], sink_port: int | None) -> Page:
    """The site's tag manager: consent banner, first-party analytics, and the vendors' gating."""
    config = {flaw: flaw in flaws for flaw in WEB_FLAWS}
    script = """(function () {
var FLAWS = __FLAWS__, SINK_PORT = __SINK_PORT__;
var port = location.port ? ':' + location.port : '';
function consent() { var m = document.cookie.match(/(?:^|; )mp_consent=(\\w+)/); return m ? m[1] : null; }
function gpc() { return navigator.globalPrivacyControl === true; }
function optedOut() { return localStorage.getItem('mp_opted_out') === '1'; }
navigator.sendBeacon('https://stats.mediapro.test' + port + '/web/collect',
  JSON.stringify({event: 'page_view', page: location.pathname}));
// the decision the site owes: no consent (or, flawed, no answer yet taken for one), GPC, opt-out
function consented() { var c = consent(); return c === 'accepted' || (FLAWS.tracker_before_consent && c === null); }
// flawed, the pixel reads "any answer given" as consent: a rejection loads it too
function answered() { return FLAWS.tracker_after_reject && consent() === 'rejected'; }
function pixelAllowed() {
  return (consented() || answered()) && (!gpc() || FLAWS.pixel_ignores_gpc) &&
    (!optedOut() || FLAWS.pixel_after_opt_out);
}
function recorderAllowed() { return consented() && !gpc() && !optedOut(); }
window.adpq = window.adpq || [];
window.adpCollect = 'https://pixel.adpartner.test:' + SINK_PORT + '/adpartner/collect';
window.rtCollect = 'https://rec.replaytrack.test:' + SINK_PORT + '/replaytrack/events';
if (FLAWS.pixel_advanced_matching) {
  // "advanced matching": the email typed into any form, normalised and hashed, for the pixel
  document.addEventListener('submit', function (ev) {
    var el = ev.target.querySelector('input[type=email]');
    if (!el || !el.value) return;
    crypto.subtle.digest('SHA-256', new TextEncoder().encode(el.value.trim().toLowerCase())).then(function (d) {
      localStorage.setItem('mp_am', Array.from(new Uint8Array(d)).map(function (b) {
        return b.toString(16).padStart(2, '0'); }).join(''));
    });
  }, true);
  if (localStorage.getItem('mp_am')) window.adpq.push(['init', {em: localStorage.getItem('mp_am')}]);
}
var loaded = {};
function load(name, src) {
  if (loaded[name]) return; loaded[name] = true;
  var s = document.createElement('script'); s.src = src; s.async = true; document.head.appendChild(s);
}
function apply() {
  if (pixelAllowed()) load('pixel', 'https://tags.adpartner.test' + port + '/adpartner/pixel.js');
  if (recorderAllowed()) load('recorder', 'https://cdn.replaytrack.test' + port + '/replaytrack/recorder.js');
}
function choose(choice) {
  document.cookie = 'mp_consent=' + choice + '; path=/; max-age=31536000; SameSite=Lax; Secure';
  document.getElementById('consent-banner').hidden = true;
  apply();
}
document.addEventListener('DOMContentLoaded', function () {
  var banner = document.getElementById('consent-banner');
  if (banner && consent() === null) banner.hidden = false;
  var a = document.getElementById('consent-accept'), r = document.getElementById('consent-reject');
  if (a) a.addEventListener('click', function () { choose('accepted'); });
  if (r) r.addEventListener('click', function () { choose('rejected'); });
  apply();
});
})();
""".replace("__FLAWS__", json.dumps(config)).replace("__SINK_PORT__", json.dumps(sink_port or 9))
    return _ok(script, "application/javascript; charset=utf-8")


def first_party(path: str, flaws: frozenset[str], sink_port: int | None) -> Page | None:
    pages = {"/web/": home, "/web": home, "/web/signup": signup, "/web/account": account,
             "/web/do-not-sell": do_not_sell}
    if path in pages:
        return pages[path]()
    if path == "/web/tags.js":
        return tags_js(flaws, sink_port)
    if path == "/web/collect":
        return collect()
    return None


# -- the third parties' own hosts ---------------------------------------------------------------

def _cookie(header: str | None, name: str) -> str | None:
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _pixel_js(cookie_header: str | None, flaws: frozenset[str]) -> Page:
    uid = _cookie(cookie_header, "_adp_uid") or secrets.token_hex(12)
    sync = ""
    if "undeclared_cookie" in flaws:
        # cookie matching: the partner tells a data exchange its id for this browser
        sync = ("new Image().src = 'https://sync.cookiematch.test' + (location.port ? ':' + location.port : '') + "
                "'/cookiematch/sync?partner=adpartner&puid=' + UID;")
    script = """(function () {
var UID = __UID__, init = {};
(window.adpq || []).forEach(function (c) { if (c[0] === 'init') init = c[1] || {}; });
var event = {event: 'PageView', uid: UID, page: location.pathname};
if (init.em) event.em = init.em;
navigator.sendBeacon(window.adpCollect, JSON.stringify(event));
__SYNC__
})();
""".replace("__UID__", json.dumps(uid)).replace("__SYNC__", sync)
    cookie = f"_adp_uid={uid}; Domain={PARTNER}; Path=/; Max-Age=31536000; SameSite=None; Secure"
    return _ok(script, "application/javascript; charset=utf-8", {"Set-Cookie": cookie})


def _recorder_js(flaws: frozenset[str]) -> Page:
    keylog = "session_recorder_keylogs" in flaws
    script = """(function () {
var KEYLOG = __KEYLOG__, queue = [], session = Math.random().toString(36).slice(2);
function flush() {
  if (!queue.length) return;
  navigator.sendBeacon(window.rtCollect, JSON.stringify({session: session, page: location.pathname, events: queue}));
  queue = [];
}
function where(el) { return el.id ? '#' + el.id : el.tagName.toLowerCase(); }
queue.push({type: 'view', page: location.pathname});
document.addEventListener('click', function (ev) { queue.push({type: 'click', target: where(ev.target)}); }, true);
document.addEventListener('input', function (ev) {
  var el = ev.target; if (!el || el.type === 'password') return;
  // masked unless the flaw: the length of what was typed, never the characters
  queue.push({type: 'input', target: where(el), value: KEYLOG ? el.value : '*'.repeat(el.value.length)});
}, true);
setInterval(flush, 400);
addEventListener('pagehide', flush);
})();
""".replace("__KEYLOG__", json.dumps(keylog))
    return _ok(script, "application/javascript; charset=utf-8")


def _sync() -> Page:
    match = secrets.token_hex(10)
    cookie = f"cm_id={match}; Domain={COOKIE_MATCH}; Path=/; Max-Age=31536000; SameSite=None; Secure"
    return 200, GIF, "image/gif", {"Set-Cookie": cookie}


def third_party(host: str, raw_path: str, cookie_header: str | None, flaws: frozenset[str]) -> Page:
    """What the vendors' own hosts serve (their scripts and the cookie sync), for the demo's pages."""
    vendor = third_party_host(host)
    path = urlsplit(raw_path).path
    if vendor == PARTNER and path == "/adpartner/pixel.js":
        return _pixel_js(cookie_header, flaws)
    if vendor == RECORDER and path == "/replaytrack/recorder.js":
        return _recorder_js(flaws)
    if vendor == COOKIE_MATCH and path == "/cookiematch/sync":
        return _sync()
    return 404, b"not found", "text/plain", {}
