"""Judgements over one correction procedure (flows/access.py), one promise each."""

from __future__ import annotations

from ..findings import MAX_PLACES
from ..flows.access import CorrectionOutcome
from ..outcomes import CheckError, PromiseBroken, examined
from .common import needs_stage, recipients_declared, usable


def _completed(outcome: CorrectionOutcome) -> None:
    usable(outcome)
    if outcome.completion_failure:
        raise PromiseBroken(f"the correction request was not carried out: {outcome.completion_failure}")


def corrected_everywhere(outcome: CorrectionOutcome) -> None:
    _completed(outcome)
    problems = [f"old value still held at {p.line()}" for p in outcome.old_places] + outcome.new_missing
    if problems:
        fields = ", ".join(outcome.fields)
        more = (f"\n  … and {len(problems) - MAX_PLACES} more (see the evidence)" if len(problems) > MAX_PLACES
                else "")
        raise PromiseBroken(f"after correcting {fields}, the old value is not fully replaced:\n  "
                            + "\n  ".join(problems[:MAX_PLACES]) + more, places=outcome.old_places)
    if outcome.unswept:
        raise CheckError("parts of the stores could not be swept, so the old value's absence there is unproven:\n  "
                         + "\n  ".join(outcome.unswept))
    examined("stores that held the old value", outcome.old_seen)
    for what, n in outcome.swept.items():
        examined(f"{what} after the correction", n)


def recipients_told(outcome: CorrectionOutcome) -> None:
    _completed(outcome)
    if outcome.recipients_not_told:
        raise PromiseBroken("recipients of the old value were not told of the correction:\n  "
                            + "\n  ".join(outcome.recipients_not_told))
    recipients_declared(outcome.sinks_declared, outcome.lacks_recipients, "told of the correction")
    needs_stage(outcome, "recipients")
    examined("recipients of the old value", outcome.recipients_before)
    examined("recipients seen receiving the corrected value", outcome.recipients_told)
