"""Data-lake files (Parquet, CSV, JSON Lines; plain or gzip), read by DuckDB with the predicates
pushed into its scan.

Per file one statement: every text-like column (VARCHAR, BLOB, JSON, and nested STRUCT/LIST/MAP
values as their text) is tested with the plan's fixed substrings (``contains``) and whole values
(digests, weak values) by a semi-join against a temporary table — a literal ``IN (...)`` list of
6,600 digests made one query 38x the floor in the issue's measurement; the join is a hash probe
per value, after a byte-length gate. Only candidate rows come back to Python, where the Matcher
decides which needle and form each holds. A finding names the file, the row (1 = the first
record, header excluded) and the column.

Typed columns (integers, decimals, floating point, DATE, TIMESTAMP in any precision or with a
time zone, TIME) are compared with the subjects' numbers, dates and instants in the column's
own type (``TypedPlan.compared``; never a cast of the column to text): a typed ``IN`` list of
constants while the family has few values, a semi-join against a temporary table of that type
when it has many (``_INLINE_MAX``; the issue measured a literal list of 6,600 values at 38x the
floor). Text columns meet the typed values' renderings as whole values with the digests; a
rendering inside a longer text is found in candidate rows, and a card's last four digits only in
a row that also holds the subject's canary. Typed values nested in a STRUCT, LIST or MAP are
read as that value's text, so only in a row that is a candidate for another reason. CSV files
are read as text (their types are guesses), JSON Lines with the types DuckDB detects (a date
string becomes a DATE).

Used by lake stores (``lake:`` globs of local files) and by S3 stores for objects whose names
end in .parquet, .csv, .tsv, .json, .jsonl or .ndjson (optionally .gz): see ``sweep_file``.
"""

from __future__ import annotations

import glob
import os
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb

from .base import (
    Hit,
    Plan,
    StoreSpec,
    SweepResult,
    Timing,
    Unswept,
    as_text,
    files_not_reached,
    hits_in,
    last_four_hits,
    matches,
    nothing_to_sweep,
    typed_hits,
)
from .sql import _gate_variants  # the rarest-letter choice, shared with the SQL predicates

_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
             ".ndjson": "json"}
# Types that cannot hold a canary's text (a list of them neither); some hold typed values (_FAMILY).
_NOT_TEXT = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT",
             "UHUGEINT", "DOUBLE", "FLOAT", "REAL", "BOOLEAN", "DATE", "TIME", "TIMESTAMP", "INTERVAL", "UUID",
             "DECIMAL")
# DuckDB type -> the family its values are compared in (observe/typed.py). "datetimetz" is an
# instant (TIMESTAMPTZ), compared as one whatever the session's time zone.
_FAMILY = {**dict.fromkeys(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                            "UINTEGER", "UBIGINT", "UHUGEINT"), "int"),
           "FLOAT": "float", "DOUBLE": "float", "DATE": "date", "TIME": "time",
           **dict.fromkeys(("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"), "datetime"),
           "TIMESTAMP WITH TIME ZONE": "datetimetz"}
# The type of each family's temporary table: wide enough for every value of the family.
_TABLE_TYPE = {"int": "BIGINT", "decimal": "DECIMAL(38,10)", "float": "DOUBLE", "date": "DATE",
               "datetime": "TIMESTAMP", "datetimetz": "TIMESTAMPTZ", "time": "TIME"}
# A family with more values than this is compared by a semi-join against its temporary table.
_INLINE_MAX = 64

# (row number, column) -> (location kind, where, column_or_line, row key) of a hit
Locate = Callable[[int, str], tuple[str, str, str | int, dict | None]]


def lake_format(name: str) -> str | None:
    """parquet | csv | json for a file name DuckDB reads as a table, else None."""
    base = name.lower()
    if base.endswith(".gz"):
        base = base[:-3]
    return next((fmt for suffix, fmt in _SUFFIXES.items() if base.endswith(suffix)), None)


def sweep_store(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    """Sweep every file the store's ``lake`` globs match into ``result``."""
    found = False
    patterns = store.lake or []
    with Lake(plan, timeout_s) as lake:
        for g, pattern in enumerate(patterns):
            paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
            if not paths:
                result.empty_globs.append((store.name, pattern))
                continue
            found = True
            for i, path in enumerate(paths):
                # between files (one DuckDB scan each): a file begun is read to its end
                if result.budget.exceeded():
                    files_not_reached(result, store.name, paths[i:], patterns[g + 1:])
                    return
                fmt = lake_format(path)
                if fmt is None:
                    result.unswept.append(Unswept(store.name, path, "not a Parquet, CSV or JSON Lines file"))
                    continue
                t0 = time.perf_counter()
                n = lake.sweep_file(store.name, path, fmt, result, exclude_columns=store.exclude_columns,
                                    locate=lambda row, col, p=path: ("row", p, col, {"row": row}))
                result.timings.append(Timing(store.name, path, time.perf_counter() - t0, n))
    if not found:
        nothing_to_sweep(result, store.name, ", ".join(store.lake or []), "no file matches the store's globs")


class Lake:
    """One DuckDB connection for a sweep: the plan's whole values loaded once as a temporary table."""

    def __init__(self, plan: Plan, timeout_s: float) -> None:
        self.plan = plan
        self.timeout_s = timeout_s
        self.con = duckdb.connect(":memory:")
        self.con.execute("CREATE TEMP TABLE pcq_whole (v VARCHAR)")
        if plan.whole_values:
            # One statement: DuckDB's executemany runs one per value (0.30 s for the 900 digests of
            # 50 subjects, against 5 ms for this).
            self.con.execute("INSERT INTO pcq_whole SELECT unnest($1::VARCHAR[])", [list(plan.whole_values)])
        # family -> the SQL its column is compared with: "(c1, c2, ...)" or "(SELECT v FROM pcq_t_<family>)"
        self.typed_sets: dict[str, str] = {}
        for fam, type_ in _TABLE_TYPE.items():
            values = _typed_values(plan, fam)
            if not values:
                continue
            if len(values) <= _INLINE_MAX:
                self.typed_sets[fam] = "(" + ", ".join(_constant(fam, v) for v in values) + ")"
            else:
                self.con.execute(f"CREATE TEMP TABLE pcq_t_{fam} (v {type_})")
                self.con.execute(f"INSERT INTO pcq_t_{fam} VALUES " + ", ".join(f"({_constant(fam, v)})" for v in values))
                self.typed_sets[fam] = f"(SELECT v FROM pcq_t_{fam})"

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *_: object) -> None:
        self.con.close()

    def sweep_file(self, store: str, path: str, fmt: str, result: SweepResult, *, locate: Locate,
                   exclude_columns: list[str] | None = None, display: str | None = None) -> int:
        """Sweep one file; hits and unswept go to ``result``. Returns the number of candidate rows."""
        display = display or path
        source, row_expr = _reader(path, fmt)
        try:
            # bounded like the scan: a JSON file's columns are inferred from every record (_reader)
            described = self._run(f"DESCRIBE SELECT * FROM {source}")
        except duckdb.Error as e:
            result.unswept.append(Unswept(store, display, f"unreadable as {fmt}: {self._reason(e)}"))
            return 0
        columns, typed = [], []
        for name, type_, *_ in described:
            if name in ("file_row_number", "ordinality"):
                continue
            # A column's name is data too: a CSV's first line, which DuckDB takes for the header
            # when every column is text (a headerless export's first record), or a JSON key. Found
            # there, a value is named as row 0.
            result.hits += hits_in(self.plan, name, store, *locate(0, name))
            if matches(exclude_columns or [], name):
                continue
            if not type_.upper().startswith(_NOT_TEXT):
                columns.append((name, type_))
            elif self.plan.typed and _read(self.plan, _family(type_)):
                # read back with a candidate row even when only weak values are of its family
                typed.append((name, _family(type_)))
        result.count(store, "files")
        result.count(store, "columns", len(columns))
        if self.plan.typed:
            result.count(store, "typed columns", len(typed))
        preds = [p for p in (self._predicate(_text(name, type_)) for name, type_ in columns) if p]
        preds += [f"{_quote(name)} IN {self.typed_sets[fam]}" for name, fam in typed if fam in self.typed_sets]
        if not preds:
            return 0
        selected = ", ".join([_text(name, type_) for name, type_ in columns] + [_quote(name) for name, _ in typed])
        where = " OR ".join(preds)
        query = f"SELECT {row_expr}, {selected} FROM {source} WHERE {where}"
        result.queries.append(f"{store}: SELECT {row_expr}, {selected} FROM {source} WHERE {self._shown(where)}")
        names = [name for name, _ in columns] + [name for name, _ in typed]
        hits: list[Hit] = []
        candidates = 0
        try:
            for row in self._run(query):
                candidates += 1
                number = int(row[0])
                row_hits: list[Hit] = []
                values = dict(zip(names, row[1:], strict=True))
                for name, _ in columns:
                    text = as_text(values[name])
                    if text:
                        kind, where, col, key = locate(number, name)
                        row_hits += hits_in(self.plan, text, store, kind, where, col, key)
                for name, _ in typed:
                    kind, where, col, key = locate(number, name)
                    row_hits += typed_hits(self.plan.typed, values[name], store, kind, where, col, key)
                if self.plan.typed:
                    row_hits += last_four_hits(self.plan.typed, store, values, row_hits,
                                               lambda c, n=number: locate(n, c))
                hits += row_hits
        except duckdb.Error as e:
            result.unswept.append(Unswept(store, display, f"unreadable as {fmt}: {self._reason(e)}"))
        result.hits += hits
        return candidates

    def _shown(self, where: str) -> str:
        """The WHERE clause with every value the plan put in it as ``?`` (the evidence shows how
        a file was searched, never what for)."""
        for fam, listed in self.typed_sets.items():
            if not listed.startswith("(SELECT"):
                where = where.replace(listed, f"(?, … {listed.count(', ') + 1} {fam} values)")
        where = where.replace("ESCAPE '\\'", "ESCAPE pcq_escape")
        return re.sub(r"'(?:[^']|'')*'", "?", where).replace("ESCAPE pcq_escape", "ESCAPE '\\'")

    def _reason(self, e: duckdb.Error) -> str:
        return f"timed out after {self.timeout_s:g}s" if "interrupt" in str(e).lower() else _first_line(e)

    def _run(self, query: str) -> list[tuple[Any, ...]]:
        # DuckDB has no statement timeout: interrupt the connection from a timer instead.
        timer = threading.Timer(self.timeout_s, self.con.interrupt)
        timer.start()
        try:
            return self.con.execute(query).fetchall()
        finally:
            timer.cancel()

    def _predicate(self, text: str) -> str | None:
        plan = self.plan
        preds = [_contains(text, pattern, ci) for pattern, ci in plan.patterns]
        if plan.whole_values:
            sizes = ", ".join(str(n) for n in plan.whole_octet_lengths)
            # A byte-length gate first: strlen() reads the string's header, the join probes a hash.
            preds.append(f"(strlen({text}) IN ({sizes}) AND {text} IN (SELECT v FROM pcq_whole))")
        return " OR ".join(preds) if preds else None


def _contains(text: str, pattern: str, ci: bool) -> str:
    """``text`` holds ``pattern`` (``ci``: in any case). Measured on the benchmark's 1M rows
    (Parquet, paired floor runs): contains() 1.04x the floor; ILIKE 1.87x, contains(lower()) 2.18x,
    and a one-character gate on the pattern's rarest letter in both cases before ILIKE 1.37x —
    ILIKE then runs only on the few values holding that letter. A gate is looser, never stricter."""
    if not ci:
        return f"contains({text}, {_lit(pattern)})"
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"{text} ILIKE {_lit('%' + escaped + '%')} ESCAPE '\\'"
    gate = _gate_variants(pattern, ci)
    if not gate:
        return like
    return "((" + " OR ".join(f"contains({text}, {_lit(ch)})" for ch in gate) + f") AND {like})"


def _reader(path: str, fmt: str) -> tuple[str, str]:
    """The table function reading ``path`` and the expression of a row's number (1 = first record)."""
    quoted = _lit(path)
    if fmt == "parquet":
        return f"read_parquet({quoted}, file_row_number = true)", "file_row_number + 1"
    if fmt == "csv":
        # every column as text: a CSV's types are guesses, and a guess of BIGINT would skip a column
        return f"read_csv({quoted}, all_varchar = true) WITH ORDINALITY", "ordinality"
    # sample_size = -1: the columns inferred from every record. By default DuckDB infers them from
    # the first 20,480 and silently drops a top-level key first seen later (duckdb/duckdb#25826),
    # which would sweep such a file clean whatever that key holds. The cost: one more parse of
    # the file (92 MB of JSON Lines, 1M records: 0.7 s -> 2.7 s a scan); Parquet and CSV none.
    return f"read_json({quoted}, format = 'auto', sample_size = -1) WITH ORDINALITY", "ordinality"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(name: str, type_: str) -> str:
    column = _quote(name)
    return column if type_.upper() == "VARCHAR" else f"CAST({column} AS VARCHAR)"


def _family(type_: str) -> str | None:
    upper = type_.upper()
    return "decimal" if upper.startswith("DECIMAL") else _FAMILY.get(upper)


def _read(plan: Plan, fam: str | None) -> bool:
    return fam is not None and ("datetime" if fam == "datetimetz" else fam) in plan.typed.read_families


def _typed_values(plan: Plan, fam: str) -> list[Any]:
    """The plan's values a column of ``fam`` is compared with (an instant's as aware UTC)."""
    if fam == "datetimetz":
        return [v.replace(tzinfo=UTC) for v in plan.typed.compared("datetime")]
    return plan.typed.compared(fam)


def _constant(fam: str, value: Any) -> str:
    """A typed value as a DuckDB constant of its family's type, exactly (a double through its
    shortest round-trip text, a decimal as written)."""
    if fam == "int":
        return str(int(value))
    if fam == "decimal":
        return str(value) if isinstance(value, int) else f"{value:f}"
    if fam == "float":
        return f"CAST('{value!r}' AS DOUBLE)"
    if fam == "datetimetz":
        return f"TIMESTAMPTZ '{value.isoformat(sep=' ')}'"
    return f"{_TABLE_TYPE[fam]} '{value.isoformat(sep=' ') if isinstance(value, datetime) else value.isoformat()}'"


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
