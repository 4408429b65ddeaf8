"""Judgements over one deletion procedure (flows/deletion.py), one promise each."""

from __future__ import annotations

from ..flows.deletion import DeletionOutcome, describe_hit, overdue_retention
from ..outcomes import CheckError, PromiseBroken
from .common import usable as _usable


def request_completes(outcome: DeletionOutcome) -> None:
    _usable(outcome)
    if outcome.completion_failure:
        raise PromiseBroken(f"the deletion request {outcome.request_id or ''} never completed: "
                            f"{outcome.completion_failure} (kept in the ledger; later runs judge its deadline)")


def no_residual_data(outcome: DeletionOutcome) -> None:
    request_completes(outcome)
    if outcome.residual:
        lines = "\n  ".join(describe_hit(h) for h in outcome.residual)
        raise PromiseBroken(f"the deleted subject's data is still held in {len(outcome.residual)} place(s):\n  {lines}")
    if outcome.unswept:
        raise CheckError("parts of the stores could not be swept, so absence there is unproven:\n  "
                         + "\n  ".join(outcome.unswept))


def account_gone(outcome: DeletionOutcome) -> None:
    request_completes(outcome)
    if outcome.account_problems:
        raise PromiseBroken("the deleted account is still usable: " + "; ".join(outcome.account_problems))


def recipients_told(outcome: DeletionOutcome) -> None:
    request_completes(outcome)
    problems = outcome.missing_notices + [f"after the deletion, {s}" for s in outcome.shared_after]
    if problems:
        raise PromiseBroken("recipients of the subject's data were not told to delete it:\n  " + "\n  ".join(problems))


def others_intact(outcome: DeletionOutcome) -> None:
    request_completes(outcome)
    if outcome.isolation_problems:
        raise PromiseBroken("deleting one subject harmed another: " + "; ".join(outcome.isolation_problems))


def time_limited_retention_purged(run, evidence) -> None:
    """Data kept under a `purge_within` exception is gone once its period has ended."""
    still, purged = overdue_retention(run)
    evidence.stage("time-limited retention", still_held=still, purged=purged)
    if not still and not purged:
        from ..outcomes import NotApplicable

        # Nothing reached its purge date: saying "passed" would claim a check that was not made.
        raise NotApplicable("no data kept under a time-limited retention exception has reached the end of "
                            "its period yet; later runs judge it when it does")
    if still:
        raise PromiseBroken("data kept under a time-limited retention exception outlived its period:\n  "
                            + "\n  ".join(still))
