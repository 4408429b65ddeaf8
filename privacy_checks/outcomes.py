"""Outcomes of a check, their stable ids, and how each maps to pytest, JUnit and Allure.

| outcome        | raised as              | pytest summary   | JUnit          | Allure  |
|----------------|------------------------|------------------|----------------|---------|
| passed         | (return)               | passed           | pass           | passed  |
| failed         | PromiseBroken          | failed           | <failure>      | failed  |
| error          | CheckError             | error            | <error>        | broken  |
| not applicable | NotApplicable          | not applicable   | <skipped>      | skipped |
| not verified   | NotVerified            | not verified     | <skipped>, or <failure> with --fail-not-verified | skipped / failed |
| waived         | (a waiver matched)     | waived           | <skipped>      | skipped |

A failed positive control or barrier is a CheckError: the check could not be made, which
is never the same as "the promise held" nor as "the promise was broken".

A pass says what it examined. A check body records each thing it looked at with
``examined("stores swept", 3)`` (and what it noticed without judging it with ``remark``); the plugin keeps the tally of every check while it runs
(``tallying``), and a check that returns without a positive count is reported *not
verified* (``NOTHING_EXAMINED``), never passed — so a check that forgets to look, or finds
nothing to look at, cannot pass. Checks that know why there is nothing (the profile states
the target lacks the thing) raise NotApplicable themselves, with the profile's reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sized
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import PrivacyChecksError

PASSED = "passed"
FAILED = "failed"
ERROR = "error"
NOT_APPLICABLE = "not applicable"
NOT_VERIFIED = "not verified"
WAIVED = "waived"
OUTCOMES = (PASSED, FAILED, ERROR, NOT_APPLICABLE, NOT_VERIFIED, WAIVED)

CHECK_ID = re.compile(r"^[a-z0-9]+(\.[a-z0-9][a-z0-9-]*)+$")

# Rights every business must honour: a profile that cannot drive them gets "not verified"
# (never passed). Rights the law lets a business lack get "not applicable" with the reason.
MANDATORY_RIGHTS = {"delete", "know", "correct", "portability", "access"}
OPTIONAL_RIGHTS = {"opt_out", "limit", "gpc", "object"}


class PromiseBroken(AssertionError):
    """The promise does not hold: evidence says where. ``places`` (findings.Place) are where it
    broke, grouped; the reports and the next run's comparison read them."""

    def __init__(self, message: str = "", *, places: list | None = None) -> None:
        super().__init__(message)
        self.places = list(places or [])


class CheckError(PrivacyChecksError):
    """The check could not be made (target unreachable, observer blind, control failed)."""


class ControlFailed(CheckError):
    """A positive control or barrier failed: an absence claim would mean nothing."""


class NotApplicable(Exception):
    """The target lawfully lacks this right, and the profile says why."""


class NotVerified(Exception):
    """A mandatory right the profile says it cannot drive."""


# -- what a check examined ----------------------------------------------------------------------

_TALLY: ContextVar[dict[str, int] | None] = ContextVar("privacy_checks_examined", default=None)


def examined(what: str, count: int | Sized) -> int:
    """Record that the running check examined `count` items of `what` ("stores swept",
    "notices matched", ...); a collection counts as its length. Returns the count."""
    n = count if isinstance(count, int) else len(count)
    tally = _TALLY.get()
    if tally is not None:
        tally[what] = n
    return n


@contextmanager
def tallying() -> Iterator[dict[str, int]]:
    """Collect what the checks called inside examined (the plugin wraps each check's call)."""
    tally: dict[str, int] = {}
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


_REMARKS: ContextVar[list[str] | None] = ContextVar("privacy_checks_remarks", default=None)


def remark(text: str) -> None:
    """Record something the running check saw that does not change its outcome (storage residue
    reported for information): the results and the compliance report show it beside the outcome."""
    remarks = _REMARKS.get()
    if remarks is not None and text not in remarks:
        remarks.append(text)


@contextmanager
def remarking() -> Iterator[list[str]]:
    """Collect what the checks called inside remark (the plugin wraps each check's call)."""
    remarks: list[str] = []
    token = _REMARKS.set(remarks)
    try:
        yield remarks
    finally:
        _REMARKS.reset(token)


def examined_anything(tally: dict[str, int] | None) -> bool:
    return any(isinstance(v, int) and v > 0 for v in (tally or {}).values())


def describe_examined(tally: dict[str, int] | None) -> str:
    """`3 stores swept, 41 tables and files read` (the order the check recorded them in)."""
    return ", ".join(f"{n} {what}" for what, n in (tally or {}).items()) or "nothing recorded"


def nothing_examined(tally: dict[str, int] | None) -> str:
    """The not-verified message of a check that would have passed having examined nothing."""
    return (f"the check found nothing wrong but examined nothing ({describe_examined(tally)}), so a pass "
            "would claim a check that was not made; see its evidence for what it looked for")


@contextmanager
def stage(out, name: str) -> Iterator[None]:
    """Run one stage of a procedure: a framework error ends that stage only and is kept in
    ``out.failed_stages`` under its name, voiding only the checks that judge that stage."""
    try:
        yield
    except PrivacyChecksError as exc:
        out.failed_stages.setdefault(name, str(exc))


def recipients_declared(sinks_declared: int, lacks_reason: str | None, what: str) -> None:
    """No recipient declared: not applicable when the profile says the target has none (its
    reason), otherwise not verified, saying what to declare. Never a pass that looked at nothing."""
    if sinks_declared:
        return
    if lacks_reason:
        raise NotApplicable(f"the profile states the target has no recipients (lacks.recipients): {lacks_reason}")
    raise NotVerified(f"the profile declares no recipients (sinks), so whether recipients are {what} cannot be "
                      "observed; declare every service provider, contractor and third party that receives personal "
                      "data under sinks: (with its deletion_notice), or state lacks.recipients: <reason> if the "
                      "target discloses personal data to no one")


def settle(out, body, *args, **kwargs):
    """Run a procedure's body, which fills ``out``; return ``out``. A skip (not applicable, not
    verified) becomes ``out.skip`` and any framework error ``out.error``, so every check reading
    the outcome reports it, instead of the first one raising and the others never running."""
    try:
        body(*args, **kwargs)
    except (NotApplicable, NotVerified) as exc:
        out.skip = exc
    except PrivacyChecksError as exc:
        out.error = str(exc)
    return out


def validate_check_id(check_id: str) -> str:
    if not CHECK_ID.match(check_id):
        raise ValueError(f"check id {check_id!r} must look like 'ccpa.delete.no-residual-data' "
                         "(lower-case, dot-separated)")
    return check_id


def outcome_for_exception(exc: BaseException | None) -> str | None:
    """The outcome an exception raised by a check means; None leaves pytest's own verdict
    (a skip or xfail the check asked for)."""
    if exc is None:
        return PASSED
    import _pytest.outcomes

    if isinstance(exc, _pytest.outcomes.Skipped | _pytest.outcomes.XFailed):
        return None
    if isinstance(exc, NotApplicable):
        return NOT_APPLICABLE
    if isinstance(exc, NotVerified):
        return NOT_VERIFIED
    if isinstance(exc, CheckError | PrivacyChecksError):
        return ERROR
    if isinstance(exc, AssertionError):
        return FAILED
    return ERROR


# Which right of the profile's `not_offered` each check belongs to, by check-id prefix.
RIGHT_OF_CHECK = (
    ("ccpa.delete.", "delete"), ("gdpr.erasure.", "delete"),
    ("ccpa.know.", "know"), ("gdpr.access.", "know"), ("gdpr.portability.", "portability"),
    ("ccpa.correct.", "correct"), ("gdpr.rectification.", "correct"),
    ("ccpa.opt-out.", "opt_out"), ("ccpa.non-discrimination.", "opt_out"),
    ("ccpa.deadlines.opt-out-", "opt_out"),
    ("ccpa.gpc.", "gpc"), ("gpc.", "gpc"), ("ccpa.limit.", "limit"),
    ("gdpr.object.", "object"), ("gdpr.consent.", "object"),
)


def right_of(check_id: str) -> str | None:
    """The right (a key of `not_offered`) a check judges, or None for checks of no one right."""
    return next((right for prefix, right in RIGHT_OF_CHECK if check_id.startswith(prefix)), None)


def not_offered(profile, right: str) -> None:
    """Raise the right outcome when the profile says the target does not offer `right`."""
    reason = (profile.not_offered or {}).get(right)
    if reason is None:
        return
    if right in MANDATORY_RIGHTS:
        raise NotVerified(f"the profile says the target cannot drive '{right}' ({reason}); "
                          "every business must honour this right, so it is not verified")
    raise NotApplicable(f"the target does not offer '{right}': {reason}")
