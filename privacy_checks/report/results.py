"""Per-check results of a run, gathered on the controller (so pytest-xdist runs agree).

Written as `privacy-results.json` (`--privacy-results`, default `<reports>/privacy-results.json`):
the input of the compliance report, of the next run's comparison (`--privacy-baseline`) and of
the framework's own tests, which assert exactly which checks fail for each demo flaw.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path


@dataclass
class CheckResult:
    check_id: str
    nodeid: str
    outcome: str
    message: str
    clauses: list[str]
    duration_s: float
    finished_at: str
    examined: dict[str, int] = field(default_factory=dict)  # what a pass looked at (outcomes.examined)
    # Where a broken promise broke, grouped (findings.py): [{id, words, count, fields, forms, rows}]
    places: list[dict] = field(default_factory=list)
    waiver: dict | None = None
    # What the waivers covered of a broken check (report/waivers.py Coverage.to_dict): per clause
    # "waived" or "failed", the places waived and still broken, the waivers that applied. The
    # outcome is "waived" only when it all is; each waived place is marked in `places`.
    waived: dict | None = None
    # What the check noticed without judging it (outcomes.remark): storage residue reported for
    # information, shown beside the outcome whatever it is.
    remarks: list[str] = field(default_factory=list)


@dataclass
class Results:
    path: Path | None  # None: gathered for the run's verdict and reports, not written
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    checks: list[CheckResult] = field(default_factory=list)
    target: dict = field(default_factory=dict)
    # what the run covered and what it did not (scope.py): command, selection, checks not run
    scope: dict = field(default_factory=dict)
    # the waiver file of the run (report/pytest_hooks.py _waiver_record); None: no --privacy-waivers
    waivers: dict | None = None

    def add(self, result: CheckResult) -> None:
        self.checks.append(result)

    def record(self, report) -> None:
        """Add a check's result from one test report: its call phase, or a setup or teardown
        phase that did not pass (the first target description a report carries is kept)."""
        check_id = getattr(report, "privacy_check_id", None)
        if not check_id:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed) or (
                report.when == "teardown" and report.failed):
            if not self.target and getattr(report, "privacy_target", None):
                self.target = report.privacy_target
            self.add(CheckResult(check_id=check_id, nodeid=report.nodeid, outcome=outcome_of(report),
                                 message=message_of(report), clauses=list(getattr(report, "privacy_clauses", [])),
                                 duration_s=round(report.duration, 3), finished_at=str(report.stop),
                                 examined=dict(getattr(report, "privacy_examined", None) or {}),
                                 places=list(getattr(report, "privacy_places", None) or []),
                                 waiver=getattr(report, "privacy_waiver", None),
                                 waived=getattr(report, "privacy_waived", None),
                                 remarks=list(getattr(report, "privacy_remarks", None) or [])))

    def finish(self, target: dict | None = None) -> Path | None:
        """End of the session: the controller's own target description (when it loaded the
        profile) wins over the one reports carried; then write the file."""
        if target is not None:
            self.target = target
        return self.write()

    def as_dicts(self) -> list[dict]:
        return [asdict(c) for c in self.checks]

    def write(self) -> Path | None:
        if not self.checks or self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"started_at": self.started_at, "finished_at": datetime.now(UTC).isoformat(),
                "target": self.target, "scope": self.scope, "checks": [asdict(c) for c in self.checks]}
        if self.waivers is not None:
            data["waivers"] = self.waivers
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        os.replace(tmp, self.path)  # never a half-written file, even on Ctrl-C
        return self.path


def outcome_of(report) -> str:
    kind = getattr(report, "privacy_outcome", None)
    if kind:
        return kind
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    return "failed" if report.when == "call" else "error"


def message_of(report) -> str:
    if report.passed:
        return ""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    text = str(report.longrepr or "")
    if getattr(report, "privacy_outcome", None) or text.startswith(("FAILED: ", "ERROR: ")):
        # the framework's own verdict names every place the promise broke: kept whole, since
        # the results file is what an auditor and a CI diff read (a tail cut lost the first
        # places, the application's own tables, once a demo had enough stores)
        return text
    return text[-4000:]  # a traceback: its end says what went wrong
