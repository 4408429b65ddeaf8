"""What every store kind shares: the store spec, the sweep plan, hits and what could not be swept.

The sweep's contract is the same for every kind of store: given needles, return the hits
(store, location, key, field, form) and the places that could not be swept. ``Plan`` computes
once per sweep what every kind searches for (the marker, its base64 cores, whole-value
digests and weak values) and holds the ``Matcher`` that decides, on the few candidate values a
store returns, exactly which needle and form each holds.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from privacy_checks.observe.forms import (
    MARKER,
    Match,
    Matcher,
    Needle,
    base64_cores,
    excerpt,
    hash_digests,
)


@dataclass
class StoreSpec:
    """A place to sweep: a ``url`` (its scheme chooses the kind), ``files`` globs (log files,
    dumps) or ``lake`` globs (Parquet, CSV, JSON Lines read by DuckDB) — exactly one.

    Table and column filters are ``fnmatch`` patterns, compared case-insensitively against both
    ``table`` and ``schema.table`` (columns: ``table.column`` and ``schema.table.column``).
    ``options`` holds the settings only one kind reads (a Redis store's ``max_value_bytes``, an
    S3 store's ``endpoint_url``...); each kind module documents and checks its own.
    """

    name: str
    url: str | None = None
    schemas: list[str] | None = None
    include_tables: list[str] | None = None
    exclude_tables: list[str] = field(default_factory=list)
    exclude_columns: list[str] = field(default_factory=list)
    files: list[str] | None = None
    lake: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.url, self.files, self.lake)) != 1:
            raise ValueError(f"store {self.name!r}: give exactly one of url, files or lake")


@dataclass(frozen=True)
class Hit:
    store: str
    location_kind: str  # "table" | "file"
    table_or_path: str
    column_or_line: str | int
    row_key: dict[str, Any] | None
    subject_id: str
    field: str
    form: str
    weak: bool
    excerpt: str
    # Seconds until the store itself drops the value (a Redis key's TTL); None: no expiry known.
    expires_in: float | None = None

    def place(self) -> str:
        """Where the hit is, in the store's own terms: what a reader needs to find it again."""
        kind, where, at, key = self.location_kind, self.table_or_path, self.column_or_line, self.row_key or {}
        if kind == "table":
            return f"{self.store}: table {where}, column {at}" + (f", row {self.row_key}" if self.row_key else "")
        if kind == "key":
            held = "no expiry" if self.expires_in is None else f"held for {held_for(self.expires_in)} more"
            return f"{self.store}: db {key.get('db')}, key {where} ({key.get('type')}), {at}, {held}"
        if kind == "object":
            version = key.get("version_id")
            state = "latest" if key.get("latest") else "noncurrent"
            inner = f", {at}" if at != "" else ""
            return f"{self.store}: object {where}" + (f", version {version} ({state})" if version else "") + inner
        if kind == "row":
            source = f"table {where}" + (f" (file {key['file']})" if key.get("file") else "") if key.get("table") \
                else f"file {where}" + (f" ({key['file']})" if key.get("file") and key["file"] != where else "")
            row = f", row {key['row']}" if key.get("row") is not None else ""
            return f"{self.store}: {source}{row}, column {at}"
        return f"{self.store}: file {where}, line {at}"


def held_for(seconds: float) -> str:
    """A remaining lifetime as people say it: '6 days 23 h', '59 min', '12 s'."""
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" if minutes else f"{secs} s"


@dataclass(frozen=True)
class Unswept:
    store: str
    where: str
    reason: str


@dataclass(frozen=True)
class Timing:
    store: str
    where: str | None  # None: the whole store
    seconds: float
    candidates: int = 0


@dataclass
class SweepResult:
    hits: list[Hit] = field(default_factory=list)
    unswept: list[Unswept] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    empty_globs: list[tuple[str, str]] = field(default_factory=list)  # (store, glob)
    # What was looked at, per store: {"cache": {"keys": 1200, "values": 1200}, "app": {"tables": 9}}.
    # A pass must rest on a positive count; each kind counts in its own units.
    examined: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, store: str, unit: str, n: int = 1) -> None:
        per = self.examined.setdefault(store, {})
        per[unit] = per.get(unit, 0) + n


def byte_lengths(values: list[str], encodings: Sequence[str] | None = None) -> list[int]:
    """Every size in bytes the values can have as text stored in ``encodings`` (None: any we
    know of — UTF-8, UTF-16 and one byte a character)."""
    sizes: set[int] = set()
    for enc in encodings or ("utf-8", "utf-16-le", "single-byte"):
        sizes |= {len(v) if enc == "single-byte" else len(v.encode(enc)) for v in values}
    return sorted(sizes)


class Plan:
    """What to look for, computed once per sweep."""

    def __init__(self, needles: list[Needle], forms: tuple[str, ...]):
        self.forms = forms
        self.matcher = Matcher(needles, forms)
        strong = [n for n in self.matcher.needles if not n.weak]
        anchored = [n for n in strong if MARKER in n.value.lower()]
        self.marker = bool(anchored) and bool({"exact", "casefold", "urlencoded"} & set(forms))
        self.case_insensitive = "casefold" in forms
        self.marker_cores = base64_cores(MARKER.encode("ascii")) if anchored and "base64" in forms else []
        # A value shorter than the shortest core of any needle cannot hold a base64 form.
        self.min_base64_length = min(
            (len(c) for n in anchored for c in base64_cores(n.value.encode("utf-8"))), default=0
        )
        # Rare: a strong value without a canary. Searched for on its own, at a cost per needle.
        self.unanchored: list[tuple[str, bool]] = []
        for n in strong:
            if MARKER in n.value.lower():
                continue
            if {"exact", "casefold"} & set(forms):
                self.unanchored.append((n.value, self.case_insensitive))
            if "base64" in forms:
                self.unanchored += [(core, False) for core in base64_cores(n.value.encode("utf-8"))]
        digests: set[str] = set()
        for n in strong:
            digests |= {d for d, kind in hash_digests(n.value).items() if kind in forms}
        # Whole-value comparison against both cases keeps the column bare (no lower() per row).
        self.digests = sorted(digests | {d.upper() for d in digests})
        self.weak_values = (
            sorted({n.value for n in self.matcher.needles if n.weak}) if "exact" in forms else []
        )
        # Hashes and weak values are both compared as whole values: one IN list per column.
        self.whole_values = self.digests + self.weak_values
        self.json_whole_values = self.whole_values + [
            json.dumps(v, ensure_ascii=False) for v in self.whole_values
        ]
        self.set_encodings(None)
        self.prefilter = self._file_prefilter()

    def set_encodings(self, encodings: Sequence[str] | None) -> None:
        """The byte lengths whole values can have in the store about to be swept."""
        self.whole_octet_lengths = byte_lengths(self.whole_values, encodings)
        self.json_whole_octet_lengths = byte_lengths(self.json_whole_values, encodings)

    def _file_prefilter(self) -> re.Pattern[bytes] | None:
        parts = []
        if self.marker:
            parts.append(b"(?i:" + re.escape(MARKER.encode()) + b")")
        parts += [re.escape(c.encode()) for c in self.marker_cores]
        if self.digests:
            parts.append(rb"[0-9A-Fa-f]{32}")
        parts += [
            (b"(?i:" + re.escape(v.encode()) + b")") if ci else re.escape(v.encode())
            for v, ci in self.unanchored
        ]
        parts += [re.escape(v.encode()) for v in self.weak_values]
        return re.compile(b"|".join(parts)) if parts else None


def matches(patterns: Sequence[str], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(n.lower(), p.lower()) for p in patterns for n in names)


def dedup(matches: list[Match]) -> list[Match]:
    """One hit per needle and form in a cell or line: the first occurrence."""
    seen: dict[tuple[Needle, str], Match] = {}
    for m in matches:
        seen.setdefault((m.needle, m.form), m)
    return list(seen.values())


def make_hit(store: str, kind: str, where: str, col: str | int, key, m: Match, text: str,
             expires_in: float | None = None) -> Hit:
    return Hit(
        store=store,
        location_kind=kind,
        table_or_path=where,
        column_or_line=col,
        row_key=key,
        subject_id=m.needle.subject_id,
        field=m.needle.field,
        form=m.form,
        weak=m.needle.weak,
        excerpt=excerpt(text, m.start, m.end),
        expires_in=expires_in,
    )


def hits_in(plan: Plan, text: str, store: str, kind: str, where: str, col: str | int, key=None,
            expires_in: float | None = None) -> list[Hit]:
    """Every needle and form the plan's Matcher finds in one candidate value, as hits."""
    return [make_hit(store, kind, where, col, key, m, text, expires_in) for m in dedup(plan.matcher.find(text))]


def as_text(value: Any) -> str | None:
    """A value a store returned, as the text the Matcher reads (bytes decoded leniently)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
