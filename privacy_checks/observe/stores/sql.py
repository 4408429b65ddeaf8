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

import functools
import json
import os
import re
import time
import warnings
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.ext.compiler import compiles

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import byte_patterns, mask, utf16_bytes

from . import sql_typed
from .base import (
    Hit,
    Plan,
    StoreSpec,
    SweepResult,
    Timing,
    Unswept,
    byte_lengths,
    dedup,
    last_four_hits,
    make_hit,
    nothing_to_sweep,
    typed_hits,
)
from .base import matches as _matches

_SYSTEM_SCHEMAS = {"information_schema", "mysql", "performance_schema", "sys"}
# Types that cannot hold a text canary: swept for typed values only (sql_typed.py).
_NOT_TEXT = (sa.Integer, sa.Numeric, sa.Float, sa.Boolean, sa.Date, sa.DateTime, sa.Time, sa.Interval, sa.Uuid)


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


@functools.lru_cache(maxsize=4096)  # the same patterns, for every column of every table
def _anchor(pattern: str, ci: bool) -> str:
    """The suffix of ``pattern`` (two characters at least) that starts at its rarest character.

    ``text LIKE '%anchor%' AND text LIKE '%pattern%'`` selects the same rows as the full pattern
    alone; the second test only runs on the few values holding the anchor. Measured with
    benchmarks/sweep.py on SQLite: '*GNxe*' scans a text column in ~55% of the time of '*cGNxe*'.
    The canary literal starts with its rarest character already (q).
    """
    if len(pattern) <= 2:
        return pattern
    start = min(range(len(pattern) - 1), key=lambda i: (_share(pattern[i], ci), i))
    return pattern[start:]


# Letters that a non-ASCII character lower-cases to (Turkish dotted I, Kelvin sign, long s...):
# a case-insensitive match may hold them with neither ASCII case present.
_UNSAFE_CI = set("iks")


@functools.lru_cache(maxsize=4096)
def _one_letter_piece(pattern: str, ci: bool) -> str | None:
    """The longest piece of ``pattern`` with exactly one ASCII letter and two characters at least,
    the rest digits (so its lower- and upper-case spellings are all its spellings): a pair of
    exact substring tests on it selects every value holding ``pattern`` in any letter case.
    ``q0nd`` -> ``q0``. None when the pattern has no such piece."""
    best = None
    for i in range(len(pattern)):
        for j in range(i + 2, len(pattern) + 1):
            piece = pattern[i:j]
            letters = [ch for ch in piece if ch.isascii() and ch.isalpha()]
            if len(letters) != 1 or not all(ch.isascii() and (ch.isalnum()) for ch in piece):
                continue
            if ci and letters[0].lower() in _UNSAFE_CI:
                continue
            if best is None or len(piece) > len(best):
                best = piece
    return best


@functools.lru_cache(maxsize=4096)
def _gate_char(pattern: str, ci: bool) -> str | None:
    """The pattern's rarest ASCII letter or digit (None if it has none)."""
    candidates = [ch for ch in pattern if ch.isascii() and ch.isalnum() and not (ci and ch.lower() in _UNSAFE_CI)]
    return min(candidates, key=lambda ch: _share(ch, ci)) if candidates else None


def _gate_variants(pattern: str, ci: bool) -> list[str]:
    """Short substrings, one of which every spelling of ``pattern`` (in any letter case when
    ``ci``) holds, for engines whose fast substring test is case-sensitive: the one-letter piece
    in both cases (``q0``, ``Q0`` for the canary literal), else the rarest letter or digit in
    both cases; [] when there is none. Also used by lake.py."""
    if not ci:
        return [pattern]
    piece = _one_letter_piece(pattern, ci)
    if piece is None:
        piece = _gate_char(pattern, ci)
    return sorted({piece.lower(), piece.upper()}) if piece else []


@functools.lru_cache(maxsize=4096)
def _caseless_char(pattern: str) -> str | None:
    """The pattern's rarest ASCII character that has no letter case (a digit, a sign), which every
    spelling of it in any letter case holds as it is; None if it has none."""
    candidates = [ch for ch in pattern if ch.isascii() and not ch.isalpha() and ch.isprintable()]
    return min(candidates, key=lambda ch: _share(ch, False)) if candidates else None


def _strpos_any(text: sa.ColumnElement, pieces: list[str]) -> sa.ColumnElement:
    return sa.or_(*[sa.func.strpos(text, _inline(p)) > 0 for p in pieces])


def _like(pattern: str) -> sa.BindParameter:
    return _inline("%" + pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")


def _contains(dialect: Dialect, col: _Column, text: sa.ColumnElement, pattern: str, ci: bool) -> sa.ColumnElement:
    """``text`` contains ``pattern`` (``ci``: in any letter case). Choices measured with
    benchmarks/sweep.py; a candidate predicate may be looser than asked, never stricter."""
    if dialect.name == "sqlite":
        # SQLite's LIKE (ASCII case-insensitive) and GLOB jump between occurrences of the
        # pattern's first character (strcspn): start from the rarest.
        anchor = _anchor(pattern, ci)
        tests = [_contains_sqlite(text, piece, ci) for piece in dict.fromkeys((anchor, pattern))]
        return sa.and_(*tests)
    if dialect.name == "postgresql":
        # Compared under COLLATE "C": strpos and LIKE raise an error on a column with a
        # non-deterministic (ICU) collation, and ILIKE under any other collation measured
        # ~2.3x slower. "C" folds ASCII letters only, which is every case a letter other than
        # i, k and s can take; a pattern holding those is compared under the database's own
        # (always deterministic) collation, whose folding knows the Kelvin sign and the like.
        # strpos() is a Boyer-Moore-Horspool search (a memchr() for one character); LIKE and
        # ILIKE walk the text byte by byte, ILIKE lower-casing it first.
        text = sa.collate(text, "default" if ci and _UNSAFE_CI & set(pattern.lower()) else "C")
        if not ci:
            return sa.func.strpos(text, _inline(pattern)) > 0
        pieces = _gate_variants(pattern, ci)
        gate = _strpos_any(text, pieces) if pieces else None
        full = text.ilike(_like(pattern), escape="\\")
        if gate is None or col.kind != "text":
            return full
        caseless = _caseless_char(pattern)
        if caseless is not None:
            # A character without case ('0' of q0nd) first: strpos of one character is a memchr,
            # where the pair of two-character searches costs a search setup each. Measured on
            # 300,000 rows (11 text columns): the pair and ILIKE 1.86x the floor, with the digit
            # in front 1.19x.
            gate = sa.and_(sa.func.strpos(text, _inline(caseless)) > 0, gate)
        return sa.and_(gate, full)
    if ci:
        return sa.func.lower(text).like(sa.func.lower(_like(pattern)), escape="\\")
    return text.like(_like(pattern), escape="\\")


def _contains_sqlite(text: sa.ColumnElement, pattern: str, ci: bool) -> sa.ColumnElement:
    if ci:
        return text.like(_like(pattern), escape="\\")
    return text.op("GLOB")(_inline("*" + re.sub(r"([*?\[])", r"[\1]", pattern) + "*"))


def _blob_pieces(pattern: str, ci: bool) -> list[bytes]:
    """Byte strings, one of which every stored copy of ``pattern`` holds (UTF-8 or UTF-16, any
    letter case when ``ci``): its one-letter piece in both cases (``q0``, ``Q0``), else every
    case of the whole pattern."""
    piece = _one_letter_piece(pattern, ci) if ci else None
    if piece is not None:
        spellings = sorted({piece.lower(), piece.upper()})
        return list(dict.fromkeys(b for p in spellings for b in (p.encode("utf-8"), utf16_bytes(p))))
    return byte_patterns(pattern, ci)


def _binary_contains(dialect: Dialect, col: _Column, plan: Plan) -> list[sa.ColumnElement]:
    """Tests of a BLOB/bytea column for the plan's patterns as UTF-8 and UTF-16 bytes. LIKE and
    GLOB stop at a blob's first NUL byte (and SQLite's replace() cannot remove NULs): compare
    bytes. SQLite's instr() and PostgreSQL's position() are byte searches on binary values."""
    pieces = list(dict.fromkeys(b for p, ci in plan.patterns for b in _blob_pieces(p, ci)))
    if dialect.name == "sqlite":
        return [sa.func.instr(col.column, sa.literal(b, sa.LargeBinary)) > 0 for b in pieces]
    if dialect.name == "postgresql":
        return [sa.func.position(sa.literal(b, sa.LargeBinary).op("IN")(col.column)) > 0 for b in pieces]
    text = text_expression(dialect, col.column, col.kind)
    return [_contains(dialect, col, text, p, ci) for p, ci in plan.patterns]


def _octet_length(dialect: Dialect, text: sa.ColumnElement) -> sa.ColumnElement:
    """The value's size in bytes, without reading it where the engine allows."""
    if dialect.name == "sqlite":
        # length() counts characters, a pass over the text; a BLOB's length is its byte count,
        # and CAST(text AS BLOB) only relabels the value. Measured ~30% cheaper per column.
        return sa.func.length(sa.cast(text, sa.LargeBinary))
    # O(1) on PostgreSQL (the varlena header); elsewhere at worst one pass.
    return sa.func.octet_length(text)


def _whole_value_in(dialect: Dialect, col: _Column, text: sa.ColumnElement, plan: Plan) -> sa.ColumnElement | None:
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
    limit = _declared_length(dialect, col)
    if limit is not None:
        # An enforced declared length (PostgreSQL varchar(n)/char(n)) cannot hold a longer
        # value: a phone fits a varchar(20), a digest does not.
        values = [v for v in values if len(v) <= limit]
        octets = byte_lengths(values, plan.encodings)
        if not values:
            return None
    if len(values) == 1:
        # One value: a plain comparison costs next to nothing.
        test = text == _inline(values[0])
    elif dialect.name == "sqlite" and (ranged := _ranged(values, plan)):
        # Typed values' texts (card digits, epoch numbers, ISO instants) have sizes from 10 to
        # 64 bytes, which opens a length gate for most stored values; all of them start with a
        # digit, so a range between the smallest and the largest (under BINARY: byte order,
        # which is code point order for ASCII in UTF-8 and UTF-16 alike) lets few values through.
        # Measured on 300,000 rows (one subject, exact forms): text columns 1.31x the floor with
        # the range, 1.66x with the length gate. Digests keep the length gate: their range spans
        # every value starting with 0-9, A-F or a-f. (Tried on PostgreSQL under COLLATE "C": no
        # better for exact forms, 0.4x the floor worse with digests beside: not used there.)
        digests, others = ranged
        tests = []
        if digests:
            listed = sql_typed.listed(plan, f"{name}_digests", digests, sa.Text())
            tests.append(sa.and_(_length_in(dialect, text, byte_lengths(digests, plan.encodings)),
                                 sql_typed.in_list(text, listed)))
        listed = sql_typed.listed(plan, f"{name}_ranged", others, sa.Text())
        binary = sa.collate(text, "BINARY")
        tests.append(sa.and_(binary.between(_inline(min(others)), _inline(max(others))),
                             sql_typed.in_list(text, listed)))
        test = sa.or_(*tests)
    else:
        # Inline literals: a placeholder per value and per column would hit the drivers'
        # parameter limits with many subjects and wide tables. Testing the byte length first
        # skips the membership test (a b-tree probe in SQLite, a hash of the whole value in
        # PostgreSQL from nine values on) for every value not of a digest's or weak value's size.
        listed = sql_typed.listed(plan, f"{name}{limit or ''}", values, sa.Text())
        gate, member = _length_in(dialect, text, octets), sql_typed.in_list(text, listed)
        if dialect.name == "postgresql":
            # The same test, where the planner does not look: it estimates the selectivity of every
            # `= ANY(list)` it sees, value by value against the column's statistics, which took
            # longer than the scan (300,000 rows, 50 subjects: 135 ms of planning against 8 ms
            # for this form; benchmarks/predicates.py --sweep-tests).
            test = sa.case((gate, member), else_=sa.false())
        else:
            test = sa.and_(gate, member)
    return test if guard is None else sa.and_(guard, test)


def _ranged(values: list[str], plan: Plan) -> tuple[list[str], list[str]] | None:
    """(digests, the rest) when the rest can be gated by a range: ASCII only (so byte order is the
    same in every encoding SQLite stores), none of them a digest. None when there is no rest."""
    digests = plan.digest_spellings
    others = [v for v in values if v not in digests]
    if not others or not all(v.isascii() for v in others):
        return None
    return [v for v in values if v in digests], others


def _length_in(dialect: Dialect, text: sa.ColumnElement, octets: list[int]) -> sa.ColumnElement:
    """The value's byte length is one of ``octets``."""
    length = _octet_length(dialect, text)
    if dialect.name == "sqlite" and octets and max(octets) - min(octets) < 63:
        # One shift and mask instead of an IN list: bit (length - min) of a mask holding each
        # wanted length. SQLite shifts right for a negative count and gives 0 from 64 on, so
        # every other length yields 0. Measured: 1.07x the floor alone, IN (32, 40, 64) 1.30x.
        base = min(octets)
        mask = sum(1 << (n - base) for n in octets)
        shifted = sa.literal_column("1").op("<<")(length - sa.literal_column(str(base)))
        return shifted.op("&")(sa.literal_column(str(mask))) != 0
    return length.in_(sa.bindparam(None, octets, expanding=True, literal_execute=True))


def _declared_length(dialect: Dialect, col: _Column) -> int | None:
    """The longest value, in characters, the database lets the column hold; None if unbounded or
    not enforced (SQLite ignores declared lengths)."""
    if dialect.name != "postgresql" or col.kind != "text":
        return None
    length = getattr(col.type_, "length", None)
    return length if isinstance(length, int) and length > 0 else None


def _json_unescaped(dialect: Dialect, col: _Column) -> sa.ColumnElement | None:
    """PostgreSQL ``json`` keeps its input verbatim, ``\\u0071`` for ``q`` included; ``jsonb``
    stores the characters. For the (rare) document holding an escape, its jsonb text."""
    if dialect.name != "postgresql" or not isinstance(col.type_, sa.JSON) or isinstance(col.type_, postgresql.JSONB):
        return None
    raw = sa.cast(col.column, sa.Text)
    # jsonb rejects \u0000; dropping it loses nothing a canary could hold.
    as_jsonb = sa.cast(sa.cast(sa.func.replace(raw, _inline("\\u0000"), _inline("")), postgresql.JSONB), sa.Text)
    return sa.case((sa.func.strpos(raw, _inline("\\u")) > 0, as_jsonb), else_=raw)


def _predicate(dialect: Dialect, col: _Column, plan: Plan) -> sa.ColumnElement | None:
    text = _selected(dialect, col)
    if col.kind == "binary":
        preds = _binary_contains(dialect, col, plan)
    else:
        preds = [_contains(dialect, col, text, p, ci) for p, ci in plan.patterns]
    if plan.whole_values and col.kind != "binary":
        test = _whole_value_in(dialect, col, text, plan)
        if test is not None:
            preds.append(test)
    return sa.or_(*preds) if preds else None


# A column's test depends on the plan, the dialect and the column's kind and type, not on its name:
# the tables of one sweep share a handful of shapes (text, JSON, varchar(n), blob). Building and
# compiling the SQLAlchemy expression per column cost more than running it on the demo's tables
# (a deletion suite run: about a quarter of its time, most of it in SQLAlchemy's compiler). The
# expression is built and rendered once per shape, with a stand-in column, and the column put in.
# The stand-in's name cannot occur in what else the test renders: the run's own literals (the
# canary literal, digests, the subjects' generated values) and the engine's functions.
_STAND_IN = "pcq_stand_in_column"
_TESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # plan -> {shape: [expr, its SQL or None]}


class _ColumnTest(sa.ColumnElement):
    """The sweep's test of one column, rendered from its shape's cached SQL. The evidence
    (compiled with ``pcq_evidence``) renders the column's own expression, values as placeholders."""

    inherit_cache = False
    type = sa.types.NullType()

    def __init__(self, shape: tuple, plan: Plan, col: _Column, dialect: Dialect):
        self.shape, self.plan, self.col, self.dialect = shape, plan, col, dialect


@compiles(_ColumnTest)
def _render_column_test(element: _ColumnTest, compiler, **kw) -> str:
    if kw.get("pcq_evidence"):
        return compiler.process(_predicate(element.dialect, element.col, element.plan), **kw)
    cached = _TESTS[element.plan][element.shape]  # the shape names the dialect it was built for
    if cached[1] is None:
        cached[1] = compiler.process(cached[0], **{**kw, "literal_binds": True})
    # in parentheses: the test is whole whatever the operators around it
    return "(" + cached[1].replace(compiler.preparer.quote(_STAND_IN), compiler.process(element.col.column, **kw)) + ")"


def _column_test(dialect: Dialect, col: _Column, plan: Plan) -> sa.ColumnElement | None:
    """``_predicate`` for ``col``, built once per plan and shape of column. Not for binary
    columns: their byte literals cannot be rendered inline (SQLite would get text with NULs)."""
    if col.kind == "binary":
        return _predicate(dialect, col, plan)
    shape = (dialect.name, col.kind, repr(col.type_))  # repr: the type's class, length, collation
    shapes = _TESTS.setdefault(plan, {})
    if shape not in shapes:
        stand_in = _Column(_STAND_IN, col.kind, col.type_)
        stand_in.column = sa.column(_STAND_IN, col.type_)
        shapes[shape] = [_predicate(dialect, stand_in, plan), None]
    if shapes[shape][0] is None:
        return None
    return _ColumnTest(shape, plan, col, dialect)


def _selected(dialect: Dialect, col: _Column) -> sa.ColumnElement:
    if col.kind == "binary":
        return col.column  # bytes, read as UTF-8 and UTF-16 in Python: a CAST could fail on them
    unescaped = _json_unescaped(dialect, col)
    return unescaped if unescaped is not None else text_expression(dialect, col.column, col.kind)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_QUERY_SHOWN = 2000  # characters of one statement kept in the evidence


def _as_run(query, dialect) -> str:
    """The statement as the engine gets it, values as placeholders (never the canaries)."""
    try:
        text = str(query.compile(dialect=dialect, compile_kwargs={"pcq_evidence": True}))
    except Exception as e:  # noqa: BLE001 - the evidence must not cost the sweep
        return f"(statement not shown: {type(e).__name__})"
    text = " ".join(text.split())
    return text if len(text) <= _QUERY_SHOWN else text[:_QUERY_SHOWN] + " …"


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
            reported = len(result.unswept)
            tables = _tables(conn, store, result, typed=bool(plan.typed))
            conn.rollback()  # reflection autobegan a transaction; each table gets its own
            if not tables and len(result.unswept) == reported:
                nothing_to_sweep(result, store.name, "every table", f"no table to sweep ({_filters(store)})")
            result.count(store.name, "tables", len(tables))
            result.count(store.name, "columns", sum(len(t.columns) for t in tables))
            if plan.typed:
                result.count(store.name, "typed columns", sum(len(t.typed) for t in tables))
            rows = 0
            for done, table in enumerate(tables, 1):
                if result.budget.exceeded():
                    # named one by one: the absence check over them is an error that says where
                    result.unswept += [Unswept(store.name, t.where, result.budget.reason()) for t in tables[done - 1:]]
                    break
                t0 = time.perf_counter()
                if table.fts is not None:
                    n = _sweep_fts(conn, store, plan, timeout_s, table, result)
                else:
                    n = _sweep_table(conn, store, plan, timeout_s, table, result)
                result.timings.append(Timing(store.name, table.where, time.perf_counter() - t0, n))
                rows += n
                result.budget.table_done(store.name, table.where, done, len(tables), rows)
    finally:
        engine.dispose()


def _filters(store: StoreSpec) -> str:
    """The settings that choose a store's tables, as the profile gives them."""
    return "; ".join([f"schemas: {', '.join(store.schemas) if store.schemas is not None else 'all but the system ones'}",
                      f"include_tables: {', '.join(store.include_tables) if store.include_tables is not None else '*'}"]
                     + ([f"exclude_tables: {', '.join(store.exclude_tables)}"] if store.exclude_tables else []))


@dataclass
class _Table:
    schema: str | None
    name: str
    columns: list[_Column]
    key: list[str]  # the columns naming a row (or rowid/ctid)
    key_kind: str  # primary key | unique | values | physical
    fts: str | None = None  # fts3/fts4/fts5: swept through its vocabulary, not its rows
    # numbers, dates, instants: compared with the plan's typed values in their own type
    typed: list[sql_typed.TypedColumn] = field(default_factory=list)

    @property
    def where(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


# Shadow tables of SQLite full-text indexes that hold the index itself, in a compressed binary
# format (terms prefix-compressed, deleted rows still present until segments merge): they are
# read through the index's vocabulary instead (fts5vocab, fts4aux). Their content tables
# (%_content) are ordinary text and are swept as such.
_FTS_INDEX_SHADOWS = {
    "fts5": ("data", "idx", "docsize", "config"),
    "fts4": ("segments", "segdir", "docsize", "stat"),
    "fts3": ("segments", "segdir", "docsize", "stat"),
}


def _sqlite_fts(conn: Connection, schema: str | None) -> dict[str, str]:
    """{virtual table name: fts3|fts4|fts5} of one SQLite schema."""
    prefix = "" if schema is None else f'"{schema}".'
    rows = conn.exec_driver_sql(
        f"SELECT name, sql FROM {prefix}sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
    ).all()
    out = {}
    for name, sql in rows:
        m = re.search(r"\bUSING\s+(fts[345])\b", sql or "", re.IGNORECASE)
        if m:
            out[name] = m.group(1).lower()
    return out


def _row_key(
    inspector: Inspector, dialect: Dialect, schema: str | None, table: str, reflected: list[dict], pks, uniques, indexes
) -> tuple[list[str], str]:
    """The columns that name a row so a reader can find it again, and what kind of key they are.

    The primary key; else a unique constraint or unique index (one of non-text columns first);
    else every column that cannot hold text (ids, numbers, timestamps), which may not be unique;
    else the physical row address (SQLite rowid, PostgreSQL ctid), which moves when a row is
    rewritten or the table vacuumed, and is said to be so."""
    pk = (pks.get((schema, table)) or {}).get("constrained_columns") or []
    if pk:
        return list(pk), "primary key"
    non_text = [c["name"] for c in reflected if _classify(dialect, c["type"]) is None]
    sets = [list(u.get("column_names") or []) for u in uniques.get((schema, table), [])]
    sets += [list(i.get("column_names") or []) for i in indexes.get((schema, table), []) if i.get("unique")]
    sets = [cols for cols in sets if cols and all(isinstance(c, str) for c in cols)]
    if sets:
        sets.sort(key=lambda cols: (not all(c in non_text for c in cols), len(cols)))
        return sets[0], "unique"
    if non_text:
        return non_text, "values"
    if dialect.name in ("sqlite", "postgresql"):
        return ["rowid" if dialect.name == "sqlite" else "ctid"], "physical"
    return [], "none"


def _index_leaders(pks: dict, uniques: dict, indexes: dict, schema: str | None, table: str) -> set[str]:
    """Columns an index starts with (the primary key's, a unique constraint's, any index's): an
    equality on them is answered by lookups, not by reading every row."""
    lists = [(pks.get((schema, table)) or {}).get("constrained_columns") or []]
    lists += [u.get("column_names") or [] for u in uniques.get((schema, table), [])]
    lists += [i.get("column_names") or [] for i in indexes.get((schema, table), [])]
    return {cols[0] for cols in lists if cols and isinstance(cols[0], str)}


def _reflect(inspector: Inspector, schema: str | None, kinds, typed: bool) -> tuple[dict, dict, dict, dict]:
    columns = inspector.get_multi_columns(schema=schema, kind=kinds)
    found = []
    for method in ("get_multi_pk_constraint", "get_multi_unique_constraints", "get_multi_indexes"):
        if found and not typed and all((found[0].get(t) or {}).get("constrained_columns") for t in columns):
            # Every table has a primary key to name its rows, and no typed column wants an index:
            # the other catalogue queries (each a visible share of a small database's sweep on
            # PostgreSQL) would change nothing.
            found.append({})
            continue
        # An index on an expression (lower(email)) cannot name a row, and SQLAlchemy says so with
        # a warning per index; the key chosen below never needs it, so the warning is only noise
        # in the user's pytest summary.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index",
                                    sa.exc.SAWarning)
            try:
                found.append(getattr(inspector, method)(schema=schema, kind=kinds))
            except NotImplementedError:
                found.append({})
    return columns, found[0], found[1], found[2]


def _tables(conn: Connection, store: StoreSpec, result: SweepResult, typed: bool = False) -> list[_Table]:
    """Every table to sweep: its text columns, its typed columns (numbers, dates, instants; only
    when the plan holds typed values) and the key naming its rows."""
    out: list[_Table] = []
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
    if store.schemas is not None:
        # PostgreSQL reflects a schema that does not exist as one without tables: say so instead
        existing = set(inspector.get_schema_names())
        for name in [s for s in schemas if s not in existing]:
            result.unswept.append(Unswept(store.name, f"schema {name}", "no such schema in the database "
                                          f"(it has {', '.join(sorted(existing))})"))
        schemas = [s for s in schemas if s in existing]
    # an include_tables entry that names no table leaves what it meant unread: reported below
    unmatched = list(dict.fromkeys(store.include_tables or []))
    for schema_name in schemas:
        schema = None if schema_name == default else schema_name
        try:
            all_columns, pks, uniques, indexes = _reflect(inspector, schema, kinds, typed)
            fts = _sqlite_fts(conn, schema) if dialect.name == "sqlite" else {}
        except Exception as e:  # noqa: BLE001 - a schema we cannot read is reported, not fatal
            result.unswept.append(
                Unswept(store.name, f"schema {schema_name}", _scrub(str(getattr(e, "orig", e)), None))
            )
            conn.rollback()
            continue
        shadows = {f"{name}_{suffix}" for name, module in fts.items() for suffix in _FTS_INDEX_SHADOWS[module]}
        for (_, table), reflected in sorted(all_columns.items(), key=lambda kv: kv[0][1]):
            qualified = f"{schema_name}.{table}"
            if store.include_tables is not None and not _matches(store.include_tables, table, qualified):
                continue
            unmatched = [p for p in unmatched if not _matches([p], table, qualified)]
            if _matches(store.exclude_tables, table, qualified) or table in shadows:
                continue
            columns: list[_Column] = []
            typed_columns: list[sql_typed.TypedColumn] = []
            leading = _index_leaders(pks, uniques, indexes, schema, table)
            for c in reflected:
                name = c["name"]
                if _matches(store.exclude_columns, f"{table}.{name}", f"{qualified}.{name}"):
                    continue
                family = sql_typed.family(dialect, c["type"]) if typed and table not in fts else None
                if family == "unsupported":
                    where = f"{table if schema is None else qualified}.{name}"
                    result.unswept.append(Unswept(store.name, where, sql_typed.unsupported_reason(c["type"])))
                elif family is not None:
                    typed_columns.append(sql_typed.TypedColumn(name, family, c["type"], indexed=name in leading))
                kind = "text" if table in fts else _classify(dialect, c["type"])
                if kind is None:
                    continue
                if kind == "unsupported":
                    where = f"{table if schema is None else qualified}.{name}"
                    result.unswept.append(
                        Unswept(store.name, where, f"unsupported column type {c['type']!r}")
                    )
                    continue
                columns.append(_Column(name, kind, c["type"]))
            if not columns and not typed_columns:
                continue
            if table in fts:
                out.append(_Table(schema, table, columns, ["rowid"], "fts rowid", fts=fts[table]))
                continue
            key, key_kind = _row_key(inspector, dialect, schema, table, reflected, pks, uniques, indexes)
            out.append(_Table(schema, table, columns, key, key_kind, typed=typed_columns))
    result.unswept += [Unswept(store.name, f"include_tables {p}", f"matches no table in schema(s) {', '.join(schemas)}")
                       for p in unmatched]
    return out


def _sweep_table(
    conn: Connection, store: StoreSpec, plan: Plan, timeout_s: float, table: _Table, result: SweepResult
) -> int:
    columns = table.columns
    attempts = [(columns, table.typed)]
    plain = [c for c in columns if c.kind == "text"]
    if len(plain) < len(columns) or table.typed:
        # A cast or a comparison the dialect rejects should cost the odd column, not the table.
        attempts.append((plain, []))
    error = ""
    for attempt, attempt_typed in attempts:
        if not attempt and not attempt_typed:
            break
        try:
            n = _query_table(conn, store, plan, timeout_s, table, attempt, result, attempt_typed)
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
                    Unswept(store.name, f"{table.where}.{c.name}", f"cannot read as text: {error}")
                )
        for t in table.typed:
            if t not in attempt_typed:
                result.unswept.append(Unswept(store.name, f"{table.where}.{t.name}",
                                              f"cannot compare as {t.family} ({t.type_}): {error}"))
        return n
    if "interrupt" in error.lower():
        error = f"timed out after {timeout_s:g}s ({error})"
    result.unswept.append(Unswept(store.name, table.where, error or "no readable text column"))
    return 0


def _key_value(value: Any, kind: str) -> Any:
    # A unique text column (an email, a username) may hold somebody else's personal data: like
    # an excerpt, keep only our own canaries readable. A primary key is the application's own
    # identifier for the row and is shown as it is.
    return mask(value) if isinstance(value, str) and kind == "unique" else value


def sweep_session(conn: Connection) -> None:
    """Settings for the sweep's statements, inside their transaction.

    PostgreSQL: the planner expects a third of the rows to pass each strpos() > 0 and prices
    sending them from parallel workers (parallel_tuple_cost, parallel_setup_cost) above a serial
    scan, so the sweep ran without the workers the floor gets (measured 2.16x instead of 1.14x
    the floor). Few rows pass in truth: price their transfer and the workers' start at nothing
    (tables under min_parallel_table_scan_size still get no workers). tests/test_sweep.py asserts
    the plan.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL parallel_tuple_cost = 0")
        conn.exec_driver_sql("SET LOCAL parallel_setup_cost = 0")


def sweep_query(dialect: Dialect, plan: Plan, table: _Table, columns: list[_Column],
                typed: list[sql_typed.TypedColumn] | None = None,
                lookup: sql_typed.TypedColumn | None = None) -> sa.Select | None:
    """The statement that returns the candidate rows of one table (key columns, then the text
    columns, then the typed columns): the scan, testing every column but the indexed typed ones,
    or with ``lookup`` the rows whose indexed typed column equals a typed value."""
    typed = typed or []
    for c in columns:
        c.column = sa.column(c.name, c.type_)
    text_names = {c.name for c in columns}
    typed_columns = {t.name: sa.column(t.name) for t in typed if t.name not in text_names}
    physical = ("rowid", "ctid")
    key_columns = [sa.column(k) for k in table.key
                   if k not in physical and k not in text_names and k not in typed_columns]
    source = sa.table(table.name, *[c.column for c in columns], *typed_columns.values(), *key_columns,
                      schema=table.schema)
    typed_refs = [source.c[t.name] for t in typed]
    keys: list[sa.ColumnElement] = [
        sa.cast(sa.literal_column(k), sa.Text).label(k)
        if k == "ctid"
        else sa.literal_column(k).label(k)
        if k == "rowid"
        else source.c[k]
        for k in table.key
    ]
    if lookup is not None:
        test = sql_typed.predicate(dialect, source.c[lookup.name], lookup, plan.typed)
        preds = [test] if test is not None else []
    else:
        preds = [p for p in (_column_test(dialect, c, plan) for c in columns) if p is not None]
        preds += [p for p in (sql_typed.predicate(dialect, ref, t, plan.typed)
                              for ref, t in zip(typed_refs, typed, strict=True) if not t.indexed) if p is not None]
    if not preds:
        return None
    query = sa.select(*keys, *[_selected(dialect, c).label(f"pcq_{i}") for i, c in enumerate(columns)],
                      *[sql_typed.selected(ref).label(f"pcq_t{i}") for i, ref in enumerate(typed_refs)])
    return query.select_from(source).where(sa.or_(*preds))


def _query_table(
    conn: Connection,
    store: StoreSpec,
    plan: Plan,
    timeout_s: float,
    table: _Table,
    columns: list[_Column],
    result: SweepResult,
    typed: list[sql_typed.TypedColumn] | None = None,
) -> int:
    typed = typed or []
    # The scan, then one query per indexed typed column: an IN list on a column an index starts
    # with is answered by lookups (SQLite tested each row's value against the list, a b-tree
    # probe of a thousand entries per row and column with 50 subjects).
    queries = [sweep_query(conn.dialect, plan, table, columns, typed)]
    queries += [sweep_query(conn.dialect, plan, table, columns, typed, lookup=t) for t in typed if t.indexed]
    queries = [q for q in queries if q is not None]
    if not queries:
        return 0
    for query in queries:
        result.queries.append(lambda q=query, d=conn.dialect, n=store.name: f"{n}: {_as_run(q, d)}")
    key = table.key
    hits: list[Hit] = []
    candidates = 0
    seen: set[str] = set()
    with conn.begin(), _statement_timeout(conn, timeout_s):
        sweep_session(conn)
        # No server-side cursor: PostgreSQL never runs a cursor's plan in parallel, which measured
        # 2x slower than the plain scan; candidate rows are few by construction.
        rows = [row for query in queries for row in conn.execute(query)]
        for row in rows:
            if len(queries) > 1:
                # a row the scan and a lookup both returned is matched once
                ident = repr(tuple(row))
                if ident in seen:
                    continue
                seen.add(ident)
            candidates += 1
            row_key = {k: _key_value(v, table.key_kind) for k, v in zip(key, row[: len(key)], strict=True)} or None
            row_hits: list[Hit] = []
            for i, c in enumerate(columns):
                value = row[len(key) + i]
                if value is None:
                    continue
                if isinstance(value, bytes | bytearray | memoryview):
                    found = plan.find_in_bytes(bytes(value))
                else:
                    text = _as_text(value)
                    found = [(text, m) for m in dedup(plan.find(text))]
                for text, m in found:
                    row_hits.append(make_hit(store.name, "table", table.where, c.name, row_key, m, text,
                                             key_kind=table.key_kind))
            if plan.typed:
                values = {c.name: row[len(key) + i] for i, c in enumerate(columns)}
                for i, t in enumerate(typed):
                    values[t.name] = row[len(key) + len(columns) + i]
                    row_hits += typed_hits(plan.typed, values[t.name], store.name, "table", table.where, t.name,
                                           row_key, table.key_kind)
                row_hits += last_four_hits(plan.typed, store.name, values, row_hits,
                                           lambda c, k=row_key: ("table", table.where, c, k), table.key_kind)
                # a column without a declared type is read both as text and as a typed value
                unique: dict[tuple, Hit] = {}
                for h in row_hits:
                    unique.setdefault((h.column_or_line, h.subject_id, h.field, h.form), h)
                row_hits = list(unique.values())
            hits += row_hits
    result.hits += hits
    return candidates


def _sweep_fts(
    conn: Connection, store: StoreSpec, plan: Plan, timeout_s: float, table: _Table, result: SweepResult
) -> int:
    """A SQLite full-text index, read through its vocabulary: every term it still holds, with the
    document (rowid) and column for FTS5. Its shadow tables keep terms prefix-compressed (a
    canary after another canary loses the literal) and deleted rows until segments merge, so
    their bytes are neither complete nor current; the vocabulary is both."""
    name = f"pcq_vocab_{abs(hash((table.schema, table.name))) % 10**8}"
    schema = table.schema or "main"
    quoted = table.name.replace("'", "''")
    if table.fts == "fts5":
        create = f"CREATE VIRTUAL TABLE temp.{name} USING fts5vocab('{schema}', '{quoted}', 'instance')"
        select = f"SELECT term, doc, col FROM temp.{name}"
    else:
        create = f"CREATE VIRTUAL TABLE temp.{name} USING fts4aux({schema}, '{quoted}')"
        select = f"SELECT term, NULL, col FROM temp.{name} WHERE col != '*'"
    term = sa.column("term", sa.Text)
    preds = [_contains(conn.dialect, _Column("term", "text", sa.Text()), term, p, ci) for p, ci in plan.patterns]
    if plan.whole_values:
        preds.append(term.in_(sa.bindparam("pcq_terms", plan.whole_values, expanding=True, literal_execute=True)))
    if not preds:
        return 0
    where = sa.or_(*preds).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    sql = f"SELECT * FROM ({select}) WHERE {where}"
    hits: list[Hit] = []
    candidates = 0
    try:
        with conn.begin(), _statement_timeout(conn, timeout_s):
            conn.exec_driver_sql(create)
            try:
                rows = conn.exec_driver_sql(sql).all()
            finally:
                conn.exec_driver_sql(f"DROP TABLE temp.{name}")
    except sa.exc.DBAPIError as e:
        conn.rollback()
        result.unswept.append(Unswept(store.name, f"{table.where} (full-text index)", _scrub(str(e.orig), None)))
        return 0
    names = [c.name for c in table.columns]
    for value, doc, col in rows:
        candidates += 1
        if isinstance(col, int) and 0 <= col < len(names):
            col = names[col]  # fts4aux numbers the columns
        column = f"{col} (index term)"
        row_key = {"rowid": doc} if doc is not None else None
        for m in dedup(plan.matcher.find(str(value))):
            hits.append(make_hit(store.name, "table", table.where, column, row_key, m, str(value),
                                 key_kind="fts rowid" if row_key else "none"))
    result.hits += hits
    return candidates
