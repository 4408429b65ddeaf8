"""Findings grouped by place: where a promise broke, in one shape for every report.

A finding is one match: a sweep hit (a store's table, column and row, or file and line) or a
delivery to a recipient (method and path). Fourteen matches in one JSON column are one place
to fix, so a place lists which fields and forms were found there, its first row keys and how
many matches it holds. The terminal, JUnit, Allure and the compliance report show the same
places with the same limits (``MAX_PLACES`` places, ``MAX_ROWS`` row keys each); the evidence
file keeps every match.

A place's ``id`` is stable across runs: no row key, line number, time or temporary directory
in it (a file is named relative to its store's glob), so a later run can tell a new place from
a known one (report/changes.py).

places.py groups hits more coarsely (a table, a key prefix) to judge whether an export holds
each place's data; a finding's place is as fine as what an engineer fixes (a column, a file).
"""

from __future__ import annotations

import glob as _glob
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from .observe.forms import LINKED_ROW, MARKER
from .observe.stores.base import row_key_note

MAX_PLACES = 8
# The kinds of place an id starts with ("table:app/users/email"); waivers name places by them.
KINDS = ("table", "file", "key", "object", "lake", "recipient", "residue")
_VIA = re.compile(r"\((foreign key to [^)]+|identifiers: [^)]+)\)")
WEAK = "weak: the subject's value beside its canary, no proof alone"
MAX_ROWS = 3
_DIGITS = re.compile(r"\d+")
# a session id, a digest, a UUID's parts: hex runs that differ for every subject
_HEX = re.compile(r"(?<![0-9a-z])(?:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{8,})(?![0-9a-z])",
                  re.IGNORECASE)
_CANARY = re.compile(MARKER + r"[0-9a-z]+", re.IGNORECASE)


@dataclass
class Place:
    id: str
    words: str
    count: int = 0
    fields: dict[str, list[str]] = field(default_factory=dict)  # field -> forms found
    rows: list[str] = field(default_factory=list)               # the first MAX_ROWS row keys or lines
    note: str = ""  # what kind of key names the rows, when it is not a primary key

    @property
    def kind(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def forms(self) -> list[str]:
        return list(dict.fromkeys(f for forms in self.fields.values() for f in forms))

    def line(self) -> str:
        """'app: table users, column email, rows id=4, id=5 …: field email (exact, casefold) (3 matches)'."""
        rows = ""
        if self.rows:
            noun = {"table": "row", "file": "line", "lake": "row"}.get(self.kind, "at")
            plural = noun + "s" if len(self.rows) > 1 and noun != "at" else noun
            shown = [r.removeprefix("line ").removeprefix("row ") for r in self.rows]
            rows = f", {plural} {', '.join(shown)}" + (" …" if self.count > len(self.rows) else "")
        what = ", ".join(f"{name} ({', '.join(forms)})" if forms else name for name, forms in self.fields.items())
        noun = "field" if len(self.fields) == 1 else "fields"
        count = f" ({self.count} matches)" if self.count > 1 else ""
        return f"{self.words}{rows}{self.note if self.rows else ''}: {noun} {what}{count}"

    def to_dict(self) -> dict:
        return {**asdict(self), "forms": self.forms, "line": self.line()}


def _add(groups: dict[str, Place], pid: str, words: str, fld: str, form: str, row: str | None) -> None:
    place = groups.setdefault(pid, Place(pid, words))
    place.count += 1
    forms = place.fields.setdefault(fld or "?", [])
    if form and form not in forms:
        forms.append(form)
    if row and row not in place.rows and len(place.rows) < MAX_ROWS:
        place.rows.append(row)


def file_roots(stores: Iterable[dict]) -> dict[str, list[str]]:
    """Per file store, the fixed directories its globs start from (what a file is named relative to)."""
    roots: dict[str, list[str]] = {}
    for store in stores:
        for pattern in store.get("files") or []:
            parts = str(pattern).split(os.sep)
            fixed = []
            for part in parts[:-1]:
                if _glob.has_magic(part):
                    break
                fixed.append(part)
            roots.setdefault(store["name"], []).append(os.sep.join(fixed))
    return roots


def _relative(store: str, path: str, roots: dict[str, list[str]]) -> str:
    for root in sorted(roots.get(store, []), key=len, reverse=True):
        if root and path.startswith(root.rstrip(os.sep) + os.sep):
            return path[len(root.rstrip(os.sep)) + 1:]
    return os.path.basename(path)


def _row(key) -> str | None:
    if not key:
        return None
    if isinstance(key, dict):
        return "/".join(f"{k}={v}" for k, v in key.items())
    return str(key)


def stable(name: str) -> str:
    """A key or object name without what changes from subject to subject (numbers, canaries),
    so the same kind of key is the same place in every run."""
    return _DIGITS.sub("#", _HEX.sub("#", _CANARY.sub("<canary>", name)))


def locate(hit, roots: dict[str, list[str]] | None = None) -> tuple[str, str, str | None]:
    """(id, words, row) of one sweep hit (observe/stores Hit), by the kind of place it is in:
    a table and column, a file, a Redis key, an object, or a column of a lake file."""
    store, where, at, key = hit.store, str(hit.table_or_path), hit.column_or_line, hit.row_key or {}
    kind = hit.location_kind
    if kind == "table":
        return f"table:{store}/{where}/{at}", f"{store}: table {where}, column {at}", _row(hit.row_key)
    if kind == "key":
        # how long the cache keeps it is part of the finding: a key without expiry is kept for ever
        return (f"key:{store}/db{key.get('db')}/{stable(where)}", f"{store}: db {key.get('db')}, key {where} "
                f"({key.get('type')}), {hit.held()}", str(at) if at not in (None, "") else None)
    if kind == "object":
        state = "latest" if key.get("latest") else "noncurrent"  # an old version is easy to overlook
        return (f"object:{store}/{stable(where)}", f"{store}: object {where}",
                f"version {key['version_id']} ({state})" if key.get("version_id") else None)
    relative = _relative(store, where, roots or {})
    if kind == "row":
        return (f"lake:{store}/{stable(relative)}/{at}", f"{store}: file {where}, column {at}",
                f"row {key.get('row')}")
    return f"file:{store}/{stable(relative)}", f"{store}: file {where}", f"line {at}"


def from_hits(hits: Iterable, roots: dict[str, list[str]] | None = None) -> list[Place]:
    """Sweep hits grouped by place."""
    groups: dict[str, Place] = {}
    for h in hits:
        pid, words, row = locate(h, roots)
        # a weak value (a phone number beside the subject's canary) is named, never as proof
        form = h.form + (f", {WEAK}" if getattr(h, "weak", False) else "")
        if h.form == LINKED_ROW:
            # why the row is the subject's: the foreign key or the declared identifier
            via = _VIA.search(h.excerpt or "")
            form += f": {via.group(1)}" if via else ""
        _add(groups, pid, words, h.field, form, row)
        if h.location_kind == "table" and h.row_key:
            groups[pid].note = row_key_note(getattr(h, "row_key_kind", "primary key"))
    # The subject's own values first, then places holding only weak values, then rows that are
    # only linked to the subject by an id: the message shows the first MAX_PLACES, and the value
    # itself is what a reader most needs to see (sorted() keeps the sweep's order otherwise).
    return sorted(groups.values(), key=_weight)


def _weight(place: Place) -> int:
    forms = place.forms
    if forms and all(f.startswith(LINKED_ROW) for f in forms):
        return 2
    if forms and all(WEAK in f for f in forms):
        return 1
    return 0


def from_findings(findings: Iterable[dict]) -> list[Place]:
    """Evidence findings (dicts) grouped by their `place` (or, for a finding recorded without
    one, by what it names), for reports built from evidence files."""
    groups: dict[str, Place] = {}
    for f in findings:
        words = f.get("where") or " / ".join(str(f[k]) for k in ("store", "recipient", "location", "column")
                                             if f.get(k) not in (None, ""))
        if f.get("kind") and not f.get("place"):
            words = f"{f['kind']}: {words}"
        row = f.get("row")
        _add(groups, str(f.get("place") or words), words or "?", str(f.get("field") or ""), str(f.get("form") or ""),
             _row(row) if isinstance(row, dict) else (str(row) if row not in (None, "") else None))
    return sorted(groups.values(), key=_weight)  # the same order as from_hits


def from_residue(residues: Iterable) -> list[Place]:
    """Storage residue (observe/stores/sqlite_residue.py) grouped by file: the database, its
    -wal or its -journal, each named by its store and file name (stable across runs)."""
    groups: dict[str, Place] = {}
    for r in residues:
        name = os.path.basename(r.path)
        _add(groups, f"residue:{r.store}/{name}", f"{r.store}: file {r.path} ({r.part}, residue in storage until "
             "overwritten or vacuumed)", r.field, r.form, f"byte {r.offset} in {r.where}")
    return list(groups.values())


def from_deliveries(deliveries: Iterable) -> list[Place]:
    """Deliveries (flows/sharing Delivery) grouped by recipient, method and path (no query)."""
    groups: dict[str, Place] = {}
    for d in deliveries:
        path = str(d.path).split("?", 1)[0]
        _add(groups, f"recipient:{d.sink}/{d.method} {path}", f"{d.sink} ({d.role}) {d.method} {path}",
             d.field, d.form, str(d.received_at) if getattr(d, "received_at", None) else None)
    return list(groups.values())


def listing(places: list[Place], limit: int = MAX_PLACES) -> str:
    """The places, one indented line each, at most `limit`; the evidence holds the rest."""
    shown = places[:limit]
    more = (f"\n  … and {len(places) - len(shown)} more place(s) (see the evidence)"
            if len(places) > len(shown) else "")
    return "\n  " + "\n  ".join(p.line() for p in shown) + more


def summary(places: list[Place]) -> str:
    """'3 place(s), 14 matches'."""
    total = sum(p.count for p in places)
    return f"{len(places)} place(s), {total} match{'es' if total != 1 else ''}"
