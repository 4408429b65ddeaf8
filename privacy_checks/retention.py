"""Retention exceptions: hits a target may lawfully keep after a deletion.

An exception matches by location (store, table or file, column) **and** by subject field and
form, so that a lawful record of a request (e.g. the email a confirmation went to, 11 CCR
§7101) does not excuse the same store keeping the person's name or message bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatch

_PERIOD = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")


@dataclass(frozen=True)
class RetentionException:
    store: str
    table: str | None
    column: str | None
    field: str | None
    form: str | None
    legal_basis: str
    reason: str
    purge_within: timedelta | None = None

    @classmethod
    def from_profile(cls, spec: dict) -> RetentionException:
        purge = None
        if spec.get("purge_within"):
            m = _PERIOD.match(str(spec["purge_within"]))
            if not m:
                raise ValueError(f"purge_within {spec['purge_within']!r}: use a number and h, d or w, e.g. 30d")
            n, unit = int(m.group(1)), m.group(2)
            purge = {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]
        return cls(store=spec["store"], table=spec.get("table") or spec.get("file"), column=spec.get("column"),
                   field=spec.get("field"), form=spec.get("form"), legal_basis=spec["legal_basis"],
                   reason=spec["reason"], purge_within=purge)

    def matches(self, hit) -> bool:
        if hit.store != self.store:
            return False
        if self.table and not fnmatch(str(hit.table_or_path), self.table):
            return False
        if self.column and hit.location_kind == "table" and str(hit.column_or_line) != self.column:
            return False
        if self.field and hit.field != self.field:
            return False
        return not (self.form and hit.form != self.form)

    def describe(self) -> str:
        where = ".".join(p for p in (self.store, self.table, self.column) if p)
        what = "/".join(p for p in (self.field, self.form) if p) or "any field"
        return f"{where} ({what}): {self.legal_basis} — {self.reason}"


def exceptions_from_profile(profile) -> list[RetentionException]:
    return [RetentionException.from_profile(s) for s in (profile.retention_exceptions or [])]


def split_allowed(hits, exceptions: list[RetentionException]):
    """Partition hits into (not allowed, [(hit, exception)] allowed)."""
    bad, allowed = [], []
    for hit in hits:
        exc = next((e for e in exceptions if e.matches(hit)), None)
        if exc is None:
            bad.append(hit)
        else:
            allowed.append((hit, exc))
    return bad, allowed
