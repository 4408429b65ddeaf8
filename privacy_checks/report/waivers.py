"""Waivers: a known gap with a written justification, an approver and an expiry date.

A waiver names one check by its stable id, or every check citing a clause
(``clause: "ccpa:1798.105"``; a subsection such as ``ccpa_regs:7022(b)`` narrows it to
citations of that subsection and below). Only a broken promise can be waived: a check that
could not be made is not a known gap, it is an unknown one.

A waiver covers no more than it names, on two axes:

- places: ``places: ["table:search/*"]`` (fnmatch patterns over the place ids of findings.py)
  covers only the places it matches; without ``places`` it covers every place;
- clauses: a ``clause`` waiver covers that clause only (the citations its selector selects);
  a ``check`` waiver covers every clause the check cites.

A broken check is *waived* only when every (clause it cites, place it broke in) pair is
covered by some waiver in force; otherwise it stays *failed*, and `Coverage` says which clauses
and places were waived and which are still broken. A check that broke without naming any
place can only be covered by a waiver without ``places``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from .. import clauses as registry
from ..findings import KINDS
from ..outcomes import validate_check_id

REQUIRED = ("justification", "approver", "expires")
OPTIONAL = ("places", "approved")


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
    places: tuple[str, ...] = ()  # fnmatch patterns over place ids; () covers every place
    approved: date | None = None
    file: str = ""          # the waiver file as given
    file_sha256: str = ""   # of its bytes as read, so a report names the exact file in force

    @property
    def subject(self) -> str:
        what = f"check {self.check}" if self.check else f"clause {self.clause}"
        return what + (f", places {', '.join(self.places)}" if self.places else "")

    def expired(self, today: date) -> bool:
        # The expiry date is the last day the waiver still holds.
        return self.expires < today

    def matches(self, check_id: str | None, citations: list[tuple[str, str]]) -> bool:
        """Whether the waiver concerns this check at all. `citations` are (family, reference)
        pairs as written in the check's markers."""
        if self.check:
            return check_id == self.check
        return registry.clause_selector(self.clause or "").selects(citations)

    def covers_citation(self, check_id: str | None, citation: tuple[str, str] | None) -> bool:
        """A check waiver covers every clause its check cites; a clause waiver only the
        citations its selector selects (that clause, or a subsection of it)."""
        if self.check:
            return check_id == self.check
        return citation is not None and registry.clause_selector(self.clause or "").selects([citation])

    def covers_place(self, place_id: str) -> bool:
        return not self.places or any(fnmatchcase(place_id, pattern) for pattern in self.places)

    def describe(self) -> str:
        approved = f" on {self.approved.isoformat()}" if self.approved else ""
        return (f"waived: {self.justification} (approved by {self.approver}{approved}, "
                f"valid until {self.expires.isoformat()}; {self.subject}; {self.source})")

    def to_dict(self) -> dict:
        return {"check": self.check, "clause": self.clause, "places": list(self.places),
                "justification": self.justification, "approver": self.approver,
                "approved": self.approved.isoformat() if self.approved else None,
                "expires": self.expires.isoformat(), "source": self.source, "file": self.file,
                "file_sha256": self.file_sha256}


def _date(value, where: str, key: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise WaiverError(f"{where}: {key} must be a date YYYY-MM-DD, not {value!r}") from None


def _places(value, where: str) -> tuple[str, ...]:
    """`places` as written: a non-empty list of patterns, each starting with a place kind, so a
    typo cannot silently cover nothing (or, worse, be read as covering everything)."""
    example = 'e.g. places: ["table:search/*", "recipient:analytics/*"]'
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise WaiverError(f"{where}: places must be a non-empty list of place patterns ({example}), "
                          f"not {value!r}")
    out = []
    for pattern in value:
        if not isinstance(pattern, str) or not pattern.strip():
            raise WaiverError(f"{where}: places: each entry must be a non-empty string ({example}), "
                              f"not {pattern!r}")
        pattern = pattern.strip()
        kind, sep, rest = pattern.partition(":")
        if not sep or kind not in KINDS or not rest:
            raise WaiverError(f"{where}: places: {pattern!r} must start with a place kind "
                              f"({', '.join(k + ':' for k in KINDS)}) followed by the place, {example}")
        out.append(pattern)
    return tuple(dict.fromkeys(out))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_waivers(path: str | Path) -> list[Waiver]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WaiverError(f"{path}: cannot read the waiver file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WaiverError(f"{path}: not UTF-8 text ({exc})") from None
    except yaml.YAMLError as exc:
        raise WaiverError(f"{path}: not valid YAML ({exc})") from None
    digest = hashlib.sha256(raw).hexdigest()
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
        unknown = set(entry) - {"check", "clause", *REQUIRED, *OPTIONAL}
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
        places = _places(entry["places"], where) if "places" in entry else ()
        expires = _date(entry["expires"], where, "expires")
        approved = None
        if entry.get("approved") not in (None, ""):
            approved = _date(entry["approved"], where, "approved")
            if approved > expires:
                raise WaiverError(f"{where}: approved ({approved.isoformat()}) is after expires "
                                  f"({expires.isoformat()})")
        waivers.append(Waiver(justification=str(entry["justification"]).strip(),
                              approver=str(entry["approver"]).strip(), expires=expires, check=check,
                              clause=clause, source=f"{path.name}#{index}", places=places, approved=approved,
                              file=str(path), file_sha256=digest))
    return waivers


def split_expired(waivers: list[Waiver], today: date | None = None) -> tuple[list[Waiver], list[Waiver]]:
    today = today or date.today()
    return [w for w in waivers if not w.expired(today)], [w for w in waivers if w.expired(today)]


def find_waiver(waivers: list[Waiver], check_id: str | None, citations: list[tuple[str, str]]) -> Waiver | None:
    """The first waiver concerning the check (whatever it covers of it)."""
    # A waiver for the exact check is more specific than one for a clause it cites.
    for waiver in sorted(waivers, key=lambda w: w.check is None):
        if waiver.matches(check_id, citations):
            return waiver
    return None


# -- what the waivers in force cover of one broken check -------------------------------------------

@dataclass
class Coverage:
    """Which (clause, place) pairs of one broken check the waivers cover.

    `citations` are the check's "family:reference" strings as its markers write them (as the
    results file keeps them); a check citing nothing has the one pseudo-citation "". `places`
    are the ids where it broke, in the check's order."""

    citations: list[str]
    places: list[str]
    # citation -> place id (or "" for a check that named no place) -> source of the covering waiver
    cells: dict[str, dict[str, str]] = field(default_factory=dict)
    waivers: list[Waiver] = field(default_factory=list)  # those that covered something, in file order

    def _keys(self) -> list[str]:
        return self.places or [""]

    def clause_waived(self, citation: str) -> bool:
        return all(k in self.cells.get(citation, {}) for k in self._keys())

    def place_waived(self, place_id: str) -> bool:
        """Waived for every clause the check cites."""
        return all(place_id in self.cells.get(c, {}) for c in self.citations)

    def place_waived_for(self, place_id: str) -> list[str]:
        return [c for c in self.citations if place_id in self.cells.get(c, {})]

    def place_waivers(self, place_id: str) -> list[str]:
        return list(dict.fromkeys(self.cells[c][place_id] for c in self.citations
                                  if place_id in self.cells.get(c, {})))

    @property
    def anything(self) -> bool:
        return any(self.cells.values())

    @property
    def complete(self) -> bool:
        return all(self.clause_waived(c) for c in self.citations)

    def clause_outcomes(self) -> dict[str, dict]:
        """Per citation: "waived" when every place it broke in is covered for it, else "failed";
        which waivers covered it, and how many of its places are still broken."""
        out = {}
        for c in self.citations:
            if not c:
                continue
            got = self.cells.get(c, {})
            out[c] = {"outcome": "waived" if self.clause_waived(c) else "failed",
                      "waivers": list(dict.fromkeys(got.values())),
                      "places_waived": [p for p in self.places if p in got],
                      "places_broken": [p for p in self.places if p not in got]}
        return out

    def to_dict(self) -> dict:
        """What the results file keeps of it (privacy-results.json's `waived`)."""
        return {"complete": self.complete, "waivers": [w.to_dict() for w in self.waivers],
                "clauses": self.clause_outcomes(),
                "places_waived": [p for p in self.places if self.place_waived(p)],
                "places_broken": [p for p in self.places if not self.place_waived(p)]}


def cover(waivers: list[Waiver], check_id: str | None, citations: list[tuple[str, str]],
          place_ids: list[str]) -> Coverage:
    """What `waivers` (those in force) cover of a check that broke in `place_ids`."""
    cited = [f"{family}:{ref}" for family, ref in citations] or [""]
    pairs = list(zip(cited, citations or [None], strict=True))
    coverage = Coverage(citations=list(dict.fromkeys(cited)), places=list(dict.fromkeys(place_ids)))
    used: list[Waiver] = []
    # A check waiver first (the more specific accepting), then clause waivers, in file order.
    for waiver in sorted(waivers, key=lambda w: w.check is None):
        hit = False
        for text, citation in pairs:
            if not waiver.covers_citation(check_id, citation):
                continue
            cell = coverage.cells.setdefault(text, {})
            if not coverage.places:
                if not waiver.places:  # a waiver scoped to places cannot cover a failure naming none
                    hit = hit or "" not in cell
                    cell.setdefault("", waiver.source)
                continue
            for place in coverage.places:
                if waiver.covers_place(place) and place not in cell:
                    cell[place] = waiver.source
                    hit = True
        if hit:
            used.append(waiver)
    order = {id(w): i for i, w in enumerate(waivers)}
    coverage.waivers = sorted(used, key=lambda w: order[id(w)])
    return coverage


def unused_reason(waiver: Waiver, concerned: list[dict]) -> str:
    """Why a waiver in force covered nothing. `concerned` are the run's results (entries of
    privacy-results.json) of the checks the waiver concerns."""
    if not concerned:
        return ("its check did not run in this run" if waiver.check
                else "no check citing this clause ran in this run")
    broken = [c for c in concerned if c.get("outcome") == "failed"]
    if waiver.places and broken:
        named = sorted({p.get("id") for c in broken for p in c.get("places") or [] if p.get("id")})
        return ("its places match none of the places where " + ", ".join(c["check_id"] for c in broken)
                + " broke" + (f" ({', '.join(named[:8])}{' …' if len(named) > 8 else ''})" if named else
                              " (the check named no place)"))
    return "nothing it covers was broken in this run"


def _display(citation: str) -> str:
    family, _, ref = citation.partition(":")
    try:
        return registry.resolve(family, ref).display
    except (registry.ClauseError, KeyError):
        return citation


def still_broken_message(message: str, coverage: Coverage, places: list) -> str:
    """The failure message of a check the waivers cover only in part: the places still broken
    first, then the waived ones, marked; the clauses waived and those still broken; the
    waivers that applied. `places` are the exception's findings.Place objects."""
    from ..findings import MAX_PLACES

    lines = message.splitlines() or [""]
    out = [lines[0]]
    # Places are listed apart only when the waivers set some apart from others; a clause waiver
    # covering every place of one clause says so in its own line below.
    if len({tuple(coverage.place_waived_for(p.id)) for p in places}) > 1:
        broken = [p for p in places if not coverage.place_waived(p.id)]
        waived = [p for p in places if coverage.place_waived(p.id)]
        out.append(f"still broken in {len(broken)} place(s), no waiver covers them:")
        for p in broken[:MAX_PLACES]:
            only = coverage.place_waived_for(p.id)
            out.append(f"  {p.line()}" + (f" [waived for {', '.join(map(_display, only))} only]" if only else ""))
        if len(broken) > MAX_PLACES:
            out.append(f"  … and {len(broken) - MAX_PLACES} more place(s) still broken (see the evidence)")
        if waived:
            out.append(f"waived in {len(waived)} place(s):")
            out += [f"  [waived] {p.line()}" for p in waived[:MAX_PLACES]]
            if len(waived) > MAX_PLACES:
                out.append(f"  … and {len(waived) - MAX_PLACES} more waived place(s) (see the evidence)")
    else:
        out += lines[1:]
    clauses = coverage.clause_outcomes()
    if clauses and any(c["outcome"] == "waived" for c in clauses.values()):
        out.append("waived for " + ", ".join(_display(c) for c, v in clauses.items() if v["outcome"] == "waived")
                   + " only; still broken against "
                   + ", ".join(_display(c) for c, v in clauses.items() if v["outcome"] != "waived"))
    for waiver in coverage.waivers:
        out.append(f"{waiver.describe()}: covers only part of what broke")
    return "\n".join(out)
