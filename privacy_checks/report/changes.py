"""What changed since an earlier run on the same target, by check id and finding place.

The baseline is ``--privacy-baseline FILE`` (an earlier privacy-results.json), or else the
ledger: for each check, its most recent result on the same target (so a run narrowed with
``--privacy-check`` does not make the next full run forget the other checks). Each run's results
are recorded in the ledger when it ends.

A check is *broken* when it failed or was waived (a waiver accepts a gap, it does not close it):

- newly broken: broken now, not broken in the baseline (or not in it at all);
- fixed: broken in the baseline, held now;
- still broken: broken in both; its places (findings.py ids) then split into
  new place (only now) and place gone (only then).

A check that could not be made now is neither fixed nor broken: it is listed as such.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

BROKEN = ("failed", "waived")


@dataclass
class Changes:
    baseline: str                     # where the baseline came from, in words
    compared: int = 0                 # checks present in both runs
    newly_broken: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    still_broken: list[str] = field(default_factory=list)
    new_places: dict[str, list[dict]] = field(default_factory=dict)    # check id -> places
    places_gone: dict[str, list[dict]] = field(default_factory=dict)
    not_checked_now: list[str] = field(default_factory=list)          # broken then, error now

    @property
    def new(self) -> list[str]:
        """Checks that are new trouble: newly broken, or still broken in a new place."""
        return self.newly_broken + [c for c in self.still_broken if self.new_places.get(c)]

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "compared": self.compared, "newly_broken": self.newly_broken,
                "fixed": self.fixed, "still_broken": self.still_broken, "new_places": self.new_places,
                "places_gone": self.places_gone, "not_checked_now": self.not_checked_now}

    def lines(self, limit: int = 8) -> list[str]:
        out = [f"compared with {self.baseline}"]

        def listed(label: str, ids: list[str], places: dict[str, list[dict]] | None = None) -> None:
            if not ids:
                return
            out.append(f"{label} ({len(ids)}):")
            for cid in ids[:limit]:
                out.append(f"  {cid}")
                for place in (places or {}).get(cid, [])[:limit]:
                    out.append(f"    {place.get('words') or place.get('id')}")
            if len(ids) > limit:
                out.append(f"  … and {len(ids) - limit} more")

        listed("newly broken", self.newly_broken)
        listed("new place", [c for c in self.still_broken if self.new_places.get(c)], self.new_places)
        listed("place gone", [c for c in self.still_broken if self.places_gone.get(c)], self.places_gone)
        listed("fixed", self.fixed)
        listed("still broken", self.still_broken)
        listed("broken before, could not be checked now", self.not_checked_now)
        if len(out) == 1:
            out.append("no change in what is broken")
        return out


def latest_per_check(checks: list[dict]) -> dict[str, dict]:
    """One entry per check id: the worst of a run's entries (a teardown error adds a second)."""
    rank = {"failed": 0, "waived": 1, "error": 2}
    out: dict[str, dict] = {}
    for c in checks:
        cid = c.get("check_id")
        if cid and (cid not in out or rank.get(c.get("outcome"), 9) < rank.get(out[cid].get("outcome"), 9)):
            out[cid] = c
    return out


def compare(before: list[dict], now: list[dict], *, baseline: str) -> Changes:
    then, current = latest_per_check(before), latest_per_check(now)
    changes = Changes(baseline=baseline)
    for cid in sorted(current):
        outcome = current[cid].get("outcome")
        old = then.get(cid)
        was_broken = old is not None and old.get("outcome") in BROKEN
        if old is not None:
            changes.compared += 1
        if outcome in BROKEN:
            if not was_broken:
                changes.newly_broken.append(cid)
                continue
            changes.still_broken.append(cid)
            places_then = {p["id"]: p for p in old.get("places") or [] if p.get("id")}
            places_now = {p["id"]: p for p in current[cid].get("places") or [] if p.get("id")}
            added = [places_now[k] for k in places_now if k not in places_then]
            gone = [places_then[k] for k in places_then if k not in places_now]
            if added:
                changes.new_places[cid] = added
            if gone:
                changes.places_gone[cid] = gone
        elif was_broken and outcome == "passed":
            changes.fixed.append(cid)
        elif was_broken and outcome == "error":
            changes.not_checked_now.append(cid)
    return changes


def load_baseline_file(path: str | Path) -> tuple[list[dict], dict]:
    """(checks, target) of an earlier privacy-results.json; ValueError names the file and why."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"baseline {path}: cannot be read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ValueError(f"baseline {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        raise ValueError(f"baseline {path}: not a privacy-results.json (no 'checks' list)")
    return data["checks"], data.get("target") or {}
