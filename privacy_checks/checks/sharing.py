"""Judgements over the sharing procedures (flows/sharing.py), one promise each."""

from __future__ import annotations

import json
import re
from datetime import date
from urllib.parse import urljoin

from ..deadlines import CCPA_LIMIT, CCPA_OPT_OUT
from ..findings import from_deliveries
from ..flows.sharing import DEADLINES, CensusOutcome, ChoiceOutcome, QuoteOutcome, group
from ..outcomes import NotApplicable, PromiseBroken, examined, remark
from .common import lines as _lines
from .common import needs_stage
from .common import usable as _usable

# The legal period, where it is longer than any run: a run judges the profile's own bound
# (timeouts.propagation), and says when the law's period ends, which this run does not judge.
_LEGAL_RULES = {"opt_out": CCPA_OPT_OUT, "gpc": CCPA_OPT_OUT, "limit": CCPA_LIMIT}


def _delay(outcome: ChoiceOutcome) -> str:
    if outcome.delay_s is not None:
        return f"observed to take effect within {outcome.delay_s:.1f} s (the law: {DEADLINES[outcome.kind]})"
    rule = _LEGAL_RULES.get(outcome.kind)
    wait = (f"it had not taken effect after {outcome.rounds} round(s) over {outcome.propagation_s:.0f} s, "
            "the bound the profile sets (timeouts.propagation)")
    if rule is None or outcome.requested_at is None:
        # a choice the law wants honoured at once: the profile's bound is the law's
        return f"{wait}; the law: {DEADLINES[outcome.kind]}"
    until = rule.due_at(outcome.requested_at)
    return (f"{wait}. What broke is the profile's promise that the {outcome.label} takes effect within "
            f"{outcome.propagation_s:.0f} s; the legal deadline, {DEADLINES[outcome.kind]}, runs until "
            f"{until.date().isoformat()} and is not judged by this run (the deadline checks judge the target's "
            "recorded requests)")


def sharing_stops(outcome: ChoiceOutcome) -> None:
    """After the choice, no restricted recipient receives the subject's data; the control still does."""
    _usable(outcome)
    if outcome.shared_after:
        requested = outcome.requested_at.isoformat() if outcome.requested_at else "?"
        what = "sensitive personal information" if outcome.kind == "limit" else "data"
        pending = " (the request itself was never carried out)" if outcome.request_failure else ""
        lines = group(outcome.shared_after)
        raise PromiseBroken(f"after the {outcome.label} at {requested}{pending}, the subject's {what} still "
                            f"reached a restricted recipient in {len(lines)} delivery(ies); {_delay(outcome)}:"
                            + _lines(lines), places=from_deliveries(outcome.shared_after))
    needs_stage(outcome, "recipients")
    examined("restricted recipients judged behind a barrier", outcome.judged)
    examined("rounds after the request", outcome.rounds)
    if outcome.store_sinks_read:
        examined("sinks read through their store", outcome.store_sinks_read)
    if outcome.not_reached_by_activity:
        remark(f"not judged: {', '.join(outcome.not_reached_by_activity)} received the subject, but not its "
               "activity, which the rounds after the request repeat")


def no_verification_needed(outcome: ChoiceOutcome) -> None:
    """11 CCR §7060(b): an opt-out needs nothing beyond what identifies the subject."""
    _usable(outcome)
    if outcome.request_failure:
        raise PromiseBroken(f"the {outcome.label} request {outcome.request_id or ''} was not carried out with "
                            f"only the subject's own session: {outcome.request_failure} (a request to opt out "
                            "must not need a verification code or identity proof)")
    examined("requests made with the subject's own session", 1 if outcome.requested_at else 0)


def _census_examined(outcome: CensusOutcome) -> None:
    examined("recipients behind the barrier", outcome.barrier)
    examined("deliveries read", outcome.deliveries_read)
    if outcome.store_sinks_read:
        examined("sinks read through their store", outcome.store_sinks_read)


def no_sale(outcome: CensusOutcome) -> None:
    _usable(outcome)
    _census_examined(outcome)
    if outcome.sale_declared:
        if outcome.sold:
            raise PromiseBroken(f"a subject's data reached a recipient the profile declares as a sale "
                                f"({', '.join(outcome.sale_declared)}):" + _lines(outcome.sold))
        return
    # With no sale recipient declared, a sale can only go somewhere undeclared.
    if outcome.undeclared:
        raise PromiseBroken("the profile declares no sale recipient, so this check relies on the "
                            "undeclared-recipient rule, and a subject's data reached an undeclared recipient:"
                            + _lines(outcome.undeclared))


def no_undeclared_recipient(outcome: CensusOutcome) -> None:
    _usable(outcome)
    _census_examined(outcome)
    if outcome.undeclared:
        raise PromiseBroken("a subject's data reached a recipient the profile does not declare (sinks), so it "
                            "is shared with someone the policy does not disclose:" + _lines(outcome.undeclared))


def same_price_and_service(outcome: QuoteOutcome) -> None:
    _usable(outcome)
    if outcome.differences:
        raise PromiseBroken(f"after opting out, the subject is treated differently at {outcome.where}:"
                            + _lines(outcome.differences))
    examined("quotes compared after the opt-out", [q for q in (outcome.subject_quote, outcome.control_quote)
                                                    if q is not None])


def gpc_support_resource(target, profile) -> None:
    """GPC spec, GPC support resource: /.well-known/gpc.json, application/json, {gpc: true, lastUpdate}."""
    if profile.gpc_supported is not True:
        raise NotApplicable("the profile does not claim GPC support (gpc.supported: true), and the "
                            "/.well-known/gpc.json resource is optional")
    url = urljoin(target.base_url, "/.well-known/gpc.json")
    result = target.request("GET", url, where="GPC support resource")
    problems = []
    if result.status != 200:
        raise PromiseBroken(f"GET {url} answered {result.status}, not 200, although the profile claims GPC support")
    ctype = next((v for k, v in result.headers.items() if k.lower() == "content-type"), "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        problems.append(f"Content-Type is {ctype or 'missing'!r}, not application/json")
    try:
        data = json.loads(result.text)
    except ValueError:
        data = None
        problems.append(f"the body is not JSON: {result.text[:120]!r}")
    if data is not None and not isinstance(data, dict):
        problems.append(f"the body is not a JSON object: {result.text[:120]!r}")
    elif isinstance(data, dict):
        if data.get("gpc") is not True:
            problems.append(f"\"gpc\" is {json.dumps(data.get('gpc'))}, not the boolean true")
        last = data.get("lastUpdate")
        # the spec makes lastUpdate optional; when present it must be a date
        if last is not None:
            try:
                ok = isinstance(last, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", last) and date.fromisoformat(last)
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"\"lastUpdate\" is {json.dumps(last)}, not a date YYYY-MM-DD")
    if problems:
        raise PromiseBroken(f"GET {url} does not follow the GPC specification's support resource:"
                            + _lines(problems))
    examined("support resources read", 1)
