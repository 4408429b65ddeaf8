"""Judgements over one deadline procedure (flows/deadlines.py), one promise each.

A request still within its deadline passes, with "pending, due <date>" in the evidence; the
ledger keeps it and a later run judges it again.
"""

from __future__ import annotations

from ..flows.deadlines import ACK_CHECK, OPT_OUT_CHECK, RESPOND_CHECK, DeadlineOutcome, Verdict
from ..outcomes import CheckError, ControlFailed, PromiseBroken, examined, not_offered, remark
from .common import usable


def _judge(outcome: DeadlineOutcome, check: str, evidence, promise: str) -> None:
    usable(outcome, raise_not_verified=True)
    verdicts = outcome.of(check)
    by = {k: [v.line() for v in verdicts if v.outcome == k] for k in ("failed", "pending", "passed")}
    if evidence is not None:
        evidence.stage(f"{promise}: requests judged", now=outcome.now.isoformat() if outcome.now else None,
                       controls=outcome.controls, **by, not_judged=outcome.unjudged)
        for v in verdicts:
            if v.outcome == "failed":
                evidence.finding(kind="deadline missed", source=v.source, request=v.request_id, type=v.kind,
                                 days_late=v.days_late, message=v.message)
    failed: list[Verdict] = [v for v in verdicts if v.outcome == "failed"]
    if failed:
        raise PromiseBroken(f"{len(failed)} request(s) not handled in time ({promise}):\n  "
                            + "\n  ".join(v.line() for v in failed))
    if not verdicts:
        raise CheckError(f"no request to judge for '{promise}': none was filed by the framework or listed by the "
                         "target, so the deadline cannot be shown to hold")
    examined("requests judged", verdicts)
    if by["pending"]:
        # a pass here says nothing is late yet, not that these were answered in time
        settled = len(verdicts) - len(by["pending"])
        remark(f"{len(by['pending'])} of {len(verdicts)} request(s) are still inside their deadline (pending): "
               f"not late yet, not shown answered in time; the ledger keeps them and a later run judges them"
               + ("" if settled else " — no request judged by this run has reached its deadline"))


def acknowledged_in_time(outcome: DeadlineOutcome, evidence=None) -> None:
    usable(outcome, raise_not_verified=True)
    if outcome.ack_blind:
        raise ControlFailed(outcome.ack_blind)
    if outcome.ack_mails:
        examined("mails to the control subject read", outcome.ack_mails)
    _judge(outcome, ACK_CHECK, evidence, "receipt confirmed within 10 business days")


def answered_in_time(outcome: DeadlineOutcome, evidence=None) -> None:
    promise = ("answered within 45 days, or 90 with a timely notice and reason" if outcome.regime == "ccpa"
               else "answered within one month, or three with reasons given within the first")
    _judge(outcome, RESPOND_CHECK, evidence, promise)


def opt_out_honoured_in_time(outcome: DeadlineOutcome, profile=None, evidence=None) -> None:
    if profile is not None:
        not_offered(profile, "opt_out")
    _judge(outcome, OPT_OUT_CHECK, evidence, "opt-out (and limit) requests honoured within 15 business days")
