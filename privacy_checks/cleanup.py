"""Remove what interrupted runs left behind on a target.

Only subjects recorded in the ledger, of runs whose lease has expired, are touched; and
only after the target confirms the record still carries the canary values the ledger holds
(a reused id must never make us delete a real person).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import TargetError


@dataclass
class CleanupReport:
    removed: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_live: int = 0

    def lines(self) -> list[str]:
        out = [f"removed {len(self.removed)} subject(s), {len(self.already_gone)} already gone"]
        out += [f"  refused: {r}" for r in self.refused]
        out += [f"  failed: {f}" for f in self.failed]
        return out


def _matches(row: dict, body) -> bool:
    """Does the target's record still carry the ledger's canary values?"""
    if not isinstance(body, dict):
        return False
    seen = " ".join(str(v) for v in body.values() if isinstance(v, str | int))
    strong = [v for k, v in row["fields"].items() if isinstance(v, str) and row["canary"] in v]
    # One canary-bearing value is enough: canaries are unique to this subject.
    return any(v in seen for v in strong)


def cleanup_orphans(ledger, target, *, target_name: str) -> CleanupReport:
    from .subjects import Subject

    report = CleanupReport()
    for row in ledger.orphans(target_name):
        subject = Subject(id=row["id"], test_id=row["test_id"], canary=row["canary"], fields=row["fields"],
                          strategies={}, role=row["role"], captured=dict(row["captured"]))
        label = f"{row['canary']} (run {row['run_id']})"
        if not subject.captured:
            # The create request may never have reached the target; nothing identifies a record.
            report.refused.append(f"{label}: no target id was captured; look for its canary by hand")
            continue
        if target.has_operation("read_subject"):
            try:
                res = target.run("read_subject", subject, dict(subject.captured))
            except TargetError as exc:
                report.failed.append(f"{label}: {exc}")
                continue
            gone_when = (target.profile.operation("read_subject") or {}).get("gone_when")
            if gone_when and target.condition("read_subject", gone_when, res.last):
                ledger.update_subject(subject.id, state="cleaned")
                report.already_gone.append(label)
                continue
            if not _matches(row, res.last.json):
                report.refused.append(f"{label}: the target's record does not carry the ledger's canary values")
                continue
        op = "cleanup" if target.has_operation("cleanup") else "delete"
        try:
            target.run(op, subject, dict(subject.captured))
        except TargetError as exc:
            report.failed.append(f"{label}: {exc}")
            continue
        ledger.update_subject(subject.id, state="cleaned")
        report.removed.append(label)
    return report
