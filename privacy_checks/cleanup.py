"""Remove what interrupted runs left behind on a target.

Only subjects recorded in the ledger, of runs whose lease has expired, are touched; and
only after the target confirms the record still carries the canary values the ledger holds
(a reused id must never make us delete a real person).

A subject created by SQL or command steps may have no captured id at all: `read_subject` and
`cleanup` then find it by the field values the ledger recorded (a lookup such as `SELECT id
FROM customer WHERE email = :email` in their own steps). After removing, the stores are swept
for what is left of each subject: a target that only retires accounts keeps them, and cleanup
says so, per subject, instead of reporting them removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import PrivacyChecksError, TargetError


@dataclass
class CleanupReport:
    removed: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    remains: list[str] = field(default_factory=list)  # subjects whose data the stores still hold
    unchecked: list[str] = field(default_factory=list)  # stores that could not be swept afterwards
    skipped_live: int = 0

    def lines(self) -> list[str]:
        out = [f"removed {len(self.removed)} subject(s), {len(self.already_gone)} already gone"]
        out += [f"  refused: {r}" for r in self.refused]
        out += [f"  failed: {f}" for f in self.failed]
        out += [f"  remains: {r}" for r in self.remains]
        out += [f"  not checked afterwards: {u}" for u in self.unchecked]
        return out

    @property
    def incomplete(self) -> bool:
        return bool(self.failed or self.remains)


def _matches(row: dict, body) -> bool:
    """Does the target's record still carry the ledger's canary values?"""
    if not isinstance(body, dict):
        return False
    seen = " ".join(str(v) for v in body.values() if isinstance(v, str | int))
    # One canary-bearing value is enough: canaries are unique to this subject.
    return any(v in seen for v in _canary_values(row).values())


def _canary_values(row: dict) -> dict[str, str]:
    return {k: v for k, v in row["fields"].items() if isinstance(v, str) and row["canary"] in v}


def cleanup_orphans(ledger, target, *, target_name: str, stores: list | None = None) -> CleanupReport:
    """Remove the orphans of `target_name`; with `stores` (sweep specs), report what remains of each."""
    from .subjects import Subject

    report = CleanupReport()
    handled: list[tuple[str, dict, bool]] = []  # (label, ledger row, whether an operation removed it)
    reader = target.has_operation("read_subject")
    for row in ledger.orphans(target_name):
        subject = Subject(id=row["id"], test_id=row["test_id"], canary=row["canary"], fields=row["fields"],
                          strategies={}, role=row["role"], captured=dict(row["captured"]))
        label = f"{row['canary']} (run {row['run_id']})"
        if row["state"] == "intended":
            if not reader:
                # The create request may never have reached the target; nothing identifies a record.
                report.refused.append(f"{label}: its creation was never confirmed and the profile declares no "
                                      "read_subject to look for it by its canary values; look for it by hand")
                continue
            # read_subject looks it up by the ledger's values, and nothing is removed unless the
            # record found carries its canaries
            ledger.update_subject(subject.id, state="orphaned")
        if reader:
            try:
                res = target.run("read_subject", subject, dict(subject.captured))
            except TargetError as exc:
                why = " (no target id was captured: read_subject must find it by field values)" \
                    if not subject.captured else ""
                report.failed.append(f"{label}: {exc}{why}")
                continue
            gone_when = (target.profile.operation("read_subject") or {}).get("gone_when")
            gone = bool(gone_when) and target.condition("read_subject", gone_when, res.last)
            if not _matches(row, res.last.json):
                if gone:
                    ledger.update_subject(subject.id, state="cleaned")
                    report.already_gone.append(label)
                    handled.append((label, row, False))
                else:
                    report.refused.append(f"{label}: the target's record does not carry the ledger's canary values")
                continue
            # The record is ours, retired or not: remove it for good.
        elif not subject.captured:
            report.refused.append(f"{label}: no target id was captured and the profile declares no read_subject "
                                  "to find the record by its canary values")
            continue
        op = "cleanup" if target.has_operation("cleanup") else "delete"
        try:
            target.run(op, subject, dict(subject.captured))
        except (TargetError, PrivacyChecksError) as exc:
            report.failed.append(f"{label}: {exc}")
            continue
        ledger.update_subject(subject.id, state="cleaned")
        report.removed.append(label)
        handled.append((label, row, True))
    if stores and handled:
        _what_remains(ledger, target, stores, handled, report)
    return report


def _what_remains(ledger, target, stores: list, handled: list[tuple[str, dict, bool]], report: CleanupReport) -> None:
    """Sweep once for every subject handled; a subject the stores still hold is not cleaned."""
    from .observe.forms import Needle
    from .observe.stores import sweep

    needles = [Needle(row["id"], name, value) for _, row, _ in handled for name, value in _canary_values(row).items()]
    if not needles:
        return
    result = sweep(stores, needles)
    report.unchecked += [f"{u.store}: {u.where}: {u.reason}" for u in result.unswept]
    by_subject: dict[str, list] = {}
    for hit in result.hits:
        by_subject.setdefault(hit.subject_id, []).append(hit)
    op = "cleanup" if target.has_operation("cleanup") else "delete"
    for label, row, ran in handled:
        hits = by_subject.get(row["id"])
        if not hits:
            continue
        places = sorted({f"{h.store}: {h.table_or_path} ({h.field})" for h in hits})
        if ran and op == "cleanup":
            why = "the cleanup operation ran, but the target still keeps these"
        elif ran:
            why = ("the delete operation ran (no cleanup operation is declared), but the target keeps these: does it "
                   "only retire accounts? give a 'cleanup' operation that removes them for good, e.g. through SQL")
        else:
            why = ("read_subject says the subject is gone, but the stores still hold these: a retired record? let "
                   "read_subject find retired records too (so their canaries can be checked) and give a 'cleanup' "
                   "operation that removes them for good")
        report.remains.append(f"{label}: {'; '.join(places)} — {why} (docs/profile.md, cleanup)")
        for lst in (report.removed, report.already_gone):
            if label in lst:
                lst.remove(label)
        # still ours and still there: a later cleanup (with a better cleanup operation) tries again
        ledger.update_subject(row["id"], state="orphaned")
