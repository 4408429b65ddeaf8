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
    # Only a hit the store itself drops within this period (a Redis key's TTL) is allowed.
    max_ttl: timedelta | None = None

    @classmethod
    def from_profile(cls, spec: dict) -> RetentionException:
        return cls(store=spec["store"], table=spec.get("table") or spec.get("file") or spec.get("key"),
                   column=spec.get("column"), field=spec.get("field"), form=spec.get("form"),
                   legal_basis=spec["legal_basis"], reason=spec["reason"],
                   purge_within=_period(spec, "purge_within"), max_ttl=_period(spec, "max_ttl"))

    def matches(self, hit) -> bool:
        if hit.store != self.store:
            return False
        if self.table and not fnmatch(str(hit.table_or_path), self.table):
            return False
        if self.column and hit.location_kind in ("table", "row") and str(hit.column_or_line) != self.column:
            return False
        if self.field and hit.field != self.field:
            return False
        if self.max_ttl is not None and (hit.expires_in is None or hit.expires_in > self.max_ttl.total_seconds()):
            return False  # kept with no expiry, or for longer than allowed
        return not (self.form and hit.form != self.form)

    def describe(self) -> str:
        where = ".".join(p for p in (self.store, self.table, self.column) if p)
        what = "/".join(p for p in (self.field, self.form) if p) or "any field"
        ttl = f", expiring within {_say(self.max_ttl)}" if self.max_ttl else ""
        return f"{where} ({what}{ttl}): {self.legal_basis} — {self.reason}"


def _period(spec: dict, key: str) -> timedelta | None:
    if not spec.get(key):
        return None
    m = _PERIOD.match(str(spec[key]))
    if not m:
        raise ValueError(f"{key} {spec[key]!r}: use a number and h, d or w, e.g. 30d")
    n, unit = int(m.group(1)), m.group(2)
    return {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]


def _say(period: timedelta) -> str:
    hours = int(period.total_seconds() // 3600)
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


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
