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
"""

from __future__ import annotations

import re

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
    """The promise does not hold: evidence says where."""


class CheckError(PrivacyChecksError):
    """The check could not be made (target unreachable, observer blind, control failed)."""


class ControlFailed(CheckError):
    """A positive control or barrier failed: an absence claim would mean nothing."""


class NotApplicable(Exception):
    """The target lawfully lacks this right, and the profile says why."""


class NotVerified(Exception):
    """A mandatory right the profile says it cannot drive."""


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


def not_offered(profile, right: str) -> None:
    """Raise the right outcome when the profile says the target does not offer `right`."""
    reason = (profile.not_offered or {}).get(right)
    if reason is None:
        return
    if right in MANDATORY_RIGHTS:
        raise NotVerified(f"the profile says the target cannot drive '{right}' ({reason}); "
                          "every business must honour this right, so it is not verified")
    raise NotApplicable(f"the target does not offer '{right}': {reason}")
