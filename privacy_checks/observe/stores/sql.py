"""SQL stores (every SQLAlchemy dialect; tuned for SQLite and PostgreSQL): swept inside the engine.

Per table one statement whose predicates are a few fixed substrings per column (the canary
marker, its base64 renderings) plus IN-lists of hash digests and weak values, so its cost tracks
the engine's scan speed whatever the number of subjects. Only the candidate rows (primary key and
text columns) come back, and ``forms.Matcher`` decides exactly which needle and form each holds.

Each predicate is preceded by a cheaper one that every matching value passes (a pattern's rarest
character; a whole value's byte length; a JSON document being a scalar), so the exact test runs
on few values. A candidate predicate may be looser than asked, never stricter: the gates only
decide how much work a value costs, never whether a value holding a needle is returned.
benchmarks/sweep.py measures each choice against the floor (one read of every text column).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.engine.reflection import Inspector

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import MARKER

from .base import Hit, Plan, StoreSpec, SweepResult, Timing, Unswept, dedup, make_hit
from .base import matches as _matches

_SYSTEM_SCHEMAS = {"information_schema", "mysql", "performance_schema", "sys"}
# Types that cannot hold a canary: not swept and not reported.
_NOT_TEXT = (sa.Integer, sa.Numeric, sa.Boolean, sa.Date, sa.DateTime, sa.Time, sa.Interval, sa.Uuid)


def sweep_store(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    """Sweep every table of one SQL store into ``result``."""
    _sweep_sql(store, plan, timeout_s, result)


def _store_encodings(conn: Connection) -> tuple[str, ...] | None:
    """How the store encodes text, where it says so; None (assume any) otherwise.

    The byte-length guard must know it: a SQLite database may be UTF-16 (a BLOB cast keeps
    that encoding), a PostgreSQL database LATIN1. Allowing every encoding's lengths is safe but
    lets more values through to the membership test (measured: SQLite exact forms 1.2x -> 1.4x).
    """
    try:
        if conn.dialect.name == "sqlite":
            name = str(conn.exec_driver_sql("PRAGMA encoding").scalar() or "").upper()
            return ("utf-8",) if name == "UTF-8" else ("utf-16-le",) if name.startswith("UTF-16") else None
        if conn.dialect.name == "postgresql":
            name = str(conn.exec_driver_sql("SHOW server_encoding").scalar() or "").upper()
            return ("utf-8",) if name == "UTF8" else None
    except sa.exc.DBAPIError:
        conn.rollback()
    return None


def _redacted(url: sa.URL | str) -> str:
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def _scrub(message: str, url: sa.URL | None) -> str:
    message = message.strip().splitlines()[0] if message.strip() else message
    if url is not None and url.password:
        message = message.replace(str(url.password), "***")
    return message


def _engine(store: StoreSpec, timeout_s: float) -> tuple[Engine, sa.URL]:
    try:
        url = sa.make_url(store.url)
    except Exception as e:  # noqa: BLE001 - any parse failure is the user's URL
        raise StoreError(f"store {store.name!r}: invalid URL {_redacted(store.url or '')}: {e}") from None
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(store, url, timeout_s), url
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql" and url.get_driver_name() in ("psycopg", "psycopg2"):
            connect_args["connect_timeout"] = max(1, int(timeout_s))
            # Reflection runs before the per-table SET TRANSACTION READ ONLY: make the session so too.
            connect_args["options"] = "-c default_transaction_read_only=on"
        return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool), url
    except Exception as e:  # noqa: BLE001 - unknown dialect, missing driver
        raise StoreError(
            f"store {store.name!r}: cannot use {_redacted(url)}: {type(e).__name__}: {_scrub(str(e), url)}"
        ) from None


def _sqlite_engine(store: StoreSpec, url: sa.URL, timeout_s: float = 60) -> Engine:
    import sqlite3

    database = url.database or ""
    if database in ("", ":memory:"):
        raise StoreError(f"store {store.name!r}: {_redacted(url)} names no database file")
    if database.startswith("file:"):
        target = database + ("&" if "?" in database else "?") + "mode=ro"
    else:
        target = "file:" + os.path.abspath(database) + "?mode=ro"

    def connect() -> sqlite3.Connection:
        # mode=ro: a misspelt path fails instead of creating an empty database that sweeps clean.
        # A writer's lock is waited for briefly: sweeps run inside polling loops (positive
        # control, barrier), and a long wait per sweep would multiply past the profile's budget.
        return sqlite3.connect(target, uri=True, check_same_thread=False, timeout=min(timeout_s, 2.0))

    return sa.create_engine("sqlite://", creator=connect, poolclass=sa.pool.NullPool)


@contextmanager
def _statement_timeout(conn: Connection, seconds: float) -> Iterator[None]:
    """Bound one statement: the server's statement_timeout, or SQLite's progress handler."""
    name = conn.dialect.name
    if name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
        yield
    elif name == "sqlite":
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + seconds
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 100_000)
        try:
            yield
        finally:
            raw.set_progress_handler(None, 0)
    else:
        yield


@dataclass
class _Column:
    name: str
    kind: str  # text | cast | binary
    type_: sa.types.TypeEngine
    column: sa.ColumnClause = field(init=False)  # bound per statement, in _query_table


def _classify(dialect: Dialect, type_: sa.types.TypeEngine) -> str | None:
    """ "text"/"cast"/"binary"; None for types that cannot hold a canary; "unsupported" otherwise."""
    if isinstance(type_, sa.JSON) or isinstance(type_, sa.Enum):
        return "cast"
    if isinstance(type_, sa.String):
        return "text"
    if isinstance(type_, sa.LargeBinary | sa.BINARY | sa.VARBINARY):
        return "binary"
    if isinstance(type_, _NOT_TEXT):
        return None
    if dialect.name == "postgresql":
        # Everything has a text output function there: arrays, tsvector, xml, hstore, inet…
        return "cast"
    if dialect.name == "sqlite" and isinstance(type_, sa.types.NullType):
        # No declared type: BLOB affinity, holds anything.
        return "cast"
    return "unsupported"


def text_expression(dialect: Dialect, column: sa.ColumnElement, kind: str | None = None) -> sa.ColumnElement:
    """The column as text, as the sweep reads it (also used by the benchmark's floor)."""
    kind = kind or _classify(dialect, column.type) or "cast"
    if kind == "text":
        return column
    if kind == "binary":
        if dialect.name == "postgresql":
            # 'escape' keeps printable ASCII as is and never fails on invalid UTF-8.
            return sa.func.encode(column, "escape")
        return sa.cast(column, sa.Text)
    if dialect.name == "sqlite":
        # Values are stored as text already (JSON included); a CAST per predicate measured
        # as a visible share of the scan. type_coerce only tells SQLAlchemy to return a str.
        return sa.type_coerce(column, sa.Text)
    return sa.cast(column, sa.Text)


def _inline(pattern: str) -> sa.BindParameter:
    # Rendered into the SQL: SQLite measured ~20% slower on GLOB with a bound pattern.
    return sa.bindparam(None, pattern, type_=sa.String, literal_execute=True)


# Share of each lower-case letter in English text (per cent). A LIKE/GLOB scan for '%xy%' jumps
# from one occurrence of the pattern's first character to the next (SQLite with strcspn), so a
# pattern that starts with a rare character costs a fraction of one starting with 'e' or 'c'.
_LETTER_SHARE = {
    pair[0]: float(pair[1:])
    for pair in (
        "e12.7 t9.1 a8.2 o7.5 i7.0 n6.7 s6.3 h6.1 r6.0 d4.3 l4.0 c2.8 u2.8 m2.4 w2.4 f2.2 g2.0 y2.0 "
        "p1.9 b1.5 v1.0 k0.8 j0.15 x0.15 q0.1 z0.07"
    ).split()
}


def _share(ch: str, ci: bool) -> float:
    """How often ``ch`` (in any case when ``ci``) is expected in ordinary stored text."""
    if ch.isalpha() and ch.isascii():
        lower = _LETTER_SHARE[ch.lower()]
        # Capitals (sentence starts, names) are a few per cent of the letters of prose.
        upper = lower / 30
        return lower + upper if ci else (upper if ch.isupper() else lower)
    if ch.isdigit():
        return 0.5
    return 1.0 if ch in " .,-/:_@" else 0.2


def _anchor(pattern: str, ci: bool) -> str:
    """The suffix of ``pattern`` (two characters at least) that starts at its rarest character.

    ``text LIKE '%anchor%' AND text LIKE '%pattern%'`` selects the same rows as the full pattern
    alone; the second test only runs on the few values holding the anchor. Measured with
    benchmarks/sweep.py on SQLite: '*GNxe*' scans a text column in ~55% of the time of '*cGNxe*'.
    """
    if len(pattern) <= 2:
        return pattern
    start = min(range(len(pattern) - 1), key=lambda i: (_share(pattern[i], ci), i))
    return pattern[start:]


# Letters that a non-ASCII character lower-cases to (Turkish dotted I, Kelvin sign, long s...):
# a case-insensitive match may hold them with neither ASCII case present.
_UNSAFE_CI = set("iks")


def _gate_char(pattern: str, ci: bool) -> str | None:
    """The pattern's rarest ASCII letter or digit (None if it has none)."""
    candidates = [ch for ch in pattern if ch.isascii() and ch.isalnum() and not (ci and ch.lower() in _UNSAFE_CI)]
    return min(candidates, key=lambda ch: _share(ch, ci)) if candidates else None


def _gate_variants(pattern: str, ci: bool) -> list[str]:
    ch = _gate_char(pattern, ci)
    if ch is None:
        return []
    return sorted({ch.lower(), ch.upper()}) if ci else [ch]


def _contains(
    dialect: Dialect, col: _Column, text: sa.ColumnElement, pattern: str, ci: bool
) -> sa.ColumnElement:
    """``text`` contains ``pattern`` (``ci``: in any letter case). Choices measured with
    benchmarks/sweep.py; a candidate predicate may be looser than asked, never stricter.

    Each engine first runs a cheap test that every value holding the pattern passes, and the
    full pattern only on the values that pass it (AND is evaluated left to right by both)."""
    full = _contains_one(dialect, col, text, pattern, ci)
    if dialect.name == "postgresql":
        gate = _gate_variants(pattern, ci)
        if not gate or col.kind != "text":
            # A converted value would be converted again per test: _predicate gates the whole
            # column with one regular expression instead.
            return full
        # strpos() of one character is a memchr(); LIKE and ILIKE walk the text byte by byte,
        # and ILIKE lower-cases all of it first. Measured on a 300,000-row text column: the
        # marker's ILIKE 0.15 s, 'z' or 'Z' by strpos 0.035 s.
        return sa.and_(sa.or_(*[sa.func.strpos(text, _inline(v)) > 0 for v in gate]), full)
    if dialect.name == "sqlite" and col.kind != "binary":
        # SQLite's LIKE and GLOB jump between occurrences of the first character (strcspn).
        anchor = _anchor(pattern, ci)
        if anchor != pattern:
            return sa.and_(_contains_one(dialect, col, text, anchor, ci), full)
    return full


def _contains_one(
    dialect: Dialect, col: _Column, text: sa.ColumnElement, pattern: str, ci: bool
) -> sa.ColumnElement:
    like = _inline("%" + pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if dialect.name == "sqlite":
        if col.kind == "binary":
            # LIKE and GLOB stop at the first NUL byte of a blob; instr() compares bytes.
            variants = dict.fromkeys([pattern, pattern.lower(), pattern.upper()] if ci else [pattern])
            checks = [sa.func.instr(col.column, sa.cast(sa.literal(v), sa.LargeBinary)) > 0 for v in variants]
            return sa.or_(text.like(like, escape="\\"), *checks) if ci else sa.or_(*checks)
        if ci:
            # LIKE is ASCII case-insensitive in SQLite already.
            return text.like(like, escape="\\")
        return text.op("GLOB")(_inline("*" + re.sub(r"([*?\[])", r"[\1]", pattern) + "*"))
    if ci:
        if dialect.name == "postgresql":
            # One ILIKE measured cheaper than LIKE on each of pcqz/PCQZ/Pcqz, and than lower() LIKE.
            return text.ilike(like, escape="\\")
        return sa.func.lower(text).like(sa.func.lower(like), escape="\\")
    return text.like(like, escape="\\")


def _octet_length(dialect: Dialect, text: sa.ColumnElement) -> sa.ColumnElement:
    """The value's size in bytes, without reading it where the engine allows."""
    if dialect.name == "sqlite":
        # length() counts characters, a pass over the text; a BLOB's length is its byte count,
        # and CAST(text AS BLOB) only relabels the value. Measured ~30% cheaper per column.
        return sa.func.length(sa.cast(text, sa.LargeBinary))
    # O(1) on PostgreSQL (the varlena header); elsewhere at worst one pass.
    return sa.func.octet_length(text)


def _whole_value_in(dialect: Dialect, col: _Column, text: sa.ColumnElement, plan: Plan) -> sa.ColumnElement:
    values, octets, name = plan.whole_values, plan.whole_octet_lengths, "pcq_whole"
    guard: sa.ColumnElement | None = None
    if isinstance(col.type_, sa.JSON):
        # A whole JSON document equal to a digest or weak value is a scalar, and a string
        # scalar's text carries its quotes: compare both spellings.
        values, octets, name = plan.json_whole_values, plan.json_whole_octet_lengths, "pcq_json"
        if dialect.name == "postgresql":
            # Objects and arrays cannot be equal to a scalar: skip converting them to text
            # (measured: 0.05 s instead of 0.16 s on 400,000 JSONB objects).
            typeof = sa.func.jsonb_typeof if isinstance(col.type_, postgresql.JSONB) else sa.func.json_typeof
            guard = typeof(col.column).notin_(["object", "array"])
    if len(values) == 1:
        # One value (a single weak field, exact forms): a plain comparison costs next to nothing.
        test = text == _inline(values[0])
    else:
        # Inline literals: a placeholder per value and per column would hit the drivers'
        # parameter limits with many subjects and wide tables. Testing the byte length first
        # skips the membership test (a b-tree probe in SQLite, a hash of the whole value in
        # PostgreSQL from nine values on) for every value not of a digest's or weak value's size.
        listed = sa.bindparam(name, values, expanding=True, literal_execute=True, type_=sa.Text)
        sizes = sa.bindparam(f"{name}_octets", octets, expanding=True, literal_execute=True)
        test = sa.and_(_octet_length(dialect, text).in_(sizes), text.in_(listed))
    return test if guard is None else sa.and_(guard, test)


def _predicate(dialect: Dialect, col: _Column, plan: Plan) -> sa.ColumnElement | None:
    text = text_expression(dialect, col.column, col.kind)
    preds: list[sa.ColumnElement] = []
    if plan.marker:
        preds.append(_contains(dialect, col, text, MARKER, plan.case_insensitive))
    b64 = [_contains(dialect, col, text, core, False) for core in plan.marker_cores]
    if b64 and (dialect.name == "postgresql" or (dialect.name == "sqlite" and col.kind != "binary")):
        # A byte length is cheap to read: short values (names, codes, statuses) skip three scans.
        b64 = [sa.and_(_octet_length(dialect, text) >= plan.min_base64_length, sa.or_(*b64))]
    preds += b64
    preds += [_contains(dialect, col, text, value, ci) for value, ci in plan.unanchored]
    gate = _gate_regex(plan) if len(preds) > 1 and dialect.name == "postgresql" else None
    if gate and col.kind != "text":
        # Each test converts the value again (JSONB to text is a full serialisation). One class
        # of every pattern's rarest character converts it once for almost every row; only rows
        # holding one of them pay for the exact tests. Measured on 400,000 JSONB values: 0.27 s
        # against 0.93 s ungated (a subquery fence would convert once but forbids the parallel
        # scan the floor gets).
        preds = [sa.and_(text.op("~")(_inline(gate)), sa.or_(*preds))]
    if plan.whole_values:
        preds.append(_whole_value_in(dialect, col, text, plan))
    return sa.or_(*preds) if preds else None


def _gate_regex(plan: Plan) -> str | None:
    """A PostgreSQL regular expression true of every value any of the plan's patterns matches:
    one class of each pattern's rarest character. None when a pattern has no letter or digit."""
    patterns: list[tuple[str, bool]] = []
    if plan.marker:
        patterns.append((MARKER, plan.case_insensitive))
    patterns += [(core, False) for core in plan.marker_cores]
    patterns += plan.unanchored
    chars: set[str] = set()
    for pattern, ci in patterns:
        variants = _gate_variants(pattern, ci)
        if not variants:
            return None
        chars.update(variants)
    return "[" + "".join(sorted(chars)) + "]"


def _selected(dialect: Dialect, col: _Column) -> sa.ColumnElement:
    if col.kind == "binary" and dialect.name != "postgresql":
        return col.column  # bytes, decoded leniently in Python: a CAST could fail on invalid UTF-8
    return text_expression(dialect, col.column, col.kind)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _sweep_sql(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    engine, url = _engine(store, timeout_s)
    try:
        try:
            conn = engine.connect()
        except Exception as e:  # noqa: BLE001 - whatever the driver raises, the store is unreachable
            orig = getattr(e, "orig", e)
            raise StoreError(
                f"store {store.name!r}: cannot connect to {_redacted(url)}: {_scrub(str(orig), url)}"
            ) from None
        with conn:
            if conn.dialect.name in ("mysql", "mariadb"):
                conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
            conn.commit()
            plan.set_encodings(_store_encodings(conn))
            tables = _tables(conn, store, result)
            conn.rollback()  # reflection autobegan a transaction; each table gets its own
            result.count(store.name, "tables", len(tables))
            result.count(store.name, "columns", sum(len(t[2]) for t in tables))
            for schema, table, columns, key in tables:
                where = table if schema is None else f"{schema}.{table}"
                t0 = time.perf_counter()
                n = _sweep_table(conn, store, plan, timeout_s, schema, table, columns, key, result)
                result.timings.append(Timing(store.name, where, time.perf_counter() - t0, n))
    finally:
        engine.dispose()


def _tables(conn: Connection, store: StoreSpec, result: SweepResult) -> list[tuple]:
    """(schema, table, text columns, key columns) of every table to sweep."""
    out: list[tuple] = []
    dialect = conn.dialect
    inspector: Inspector = sa.inspect(conn)
    default = inspector.default_schema_name
    if store.schemas is not None:
        schemas = list(store.schemas)
    else:
        schemas = [
            s
            for s in inspector.get_schema_names()
            if s.lower() not in _SYSTEM_SCHEMAS and not s.lower().startswith("pg_")
        ]
    kinds = sa.engine.reflection.ObjectKind.TABLE | sa.engine.reflection.ObjectKind.MATERIALIZED_VIEW
    for schema_name in schemas:
        schema = None if schema_name == default else schema_name
        try:
            all_columns = inspector.get_multi_columns(schema=schema, kind=kinds)
            try:
                pks = inspector.get_multi_pk_constraint(schema=schema, kind=kinds)
            except NotImplementedError:
                pks = {}
        except Exception as e:  # noqa: BLE001 - a schema we cannot read is reported, not fatal
            result.unswept.append(
                Unswept(store.name, f"schema {schema_name}", _scrub(str(getattr(e, "orig", e)), None))
            )
            conn.rollback()
            continue
        for (_, table), reflected in sorted(all_columns.items(), key=lambda kv: kv[0][1]):
            qualified = f"{schema_name}.{table}"
            if store.include_tables is not None and not _matches(store.include_tables, table, qualified):
                continue
            if _matches(store.exclude_tables, table, qualified):
                continue
            columns: list[_Column] = []
            for c in reflected:
                name = c["name"]
                if _matches(store.exclude_columns, f"{table}.{name}", f"{qualified}.{name}"):
                    continue
                kind = _classify(dialect, c["type"])
                if kind is None:
                    continue
                if kind == "unsupported":
                    where = f"{table if schema is None else qualified}.{name}"
                    result.unswept.append(
                        Unswept(store.name, where, f"unsupported column type {c['type']!r}")
                    )
                    continue
                columns.append(_Column(name, kind, c["type"]))
            if not columns:
                continue
            key = (pks.get((schema, table)) or {}).get("constrained_columns") or []
            if not key and dialect.name in ("sqlite", "postgresql"):
                # No primary key: the physical row address still lets a reader find the row.
                key = ["rowid" if dialect.name == "sqlite" else "ctid"]
            out.append((schema, table, columns, key))
    return out


def _sweep_table(
    conn: Connection,
    store: StoreSpec,
    plan: Plan,
    timeout_s: float,
    schema: str | None,
    table: str,
    columns: list[_Column],
    key: list[str],
    result: SweepResult,
) -> int:
    where = table if schema is None else f"{schema}.{table}"
    attempts = [columns]
    plain = [c for c in columns if c.kind == "text"]
    if len(plain) < len(columns):
        # A cast the dialect rejects should cost the odd column, not the whole table.
        attempts.append(plain)
    error = ""
    for attempt in attempts:
        if not attempt:
            break
        try:
            n = _query_table(conn, store, plan, timeout_s, schema, table, attempt, key, result)
        except sa.exc.DBAPIError as e:
            conn.rollback()
            error = _scrub(str(e.orig), None)
            if (
                "permission denied" in error.lower()
                or "timeout" in error.lower()
                or "interrupt" in error.lower()
            ):
                break
            continue
        for c in columns:
            if c not in attempt:
                result.unswept.append(
                    Unswept(store.name, f"{where}.{c.name}", f"cannot read as text: {error}")
                )
        return n
    if "interrupt" in error.lower():
        error = f"timed out after {timeout_s:g}s ({error})"
    result.unswept.append(Unswept(store.name, where, error or "no readable text column"))
    return 0


def _query_table(
    conn: Connection,
    store: StoreSpec,
    plan: Plan,
    timeout_s: float,
    schema: str | None,
    table: str,
    columns: list[_Column],
    key: list[str],
    result: SweepResult,
) -> int:
    dialect = conn.dialect
    for c in columns:
        c.column = sa.column(c.name, c.type_)
    text_names = {c.name for c in columns}
    key_columns = [sa.column(k) for k in key if k not in ("rowid", "ctid") and k not in text_names]
    source = sa.table(table, *[c.column for c in columns], *key_columns, schema=schema)
    keys: list[sa.ColumnElement] = [
        sa.cast(sa.literal_column(k), sa.Text).label(k)
        if k == "ctid"
        else sa.literal_column(k).label(k)
        if k == "rowid"
        else source.c[k]
        for k in key
    ]
    preds = [p for p in (_predicate(dialect, c, plan) for c in columns) if p is not None]
    if not preds:
        return 0
    query = sa.select(*keys, *[_selected(dialect, c).label(f"pcq_{i}") for i, c in enumerate(columns)])
    query = query.select_from(source)
    query = query.where(sa.or_(*preds))
    where = table if schema is None else f"{schema}.{table}"
    hits: list[Hit] = []
    candidates = 0
    with conn.begin(), _statement_timeout(conn, timeout_s):
        # No server-side cursor: PostgreSQL never runs a cursor's plan in parallel, which measured
        # 2x slower than the plain scan; candidate rows are few by construction.
        rows = conn.execute(query)
        for row in rows:
            candidates += 1
            row_key = dict(zip(key, row[: len(key)], strict=True)) if key else None
            for i, c in enumerate(columns):
                text = _as_text(row[len(key) + i])
                if text is None:
                    continue
                for m in dedup(plan.matcher.find(text)):
                    hits.append(make_hit(store.name, "table", where, c.name, row_key, m, text))
    result.hits += hits
    return candidates
