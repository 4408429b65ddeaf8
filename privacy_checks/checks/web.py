"""Judgements over the browser procedures (flows/web.py), one promise each."""

from __future__ import annotations

from ..flows.web import WebOutcome, group
from ..outcomes import ControlFailed, NotVerified, PromiseBroken, examined
from .common import lines as _lines
from .common import usable as _usable


def _tally(outcome: WebOutcome) -> None:
    """What the browser procedure looked at, as this check's examined counts (outcomes.examined)."""
    for what, n in outcome.examined.items():
        examined(what, n)


def _examined(outcome: WebOutcome) -> str:
    return ", ".join(f"{n} {what}" for what, n in outcome.examined.items()) + " examined"


def _no_leaks(outcome: WebOutcome, what: str, when: str = "") -> None:
    if outcome.leaks:
        lines = group(outcome.leaks)
        raise PromiseBroken(f"{what} in {len(lines)} request(s) ({_examined(outcome)}{when}):" + _lines(lines))


def tags_honour_gpc(outcome: WebOutcome) -> None:
    """11 CCR §7025(c)(1): with GPC on, nothing of the subject's reaches a third-party or sale domain,
    and no third-party advertising cookie is set."""
    _usable(outcome)
    _tally(outcome)
    found = [c.describe() for c in outcome.cookies] + group(outcome.leaks)
    if found:
        raise PromiseBroken(
            f"with Global Privacy Control on (Sec-GPC: 1 on every request, navigator.globalPrivacyControl true), "
            f"the subject's browser still shared with third parties ({_examined(outcome)}): "
            f"{len(group(outcome.leaks))} request(s) carried its identifiers, {len(outcome.cookies)} third-party "
            "cookie(s) were set:" + _lines(found))


def tags_stop_after_opt_out(outcome: WebOutcome) -> None:
    """§1798.120, §1798.135: after the site's own opt-out, later page views send nothing of the subject's."""
    _usable(outcome)
    _tally(outcome)
    _no_leaks(outcome, "after the subject opted out through the site's Do Not Sell or Share link, later page views "
                       "still sent its identifiers to a third-party or sale domain", " after the opt-out")


def form_data_not_leaked(reference: WebOutcome) -> None:
    """What the subject types reaches only the first party and declared service providers, in no form."""
    _usable(reference)
    _tally(reference)
    if not reference.typed:
        raise NotVerified("the profile's journeys type none of the subject's values (no fill step with "
                          "{{ subject.<field> }}), so where typed data goes cannot be observed")
    if not reference.typed_seen_first:
        raise ControlFailed(f"positive control failed: none of the typed fields ({', '.join(reference.typed)}) was "
                            "seen in any request to the first party or a service provider, so the observer cannot "
                            "be shown to see typed data leave the page; an absence elsewhere would prove nothing")
    _no_leaks(reference, f"what the subject typed ({', '.join(reference.typed)}) reached a domain outside the "
                         "first party and its declared service providers")


def nothing_before_consent(outcome: WebOutcome) -> None:
    """GDPR Art. 6(1)(a), 7; ePrivacy Art. 5(3): no third-party request or cookie before the visitor
    accepts, and none after a rejection."""
    _usable(outcome)
    _tally(outcome)
    found = [c.describe() for c in outcome.cookies] + outcome.requests_outside
    if found:
        raise PromiseBroken(f"third parties were contacted without the visitor's consent ({_examined(outcome)}): "
                            f"{len(outcome.requests_outside)} request(s), {len(outcome.cookies)} "
                            "cookie(s):" + _lines(found))


def cookies_disclosed(reference: WebOutcome) -> None:
    """Every third-party cookie's domain is a declared recipient."""
    _usable(reference)
    if not reference.third_party_cookies:
        # nothing to judge; and a browser that silently refused third-party cookies would look the same
        raise NotVerified(f"no third-party cookie was set in the reference visit ({_examined(reference)}, all "
                          "first-party), so there was no third-party cookie to hold to the declared recipients")
    _tally(reference)
    examined("third-party cookies", reference.third_party_cookies)
    if reference.cookies:
        raise PromiseBroken(f"the visitor's browser holds third-party cookies of domains the profile does not "
                            f"declare (browser.recipients; {_examined(reference)}):"
                            + _lines([c.describe() for c in reference.cookies]))
