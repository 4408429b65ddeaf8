"""What every check body needs: refuse to judge an unusable procedure, list findings briefly."""

from __future__ import annotations

from ..outcomes import CheckError, NotVerified
from ..outcomes import recipients_declared as recipients_declared  # re-exported for check bodies

MAX_LINES = 8


def usable(outcome, *, raise_not_verified: bool = False) -> None:
    """Raise the procedure's skip (not applicable / not verified) or error, if it has one.

    With ``raise_not_verified``, an outcome's ``not_verified`` reason (a string, checked after
    the error) raises NotVerified too: the deadline procedure reports it that way.
    """
    if getattr(outcome, "skip", None) is not None:
        raise outcome.skip
    if outcome.error:
        raise CheckError(outcome.error)
    if raise_not_verified and outcome.not_verified:
        raise NotVerified(outcome.not_verified)


def lines(items: list[str]) -> str:
    """Findings one per line, at most MAX_LINES; the evidence holds the rest."""
    shown = items[:MAX_LINES]
    more = f"\n  … and {len(items) - len(shown)} more (see the evidence)" if len(items) > len(shown) else ""
    return "\n  " + "\n  ".join(shown) + more


def needs_stage(outcome, stage: str) -> None:
    """An error when a stage this check judges could not be completed (other stages' failures are
    shown in the evidence, and do not void this check)."""
    failed = (getattr(outcome, "failed_stages", None) or {}).get(stage)
    if failed:
        raise CheckError(failed)

