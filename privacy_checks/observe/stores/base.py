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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import cached_property
from typing import Any

from privacy_checks.observe.forms import (
    LEGACY_MARKER,
    LITERAL,
    MARKER,
    TOKEN_FIELD,
    Match,
    Matcher,
    Needle,
    base64_cores,
    byte_patterns,
    excerpt,
    hash_digests,
    texts_of_bytes,
    utf16_bytes,
)
from privacy_checks.observe.typed import LAST_FOUR, TypedPlan, split_typed, trie_pattern

from .progress import Budget


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
    # What row_key is: "primary key", "unique" (a unique constraint or index), "values" (every
    # non-text column; may not be unique), "physical" (rowid/ctid: moves when the row is
    # rewritten), "fts rowid" (a full-text index's document id), "none".
    row_key_kind: str = "primary key"

    def place(self) -> str:
        """Where the hit is, in the store's own terms: what a reader needs to find it again."""
        kind, where, at, key = self.location_kind, self.table_or_path, self.column_or_line, self.row_key or {}
        if kind == "table":
            return f"{self.store}: table {where}, column {at}" + (f", row {self.describe_row()}" if self.row_key else "")
        if kind == "key":
            return f"{self.store}: db {key.get('db')}, key {where} ({key.get('type')}), {at}, {self.held()}"
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

    def describe_row(self) -> str:
        """A table row's key as a reader would use it to find the row again, and what kind of
        key it is when that matters (not unique, or a physical address that moves)."""
        if not self.row_key:
            return ""
        pairs = ", ".join(f"{k}={v!r}" for k, v in self.row_key.items())
        return pairs + row_key_note(self.row_key_kind)

    def held(self) -> str:
        """How long the store itself keeps the value (a Redis key's TTL)."""
        return "no expiry" if self.expires_in is None else f"held for {held_for(self.expires_in)} more"


def row_key_note(kind: str) -> str:
    """What kind of key names a row, when that matters to someone looking for it (not unique,
    or a physical address that moves); nothing for a primary key."""
    return {
        "unique": " (unique key)",
        "values": " (its non-text values; the table has no unique key)",
        "physical": " (a physical row id: the table has no key, and the id moves when the row is rewritten)",
        "fts rowid": " (document id in the index)",
    }.get(kind, "")


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


def nothing_to_sweep(result: SweepResult, store: str, where: str, what: str) -> None:
    """A store whose sweep found nothing to read (no file, object, key or table): unswept, so an
    absence check over it is an error naming it, never a pass that rests on nothing read. Only a
    positive control guards a store otherwise, and a store with ``expect_subject: false`` has none."""
    result.unswept.append(Unswept(store, where, f"{what}: nothing was read, so nothing is proven absent here "
                                                "(a misspelt name or filter, or nothing written yet)"))


# What a sweep's time budget left unread is named one by one up to this many places; the rest of
# them are counted in one more entry (a bucket can leave a million objects unread).
NAMED_UNREACHED = 20


def not_reached(result: SweepResult, store: str, left: Sequence[str], unit: str) -> None:
    """The places (files, objects, tables) the sweep's time budget (``timeouts.sweep``) left
    unread, in the order they would have been read, as unswept with the budget's reason: an
    absence check over them is an error naming them, never a pass on what was not read."""
    reason = result.budget.reason()
    result.unswept += [Unswept(store, where, reason) for where in left[:NAMED_UNREACHED]]
    if len(left) > NAMED_UNREACHED:
        more = len(left) - NAMED_UNREACHED
        result.unswept.append(Unswept(store, f"{more} more {unit} after {left[NAMED_UNREACHED - 1]}, the last of "
                                             f"them {left[-1]}", reason))


def files_not_reached(result: SweepResult, store: str, files: Sequence[str], globs: Sequence[str]) -> None:
    """The files (file and lake stores) and the globs after them that the budget left unread;
    a glob not reached was never listed, so which files it matches is not known."""
    not_reached(result, store, list(dict.fromkeys(files)), "file(s)")
    not_reached(result, store, [f"every file matching {g} (not listed)" for g in globs], "glob(s)")


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
    # the time budget of this sweep and its progress display (progress.py)
    budget: Budget = field(default_factory=lambda: Budget(None))
    # The SQL statements the sweep ran ("store: SELECT …"), with the plan's values left as bind
    # placeholders: the evidence shows how each table was searched, never what for. An entry may
    # be a function giving the text: rendering a statement for the evidence costs as much as
    # compiling it, and most sweeps (polls, controls, barriers) never show theirs.
    queries: list[str | Callable[[], str]] = field(default_factory=list)

    def shown_queries(self) -> list[str]:
        return [q() if callable(q) else q for q in self.queries]

    def count(self, store: str, unit: str, n: int = 1) -> None:
        per = self.examined.setdefault(store, {})
        per[unit] = per.get(unit, 0) + n


def tested_in_process(plan: Plan) -> str:
    """What a kind that reads values into this process tests them for, without the values: the
    evidence says how a store was searched, never what for."""
    parts = [f"{len(plan.patterns)} substring(s) (the canary literal, and values that carry no canary)"] if plan.patterns else []
    if plan.digests:
        parts.append(f"{len(plan.digests)} digest(s) as whole values (a run of 32+ hex digits first)")
    if plan.weak_values:
        parts.append(f"{len(plan.weak_values)} weak value(s) as whole values")
    if plan.typed:
        parts.append(f"{len(plan.typed.text_values)} rendering(s) of {len(plan.typed.needles)} typed value(s)")
    return "; ".join(parts) or "nothing"


def byte_lengths(values: list[str], encodings: Sequence[str] | None = None) -> list[int]:
    """Every size in bytes the values can have as text stored in ``encodings`` (None: any we
    know of — UTF-8, UTF-16 and one byte a character)."""
    sizes: set[int] = set()
    for enc in encodings or ("utf-8", "utf-16-le", "single-byte"):
        sizes |= {len(v) if enc == "single-byte" else len(v.encode(enc)) for v in values}
    return sorted(sizes)


class Plan:
    """What to look for, computed once per sweep; every store kind builds its predicates from it.

    A value is a candidate (to be returned and given to ``matcher``) when it contains one of
    ``patterns`` or equals one of ``whole_values``. Candidate tests may be looser, never stricter.

    - ``patterns``: ``(substring, case_insensitive)`` pairs. For canaries of the current format
      this is ``(forms.LITERAL, True)`` alone, whatever the number of subjects: every in-text form
      (exact, casefold, urlencoded, base64 at any alignment, token) holds the literal in some
      letter case, and so does every substring of it (a kind may test a shorter piece and let
      the matcher decide). With ``forms`` limited to ``exact`` the literal is case-sensitive.
      Canaries of the previous format add ``forms.LEGACY_MARKER`` (any case) and its base64
      cores (exact case); a strong value without any canary adds itself and its base64 cores.
    - ``literal``: ``forms.LITERAL`` when it is among ``patterns``, else None.
    - ``whole_values``: hex digests (both cases) of strong values, then the typed values' texts
      that are proof (``TypedPlan.proof_text_values``), each to be compared with a whole stored
      value by kinds that return whole rows (SQL, lake, Spark); weak values are not among them
      (they are found beside proof in the rows returned); ``whole_octet_lengths`` their sizes in bytes in the
      store's encoding (``set_encodings``), so a kind can skip every value of another size.
      ``json_whole_values`` / ``json_whole_octet_lengths`` add each one's JSON string spelling.
    - ``digests``: the first part of ``whole_values``; ``weak_values`` the weak needles' values,
      for kinds that search whole texts themselves (files, objects, Redis values).
    - ``byte_patterns``: every pattern as the bytes a BLOB or file holds (UTF-8 and UTF-16, each
      letter case where case-insensitive); ``prefilter`` a regular expression over bytes true
      of every line or blob that can hold a needle (patterns, 32 hex digits, weak values).
    - ``matcher``: decides, on a candidate's text, exactly which needle and form it holds;
      ``find_in_bytes`` does the same for stored bytes (UTF-8, and UTF-16 where it occurs).
    """

    def __init__(self, needles: list[Needle], forms: tuple[str, ...]):
        self.forms = forms
        needles, typed = split_typed(needles)
        # Numbers, dates and instants: compared by value in typed columns, as whole texts in text
        # columns, and found in candidate texts by ``find`` (observe/typed.py).
        self.typed = TypedPlan(typed if "exact" in forms else [])
        self.matcher = Matcher(needles, forms)
        strong = [n for n in self.matcher.needles if not n.weak]
        in_text = {"exact", "casefold", "urlencoded", "token"} & set(forms)
        case_insensitive = bool(set(forms) - {"exact"})
        self.patterns: list[tuple[str, bool]] = []
        current = [n for n in strong if LITERAL in n.value.lower()]
        legacy = [n for n in strong if LITERAL not in n.value.lower() and LEGACY_MARKER in n.value.lower()]
        if current and (in_text or "base64" in forms):
            self.patterns.append((LITERAL, case_insensitive))
            # A short canary carries the literal but not the run of 4s that makes its base64
            # hold it: its base64 forms are searched for one by one.
            if "base64" in forms:
                self.patterns += [
                    (core, False)
                    for n in current
                    if MARKER not in n.value.lower()
                    for core in base64_cores(n.value.encode("utf-8"))
                ]
        if legacy:
            if in_text:
                self.patterns.append((LEGACY_MARKER, case_insensitive))
            if "base64" in forms:
                self.patterns += [(core, False) for core in base64_cores(LEGACY_MARKER.encode("ascii"))]
        for n in strong:
            if LITERAL in n.value.lower() or LEGACY_MARKER in n.value.lower():
                continue
            # Rare: a strong value without a canary. Searched for on its own, at a cost per needle.
            if {"exact", "casefold"} & set(forms):
                self.patterns.append((n.value, "casefold" in forms))
            if "base64" in forms:
                self.patterns += [(core, False) for core in base64_cores(n.value.encode("utf-8"))]
        self.patterns = list(dict.fromkeys(self.patterns))
        self.literal = LITERAL if any(p == LITERAL for p, _ in self.patterns) else None
        digests: set[str] = set()
        for n in strong:
            if n.field != TOKEN_FIELD:  # a canary alone is looked for in text, not hashed
                digests |= {d for d, kind in hash_digests(n.value).items() if kind in forms}
        # Whole-value comparison against both cases keeps the column bare (no lower() per row).
        self.digests = sorted(digests | {d.upper() for d in digests})
        self.weak_values = (
            sorted({n.value for n in self.matcher.needles if n.weak}) if "exact" in forms else []
        )
        # Hashes and typed values' texts are compared as whole values: one IN list per column.
        # Weak values are not: alone they prove nothing, and a row (document, record) that holds
        # proof comes back whole, where the matcher names the weak values beside it. Testing them
        # in the engine only found the uncorroborated ones, at the cost of one more test per
        # column (SQLite: "exact" 1.53x the floor with it, ~1.0x without; benchmarks/sweep.py).
        # as text, and as a JSON document's text (quoted): built once, not per column
        self.digest_spellings = frozenset(self.digests) | {json.dumps(d) for d in self.digests}
        self.whole_values = self.digests + self.typed.proof_text_values
        self.json_whole_values = self.whole_values + [
            json.dumps(v, ensure_ascii=False) for v in self.whole_values
        ]
        self.set_encodings(None)
        self.byte_patterns = list(
            dict.fromkeys(b for p, ci in self.patterns for b in byte_patterns(p, ci))
        )

    def set_encodings(self, encodings: Sequence[str] | None) -> None:
        """The byte lengths whole values can have in the store about to be swept (``encodings``:
        the store's text encodings, None when it does not say: every one we know of)."""
        self.encodings = encodings
        self.whole_octet_lengths = byte_lengths(self.whole_values, encodings)
        self.json_whole_octet_lengths = byte_lengths(self.json_whole_values, encodings)

    @cached_property
    def prefilter(self) -> re.Pattern[bytes] | None:
        """Built when a kind that reads bytes first asks (SQL never does): with typed values it is
        an expression over thousands of renderings, which takes a while to compile."""
        return self._byte_gate([*self.weak_values, *self.typed.text_values])

    @cached_property
    def proof_prefilter(self) -> re.Pattern[bytes] | None:
        """``prefilter`` without the weak values: true of every text that can hold proof. The
        definition of what Redis's page gate (redis.py, ``_PageGate``, built from faster
        primitives) must select; tests/test_redis_store.py compares the two."""
        return self._byte_gate(self.typed.proof_text_values)

    def _byte_gate(self, words: list[str]) -> re.Pattern[bytes] | None:
        """Patterns (UTF-8 and UTF-16), a 32-digit hex run when there are digests, and ``words``.
        No alternative can match a newline, so one search over values joined by newlines finds
        exactly the values a search of each would (redis.py relies on it)."""
        parts = []
        for pattern, ci in self.patterns:
            for raw in (pattern.encode("utf-8"), utf16_bytes(pattern)):
                parts.append((b"(?i:" + re.escape(raw) + b")") if ci else re.escape(raw))
        if self.digests:
            parts.append(rb"[0-9A-Fa-f]{32}")
        # whole values and typed renderings as one prefix tree: a flat alternation of 2,600
        # renderings took 2.7 s to compile and is tried entry by entry at every byte
        if words:
            parts.append(trie_pattern(words).encode())
        return re.compile(b"|".join(parts)) if parts else None

    def find_in_bytes(self, data: bytes) -> list[tuple[str, Match]]:
        """(text, match) for every needle and form in stored bytes, read as UTF-8 and, where a
        canary occurs in UTF-16, as UTF-16 too; one match per needle and form."""
        seen: set[tuple[Needle, str]] = set()
        out: list[tuple[str, Match]] = []
        for text in texts_of_bytes(data):
            for m in dedup(self.find(text)):
                if (m.needle, m.form) not in seen:
                    seen.add((m.needle, m.form))
                    out.append((text, m))
        return out

    def find(self, text: str) -> list[Match]:
        """Every needle and form in one candidate text: canary-bearing and weak values (the
        Matcher), and typed values' renderings."""
        found = self.matcher.find(text)
        return found + self.typed.find(text) if self.typed else found


def matches(patterns: Sequence[str], *names: str) -> bool:
    return any(fnmatch.fnmatchcase(n.lower(), p.lower()) for p in patterns for n in names)


def dedup(matches: list[Match]) -> list[Match]:
    """One hit per needle and form in a cell or line: the first occurrence."""
    seen: dict[tuple[Needle, str], Match] = {}
    for m in matches:
        seen.setdefault((m.needle, m.form), m)
    return list(seen.values())


def make_hit(store: str, kind: str, where: str, col: str | int, key, m: Match, text: str,
             expires_in: float | None = None, *, key_kind: str | None = None) -> Hit:
    return Hit(
        store=store,
        location_kind=kind,
        table_or_path=where,
        column_or_line=col,
        row_key=key,
        subject_id=m.needle.subject_id,
        field=m.needle.field,
        form=m.form,
        weak=getattr(m, "weak", m.needle.weak),  # a typed form says what it proves (observe/typed.py)
        excerpt=excerpt(text, m.start, m.end),
        expires_in=expires_in,
        row_key_kind=(key_kind or ("primary key" if kind == "table" else kind)) if key else "none",
    )


def hits_in(plan: Plan, text: str, store: str, kind: str, where: str, col: str | int, key=None,
            expires_in: float | None = None) -> list[Hit]:
    """Every needle and form the plan's Matcher finds in one candidate value, as hits."""
    return [make_hit(store, kind, where, col, key, m, text, expires_in) for m in dedup(plan.find(text))]


def shown(value: Any) -> str:
    """A typed value as a finding's excerpt shows it."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def typed_hits(typed: TypedPlan, value: Any, store: str, kind: str, where: str, col: str | int, key=None,
               key_kind: str | None = None) -> list[Hit]:
    """What one value of a typed column (a number, a date, an instant) is: a hit per needle and
    form it equals (``TypedPlan.meanings``), each saying what it proves."""
    text = shown(value)
    return [Hit(store=store, location_kind=kind, table_or_path=where, column_or_line=col, row_key=key,
                subject_id=m.needle.subject_id, field=m.needle.field, form=m.form, weak=m.weak,
                excerpt=excerpt(text, 0, len(text)),
                row_key_kind=(key_kind or ("primary key" if kind == "table" else kind)) if key else "none")
            for m in typed.meanings(value)]


# column -> (location kind, where, column_or_line, row key) of a hit in that column of one row
Place = Callable[[str], tuple[str, str, str | int, dict | None]]


def last_four_hits(typed: TypedPlan, store: str, row: dict[str, Any], found: Sequence[Hit], place: Place,
                   key_kind: str | None = None) -> list[Hit]:
    """A card's last four digits among a row's values, reported only in a row that also holds
    the same subject's canary (a strong hit in ``found``): four digits alone are anybody's."""
    if not typed.cards:
        return []
    out = []
    proven = {h.subject_id for h in found if not h.weak}
    for subject_id in proven & set(typed.cards):
        for column, value in row.items():
            needle = typed.last_four(subject_id, value)
            if needle is not None:
                kind, where, col, key = place(column)
                text = shown(value)
                out.append(Hit(store=store, location_kind=kind, table_or_path=where, column_or_line=col,
                               row_key=key, subject_id=subject_id, field=needle.field, form=LAST_FOUR, weak=True,
                               excerpt=excerpt(text, 0, len(text)),
                               row_key_kind=(key_kind or ("primary key" if kind == "table" else kind)) if key
                               else "none"))
    return out


def as_text(value: Any) -> str | None:
    """A value a store returned, as the text the Matcher reads (bytes decoded leniently; for
    bytes that may hold UTF-16, use ``Plan.find_in_bytes``)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def holder(hit: Hit) -> tuple:
    """The place a hit is in, as a place that can hold a subject: a table's row, a file, a key,
    an object (version)."""
    if hit.location_kind == "table":
        return (hit.store, hit.table_or_path, tuple(sorted((hit.row_key or {}).items(), key=str)))
    if hit.location_kind in ("key", "object", "row"):
        return (hit.store, hit.location_kind, hit.table_or_path, tuple(sorted((hit.row_key or {}).items(), key=str)))
    return (hit.store, hit.table_or_path)


def corroborated(hits: Sequence[Hit]) -> list[Hit]:
    """Weak hits in a place that a strong hit of the same subject already proves holds it (the
    same row, file, key or object). A weak value alone proves nothing; beside a canary it is one
    more of the subject's values kept there, and must be named with it."""
    proven = {(h.subject_id, holder(h)) for h in hits if not h.weak}
    return [h for h in hits if h.weak and (h.subject_id, holder(h)) in proven]
