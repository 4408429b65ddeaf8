"""Waivers: a known gap with a written justification, an approver and an expiry date.

A waiver names one check by its stable id, or every check citing a clause
(``clause: "ccpa:1798.105"``; a subsection such as ``ccpa_regs:7022(b)`` narrows it to
citations of that subsection and below). Only a broken promise can be waived: a check that
could not be made is not a known gap, it is an unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from .. import clauses as registry
from ..outcomes import validate_check_id

REQUIRED = ("justification", "approver", "expires")


class WaiverError(ValueError):
    """The waiver file cannot be used as written."""


@dataclass(frozen=True)
class Waiver:
    justification: str
    approver: str
    expires: date
    check: str | None = None
    clause: str | None = None
    source: str = ""

    @property
    def subject(self) -> str:
        return f"check {self.check}" if self.check else f"clause {self.clause}"

    def expired(self, today: date) -> bool:
        # The expiry date is the last day the waiver still holds.
        return self.expires < today

    def matches(self, check_id: str | None, citations: list[tuple[str, str]]) -> bool:
        """`citations` are (family, reference) pairs as written in the check's markers."""
        if self.check:
            return check_id == self.check
        return registry.clause_selector(self.clause or "").selects(citations)

    def describe(self) -> str:
        return (f"waived: {self.justification} (approved by {self.approver}, "
                f"valid until {self.expires.isoformat()}; {self.subject})")

    def to_dict(self) -> dict:
        return {"check": self.check, "clause": self.clause, "justification": self.justification,
                "approver": self.approver, "expires": self.expires.isoformat(), "source": self.source}


def _date(value, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise WaiverError(f"{where}: expires must be a date YYYY-MM-DD, not {value!r}") from None


def load_waivers(path: str | Path) -> list[Waiver]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WaiverError(f"{path}: cannot read the waiver file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise WaiverError(f"{path}: not valid YAML ({exc})") from None
    if isinstance(data, dict) and "waivers" in data:
        data = data["waivers"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise WaiverError(f"{path}: expected a list of waivers (or a mapping with a 'waivers' list)")
    waivers = []
    for index, entry in enumerate(data, start=1):
        where = f"{path}: waiver #{index}"
        if not isinstance(entry, dict):
            raise WaiverError(f"{where}: expected a mapping with check or clause, {', '.join(REQUIRED)}")
        unknown = set(entry) - {"check", "clause", *REQUIRED}
        if unknown:
            raise WaiverError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        if bool(entry.get("check")) == bool(entry.get("clause")):
            raise WaiverError(f"{where}: name exactly one of 'check' (a check id) or 'clause' (e.g. 'ccpa:1798.105')")
        missing = [k for k in REQUIRED if not str(entry.get(k) or "").strip()]
        if missing:
            # An unexplained or unowned waiver is exactly what an auditor must not find.
            raise WaiverError(f"{where}: missing {', '.join(missing)}")
        check = clause = None
        if entry.get("check"):
            try:
                check = validate_check_id(str(entry["check"]).strip())
            except ValueError as exc:
                raise WaiverError(f"{where}: {exc}") from None
        else:
            clause = str(entry["clause"]).strip()
            try:
                registry.clause_selector(clause)
            except registry.ClauseError as exc:
                raise WaiverError(f"{where}: {exc}") from None
        waivers.append(Waiver(justification=str(entry["justification"]).strip(),
                              approver=str(entry["approver"]).strip(),
                              expires=_date(entry["expires"], where), check=check, clause=clause,
                              source=f"{path.name}#{index}"))
    return waivers


def split_expired(waivers: list[Waiver], today: date | None = None) -> tuple[list[Waiver], list[Waiver]]:
    today = today or date.today()
    return [w for w in waivers if not w.expired(today)], [w for w in waivers if w.expired(today)]


def find_waiver(waivers: list[Waiver], check_id: str | None, citations: list[tuple[str, str]]) -> Waiver | None:
    # A waiver for the exact check is more specific than one for a clause it cites.
    for waiver in sorted(waivers, key=lambda w: w.check is None):
        if waiver.matches(check_id, citations):
            return waiver
    return None
