"""Judgements on transport security and secrets at rest, one promise each.

The read-only ones probe the target's endpoints directly (plain-http answer, HSTS, TLS
versions, certificate); the others judge the traffic procedure in flows/transport.py.
"""

from __future__ import annotations

import secrets
from urllib.parse import urljoin, urlsplit

from ..findings import from_hits, listing, summary
from ..flows.deletion import describe_hit
from ..flows.transport import Traffic, no_https_reason
from ..observe import transport as obs
from ..outcomes import CheckError, ControlFailed, NotApplicable, NotVerified, PromiseBroken, examined, remark
from ..proxy import Proxy
from .common import needs_stage, recipients_declared, usable


def require_https(profile) -> None:
    reason = no_https_reason(profile)
    if reason:
        raise PromiseBroken(reason)


def _usable(traffic: Traffic) -> None:
    # Not common.usable alone: no https is a verdict (the promise is broken), not an unusable
    # procedure, and the at-rest checks (_swept) treat it differently.
    if traffic.no_https:
        raise PromiseBroken(traffic.no_https)
    usable(traffic)


def _timeout(profile) -> float:
    return float(profile.timeouts.get("request", 10))


def _verify(profile):
    tls = profile.tls
    if tls.get("verify") is False:
        return False
    return tls.get("ca_bundle") or True


def _static_paths(profile) -> list[str]:
    """The operation paths a probe can request without inventing ids: those with no template."""
    paths = {"/"}
    for op in profile.operations.values():
        for step in op.get("steps", []):
            path = step.get("path")
            if path and "{{" not in path and "://" not in path:
                paths.add("/" + path.lstrip("/"))
    return sorted(paths)


# -- in transit: the target's own endpoints ------------------------------------------------

def personal_data_over_https(traffic: Traffic, evidence) -> None:
    """Every exchange that carried the subject's data, both ways, went over https."""
    _usable(traffic)
    needles = traffic.subject.needles()
    carried, plain = [], []
    for ex in traffic.exchanges:
        text = "\n".join([ex.url, ex.request_body, ex.response_body, *ex.response_headers.values()])
        if obs.match_text(text, needles):
            carried.append(ex.summary())
            if not ex.url.lower().startswith("https://"):
                plain.append(ex.summary())
    evidence.stage("exchanges carrying the subject's data", exchanges=carried)
    if not carried:
        raise ControlFailed("positive control failed: none of the subject's recorded exchanges carried its data, "
                            "so there is nothing to judge (are the operations' requests recorded?)")
    if plain:
        raise PromiseBroken("personal data travelled over plain http in:\n  " + "\n  ".join(plain))
    examined("exchanges carrying the subject's data", carried)


def http_only_redirects(profile, evidence) -> None:
    """The http:// address answers every path with a 301/308 to https, echoing nothing, no cookies."""
    require_https(profile)
    timeout = _timeout(profile)
    http_url = profile.transport.get("http_url")
    host, _ = obs.endpoint(profile.base_url)
    if not http_url:
        http_url = f"http://{host}"
        evidence.note(f"the profile declares no transport.http_url; probing the default {http_url}")
    if not http_url.lower().startswith("http://"):
        raise CheckError(f"transport.http_url {http_url} is not a plain http:// address")
    h, p = obs.endpoint(http_url)
    if not profile.host_allowed(h):
        raise CheckError(f"transport.http_url {http_url}: host {h!r} is not in allowed_hosts {profile.allowed_hosts}")
    base = urlsplit(profile.base_url)
    probe = "privacy-checks-probe-" + secrets.token_hex(6)
    problems, answers = [], []
    for path in _static_paths(profile):
        https_url = urljoin(profile.base_url.rstrip("/") + "/", path.lstrip("/"))
        url = urlsplit(https_url)._replace(scheme="http", netloc=urlsplit(http_url).netloc).geturl()
        url += ("&" if "?" in url else "?") + f"probe={probe}"
        ans = obs.http_get(url, timeout=timeout, headers={"X-Privacy-Checks-Probe": probe},
                           proxy=Proxy.from_profile(profile))
        if ans.status is None:
            # A refused port serves nothing in cleartext, but only a live target can show it.
            th, tp = obs.endpoint(profile.base_url)
            if not obs.listening(th, tp, timeout):
                raise CheckError(f"the target does not answer at {profile.base_url} ({th}:{tp} refuses "
                                 f"connections) and nothing listens on {h}:{p}: a dead target shows nothing")
            if profile.transport.get("http_url"):
                raise CheckError(f"the profile declares transport.http_url {http_url}, but nothing listens on "
                                 f"{h}:{p} (connection refused); correct the address, or leave it out")
            evidence.note(f"nothing listens on {h}:{p} (connection refused) while {th}:{tp} answers: no "
                          "plain-http service serves anything in cleartext")
            examined("plain-http ports probed (connection refused)", 1)
            return
        location = next((v for k, v in ans.headers.items() if k.lower() == "location"), "")
        answers.append(f"GET {url} -> {ans.status} Location: {location or '-'}")
        where = f"http://{h}:{p}{path}"
        if ans.status not in (301, 308):
            problems.append(f"{where} answered {ans.status} instead of a permanent redirect (301/308) to https")
        elif not location.lower().startswith("https://") or urlsplit(location).hostname != base.hostname:
            problems.append(f"{where} redirects to {location or '(no Location)'}, not to https://{base.hostname}")
        if ans.set_cookies:
            names = sorted({c.split("=", 1)[0].strip() for c in ans.set_cookies})
            problems.append(f"{where} sets cookie(s) {', '.join(names)} over plain http")
        echoed = [k for k, v in ans.headers.items() if probe in v and k.lower() != "location"]
        if probe in ans.body:
            echoed.append("body")
        if echoed:
            problems.append(f"{where} echoes the request's data over plain http (in {', '.join(echoed)})")
    evidence.stage("plain-http answers", answers=answers)
    if problems:
        raise PromiseBroken("plain http does more than redirect to https:\n  " + "\n  ".join(problems))
    examined("plain-http answers", answers)


def hsts_one_year(profile, evidence) -> None:
    """Every https answer carries Strict-Transport-Security with max-age of at least a year."""
    require_https(profile)
    problems, seen = [], []
    for path in _static_paths(profile):
        url = urljoin(profile.base_url.rstrip("/") + "/", path.lstrip("/"))
        ans = obs.http_get(url, timeout=_timeout(profile), verify=_verify(profile), proxy=Proxy.from_profile(profile))
        if ans.status is None:
            raise CheckError(f"GET {url}: nothing listens there (connection refused)")
        value = next((v for k, v in ans.headers.items() if k.lower() == "strict-transport-security"), None)
        seen.append(f"GET {url} -> {ans.status}; Strict-Transport-Security: {value or '-'}")
        age = obs.hsts_max_age(value)
        if value is None:
            problems.append(f"{url}: no Strict-Transport-Security header")
        elif age is None:
            problems.append(f"{url}: Strict-Transport-Security {value!r} has no max-age")
        elif age < obs.ONE_YEAR:
            problems.append(f"{url}: Strict-Transport-Security max-age={age} is under one year ({obs.ONE_YEAR})")
    evidence.stage("HSTS", answers=seen)
    if problems:
        raise PromiseBroken("browsers are not told to insist on https:\n  " + "\n  ".join(problems))
    examined("https answers", seen)


def legacy_tls_refused(profile, evidence) -> None:
    """TLS 1.0 and 1.1 are refused; when this machine cannot offer them, say so (error)."""
    require_https(profile)
    host, port = obs.endpoint(profile.base_url)
    probes = [obs.probe_tls_version(host, port, v, timeout=_timeout(profile), proxy=Proxy.from_profile(profile)) for v in obs.LEGACY_VERSIONS]
    evidence.stage("TLS version probes", probes=[p.describe() for p in probes])
    accepted = [p for p in probes if p.outcome == "accepted"]
    if accepted:
        raise PromiseBroken(f"{host}:{port} accepts deprecated protocol version(s): "
                            + "; ".join(f"{p.version} ({p.detail})" for p in accepted))
    blind = [p for p in probes if p.outcome == "cannot_probe"]
    if blind:
        raise CheckError(f"cannot probe {host}:{port} for " + "; ".join(f"{p.version}: {p.detail}" for p in blind)
                         + " — whether the server accepts it is unknown")
    examined("legacy TLS versions offered and refused", [p for p in probes if p.outcome == "refused"])


def certificate_trusted(profile, evidence) -> None:
    """The certificate is valid for the host and chains to the configured CA."""
    require_https(profile)
    host, port = obs.endpoint(profile.base_url)
    bundle = profile.tls.get("ca_bundle")
    res = obs.check_certificate(host, port, bundle, timeout=_timeout(profile), proxy=Proxy.from_profile(profile))
    anchors = bundle or "the system trust store"
    evidence.stage("certificate", host=host, port=port, trusted=res.trusted, subject=res.subject,
                   issuer=res.issuer, not_after=res.not_after, anchors=anchors)
    if not res.trusted:
        presented = f"; presented: subject {res.subject}, issued by {res.issuer}" if res.issuer else ""
        raise PromiseBroken(f"certificate not trusted for {host} (port {port}): {res.reason}{presented}; "
                            f"trust anchors: {anchors}")
    examined("certificates verified", 1)


# -- in transit: what the subject's traffic showed -----------------------------------------

def cookies_secure(traffic: Traffic, profile, evidence) -> None:
    """Cookies set at login are Secure, HttpOnly and carry SameSite; declared ones must be set."""
    _usable(traffic)
    declared = list(profile.transport.get("session_cookies") or [])
    if not traffic.login_ran:
        if declared:
            raise CheckError(f"the profile declares session cookie(s) {', '.join(declared)} but no login "
                             "operation, so they cannot be observed")
        raise NotApplicable("the profile has no login operation, so there is no session cookie to judge")
    names = {c.name for c in traffic.cookies}
    absent = [n for n in declared if n not in names]
    if absent:
        raise ControlFailed(f"positive control failed: login did not set the declared session cookie(s) "
                            f"{', '.join(absent)} (set: {', '.join(sorted(names)) or 'none'})")
    examined("logins observed", 1)
    if not traffic.cookies:
        evidence.note("login set no cookie (a bearer-token API): no cookie can leak")
        return
    bad = [f"cookie {c.name!r} (path {c.path}) lacks {', '.join(c.missing())}" for c in traffic.cookies if c.missing()]
    if bad:
        raise PromiseBroken("cookies set at login can leak over plain http or to scripts:\n  " + "\n  ".join(bad))
    examined("cookies set at login", traffic.cookies)


def no_personal_data_in_urls(traffic: Traffic, evidence) -> None:
    """No value of the subject in a URL path or query, a Location header, or a Referer."""
    _usable(traffic)
    needles = traffic.subject.needles(traffic.subject.strong_fields())
    carried = [ex for ex in traffic.exchanges
               if obs.match_text("\n".join([ex.request_body, ex.response_body]), needles)]
    if not carried:
        raise ControlFailed("positive control failed: the subject's data was never seen in its recorded "
                            "exchanges, so its absence from their URLs would prove nothing")
    found = obs.canaries_in_urls(traffic.exchanges, traffic.captures, needles)
    evidence.stage("URLs examined", exchanges=len(traffic.exchanges), deliveries=len(traffic.captures),
                   found=found)
    if found:
        raise PromiseBroken("personal data appears in URLs, which end up in logs, histories and Referers:\n  "
                            + "\n  ".join(found))
    examined("exchanges whose URLs were read", traffic.exchanges)
    examined("deliveries whose URLs were read", traffic.captures)


def deliveries_over_https(traffic: Traffic, profile, evidence) -> None:
    """Every delivery to a recipient arrived at the capture sink over TLS."""
    _usable(traffic)
    recipients_declared(len(profile.sinks), profile.lacks.get("recipients"), "sent deliveries over https")
    needs_stage(traffic, "recipients")
    if not traffic.recipients:
        stored = (f"; {', '.join(traffic.through_stores)} {'is' if len(traffic.through_stores) == 1 else 'are'} "
                  "declared through a store, whose record does not say how a delivery travelled"
                  if traffic.through_stores else "")
        raise ControlFailed(f"positive control failed: no recipient received the subject "
                            f"{traffic.subject.canary} within the propagation timeout, so no delivery was seen"
                            + stored)
    from ..observe.sinks import classify

    plain = []
    for cap in traffic.captures:
        # mail (scheme smtp) is not a web delivery; this check judges HTTP deliveries only
        if cap.scheme not in ("https", "smtp"):
            sink = classify(cap.path, profile.sinks)
            who = f"{sink['name']} ({sink['role']})" if sink else "UNDECLARED recipient"
            plain.append(f"{who} {cap.method} {cap.path} at {cap.received_at}: delivered over {cap.scheme}://, "
                         "not https")
    evidence.stage("deliveries", recipients=traffic.recipients,
                   schemes=[f"{c.scheme} {c.method} {c.path}" for c in traffic.captures])
    if plain:
        raise PromiseBroken(f"{len(plain)} deliver{'y' if len(plain) == 1 else 'ies'} to recipients travelled "
                            "in cleartext:\n  " + "\n  ".join(plain))
    examined("recipients that received the subject", traffic.recipients)
    examined("deliveries inspected", traffic.captures)
    if traffic.through_stores:
        remark(f"not judged: {', '.join(traffic.through_stores)}, declared through a store (sinks[].store): its "
               "record says what was sent, not whether it travelled over https")


# -- at rest ------------------------------------------------------------------------------------

def _swept(traffic: Traffic) -> None:
    # Stores and logs, not TLS: the at-rest procedure runs whatever the transport.
    usable(traffic)
    needs_stage(traffic, "stores")
    if traffic.subject is None:
        raise CheckError(f"the procedure did not run: {traffic.no_https or 'no subject was created'}")


def _examined_sweep(traffic: Traffic) -> None:
    examined("stores seen holding the subject", traffic.stores_seen)
    for what, n in traffic.swept.items():
        examined(what, n)


def password_hashed(traffic: Traffic, evidence) -> None:
    """The subject's password is in no store and no log, in any form the sweep knows."""
    _swept(traffic)
    if "password" not in traffic.subject.fields:
        raise NotApplicable("the subjects have no password field (the profile's subject.fields lists none)")
    found = [h for h in traffic.hits if h.field == "password"]
    evidence.stage("password sweep", seen_in=traffic.stores_seen, barrier=traffic.store_barrier,
                   found=[describe_hit(h) for h in found])
    if found:
        places = from_hits(found, traffic.file_roots)
        raise PromiseBroken("the password is kept in a recoverable form (not a salted password hash) in "
                            f"{summary(places)}:" + listing(places), places=places)
    if traffic.unswept:
        raise CheckError("parts of the stores could not be swept, so the password's absence there is unproven:\n  "
                         + "\n  ".join(traffic.unswept))
    if not traffic.stores_seen:
        raise NotVerified("the subject was seen in no store, so the absence of its password there proves nothing")
    _examined_sweep(traffic)


def no_personal_data_in_logs(traffic: Traffic, evidence) -> None:
    """No value of the subject in the target's log files."""
    _swept(traffic)
    if not traffic.log_stores:
        raise NotVerified("the profile declares no log files (a store with 'files:'), so logs cannot be checked; "
                          "declare where the target writes its logs")
    if not traffic.log_files:
        raise ControlFailed(f"positive control failed: the log globs of store(s) {', '.join(traffic.log_stores)} "
                            "match no file")
    if not traffic.log_barrier:
        raise ControlFailed("barrier failed: the log files did not grow after the subject's operations (a control "
                            "subject acted), so lines about the subject may not have been written yet")
    in_logs = [h for h in traffic.hits if h.store in traffic.log_stores]
    strong = [h for h in in_logs if not h.weak]
    evidence.stage("log sweep", files=traffic.log_files, barrier=traffic.log_barrier,
                   found=[describe_hit(h) for h in in_logs])
    if strong:
        places = from_hits(strong, traffic.file_roots)
        raise PromiseBroken(f"the subject's personal data is written to the logs, {summary(places)}:"
                            + listing(places), places=places)
    examined("log files read", traffic.log_files)
