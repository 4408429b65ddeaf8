"""Judgements over one deletion procedure (flows/deletion.py), one promise each."""

from __future__ import annotations

from ..findings import from_hits, from_residue, listing, summary
from ..flows.deletion import DeletionOutcome, overdue_retention
from ..outcomes import CheckError, NotVerified, PromiseBroken, examined, remark
from .common import needs_stage, recipients_declared
from .common import usable as _usable


def _requested(outcome: DeletionOutcome) -> None:
    """What every deletion check needs: a usable procedure and a request carried out."""
    _usable(outcome)
    if outcome.completion_failure:
        raise PromiseBroken(f"the deletion request {outcome.request_id or ''} never completed: "
                            f"{outcome.completion_failure} (kept in the ledger; later runs judge its deadline)")


def request_completes(outcome: DeletionOutcome) -> None:
    _requested(outcome)
    examined("deletion requests carried out", 1 if outcome.completed_at else 0)


def no_residual_data(outcome: DeletionOutcome) -> None:
    _requested(outcome)
    # Storage residue is shown whatever the verdict; it fails the check only where the profile
    # says storage_residue: fail.
    for line in outcome.residue_notes:
        remark(line)
    # Residual data after a seen barrier is a verdict, whatever failed in another stage.
    if outcome.residual or outcome.residue_failing:
        places = from_hits(outcome.residual, outcome.file_roots) + from_residue(outcome.residue_failing)
        raise PromiseBroken(f"the deleted subject's data is still held in {summary(places)}:" + listing(places),
                            places=places)
    needs_stage(outcome, "stores")
    if outcome.unswept:
        raise CheckError("parts of the stores could not be swept, so absence there is unproven:\n  "
                         + "\n  ".join(outcome.unswept))
    if not outcome.held:
        raise NotVerified("no store was seen holding the subject before the deletion (every store is declared "
                          "expect_subject: false, and none held it), so its absence afterwards proves nothing")
    if outcome.residue_problems:
        raise CheckError("storage_residue: fail is set, but the storage residue scan could not be made:\n  "
                         + "\n  ".join(outcome.residue_problems))
    examined("stores seen holding the subject before the request", outcome.held)
    for what, n in outcome.swept.items():
        examined(f"{what} after the request", n)
    if outcome.residue_files:
        examined("SQLite files scanned for storage residue", outcome.residue_files)


def account_gone(outcome: DeletionOutcome) -> None:
    _requested(outcome)
    if outcome.account_problems:
        raise PromiseBroken("the deleted account is still usable: " + "; ".join(outcome.account_problems))
    needs_stage(outcome, "account")
    if not outcome.account_probes:
        raise NotVerified("the profile declares neither read_subject with gone_when nor login, so whether the "
                          "deleted account can still be read or used cannot be observed; declare one of them")
    examined("account probes after the request", outcome.account_probes)


def recipients_told(outcome: DeletionOutcome) -> None:
    _requested(outcome)
    problems = outcome.missing_notices + [f"after the deletion, {s}" for s in outcome.shared_after]
    if problems:
        raise PromiseBroken("recipients of the subject's data were not told to delete it:\n  " + "\n  ".join(problems))
    recipients_declared(outcome.sinks_declared, outcome.lacks_recipients, "told to delete the subject's data")
    needs_stage(outcome, "recipients")
    examined("recipients that received the subject", outcome.recipients_before)
    examined("deletion notices matched", outcome.notices)


def others_intact(outcome: DeletionOutcome) -> None:
    _requested(outcome)
    if outcome.isolation_problems:
        raise PromiseBroken("deleting one subject harmed another: " + "; ".join(outcome.isolation_problems))
    needs_stage(outcome, "isolation")
    examined("looks at the control subject after the request", outcome.isolation_checked)


def time_limited_retention_purged(run, evidence) -> None:
    """Data kept under a `purge_within` exception is gone once its period has ended."""
    still, purged = overdue_retention(run)
    evidence.stage("time-limited retention", still_held=still, purged=purged)
    examined("holds past their purge date", len(still) + len(purged))
    if not still and not purged:
        from ..outcomes import NotApplicable

        # Nothing reached its purge date: saying "passed" would claim a check that was not made.
        raise NotApplicable("no data kept under a time-limited retention exception has reached the end of "
                            "its period yet; later runs judge it when it does")
    if still:
        raise PromiseBroken("data kept under a time-limited retention exception outlived its period:\n  "
                            + "\n  ".join(still))
