"""What every check body needs: refuse to judge an unusable procedure, list findings briefly."""

from __future__ import annotations

from ..outcomes import CheckError

MAX_LINES = 8


def usable(outcome) -> None:
    """Raise the procedure's skip (not applicable / not verified) or error, if it has one."""
    if getattr(outcome, "skip", None) is not None:
        raise outcome.skip
    if outcome.error:
        raise CheckError(outcome.error)


def lines(items: list[str]) -> str:
    """Findings one per line, at most MAX_LINES; the evidence holds the rest."""
    shown = items[:MAX_LINES]
    more = f"\n  … and {len(items) - len(shown)} more (see the evidence)" if len(items) > len(shown) else ""
    return "\n  " + "\n  ".join(shown) + more
