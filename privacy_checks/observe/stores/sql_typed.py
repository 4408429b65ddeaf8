"""Typed columns of SQL stores: numbers, dates and instants compared in the column's own type.

A card number in a BIGINT, a birth date in a DATE, a login time in a TIMESTAMP: the sweep
compares each such column with an ``IN`` list of the subjects' values of that family
(``observe/typed.py``), inside the engine and in the column's own type — never a cast of every
value to text. Only the rows that hold one come back; ``hits`` then says which needle and form.

One code path for every SQLAlchemy dialect: literals are bound with the generic SQLAlchemy type
of their family and rendered by the dialect. Where the engine does not enforce a column's type
(SQLite: any column holds any value, a DATETIME holds text, integers or Julian days), the list
holds every family's values at once, so a number stored as text in an INTEGER column (or the
reverse) is still compared as what it is.

A column whose values cannot be compared (a vendor type with locale- or vendor-specific
semantics) is reported unswept with its reason, so an absence check is an error unless the
column is excluded.

What a returned value is (which needle, which form) is decided by ``base.typed_hits``, the same
for every store kind.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from privacy_checks.observe.typed import TypedPlan

# Vendor types that hold numbers or money whose comparison depends on the server (PostgreSQL's
# money follows lc_monetary; SQL Server's money and smallmoney, MySQL's YEAR).
_VENDOR = {"MONEY", "SMALLMONEY", "YEAR"}
_BIGINT = 2**63


@dataclass
class TypedColumn:
    name: str
    family: str  # int | decimal | float | date | datetime | time | any
    type_: sa.types.TypeEngine
    # the first column of the primary key or of an index: compared by index lookups in a query
    # of its own, not value by value in the table's scan
    indexed: bool = False


def loose(dialect: Dialect) -> bool:
    """Whether the engine lets a column hold values of any type (SQLite's type affinity)."""
    return dialect.name == "sqlite"


def family(dialect: Dialect, type_: sa.types.TypeEngine) -> str | None:
    """The family a column's values are compared in; None for a column that cannot hold a typed
    value (booleans, intervals, UUIDs, text); "unsupported" for a vendor type we cannot compare."""
    if isinstance(type_, sa.Boolean | sa.Interval | sa.Uuid | sa.Enum | sa.JSON | sa.String):
        return None
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.Float):
        return "float"
    if isinstance(type_, sa.Numeric):
        return "decimal"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.Time):
        return "time"
    if type(type_).__name__.upper() in _VENDOR:
        return "unsupported"
    if loose(dialect) and isinstance(type_, sa.types.NullType):
        return "any"  # no declared type: holds anything
    return None


def unsupported_reason(type_: sa.types.TypeEngine) -> str:
    return (f"its type {type_} holds numbers whose comparison depends on the server (vendor type), so the "
            "subjects' card numbers, amounts and instants cannot be looked for in it; exclude it "
            "(exclude_columns) if it cannot hold them")


class _Literal(sa.types.UserDefinedType):
    """A value of any family written as the SQL literal a loosely typed engine compares it as:
    integers and decimals as numbers, doubles in their shortest exact spelling, texts quoted."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:  # never declared: only rendered as literals
        return "TEXT"

    def literal_processor(self, dialect):
        def render(value: Any) -> str:
            if isinstance(value, str):
                return "'" + value.replace("'", "''") + "'"
            if isinstance(value, Decimal):
                return format(value, "f")
            if isinstance(value, float):
                return repr(value)
            return str(int(value))

        return render


class ValueList(ColumnElement):
    """A list of literals, ``(v1, v2, ...)``, rendered by the dialect once per sweep and reused by
    every column and table compared with it.

    Rendered per statement, the lists cost more than the scan: an expanding parameter renders
    every value again for every column (69,000 literal renderings for one sweep of four tables
    with 50 subjects, about 0.8 s of SQLAlchemy). The evidence (``sql._as_run``, compiled with
    ``pcq_evidence``) shows a placeholder, never the values."""

    inherit_cache = False  # the values are the point of the statement: nothing to reuse
    type = sa.types.NullType()

    def __init__(self, owner: Any, name: str, values: list[Any], type_: sa.types.TypeEngine):
        self.owner, self.name, self.values, self.value_type = owner, name, values, type_


_RENDERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # plan -> {(dialect, name): SQL}


@compiles(ValueList)
def _render_list(element: ValueList, compiler, **kw) -> str:
    if kw.get("pcq_evidence"):
        return f"(__[POSTCOMPILE_{element.name}])"
    dialect = compiler.dialect
    rendered = _RENDERED.setdefault(element.owner, {})
    key = (dialect.name, element.name)
    if key not in rendered:
        render = element.value_type.dialect_impl(dialect).literal_processor(dialect)
        rendered[key] = "(" + ", ".join(render(v) for v in element.values) + ")"
    return rendered[key]


def listed(owner: Any, name: str, values: list[Any], type_: sa.types.TypeEngine) -> ValueList | None:
    """``values`` as one literal list, rendered once per ``owner`` (the sweep's plan) and ``name``
    (which must say everything the values depend on); None when empty."""
    return ValueList(owner, name, values, type_) if values else None


def in_list(column: sa.ColumnElement, values: ValueList) -> sa.ColumnElement:
    return column.op("IN")(values)


def _int_bound(dialect: Dialect, col_type: sa.types.TypeEngine) -> int:
    """The magnitude an integer column's values stay below. PostgreSQL enforces smallint and
    integer ranges, and compares an integer column with a list holding a bigint through a
    cross-type operator it cannot hash: every row then walks the whole list (measured: 88 ms
    instead of 6 ms for 30,000 rows against 450 values). Values the column cannot hold are
    dropped, so the rest is compared in the column's own type."""
    if dialect.name == "postgresql":
        if isinstance(col_type, sa.SmallInteger):
            return 2**15
        if isinstance(col_type, sa.Integer) and not isinstance(col_type, sa.BigInteger):
            return 2**31
    return _BIGINT


def _typed_literals(dialect: Dialect, fam: str, col_type: sa.types.TypeEngine, plan: TypedPlan) -> ValueList | None:
    """The plan's values of one family, typed as the column's family (a strict engine)."""
    values = plan.compared(fam)
    if fam == "int":
        bound = _int_bound(dialect, col_type)
        return listed(plan, f"int{bound}", [v for v in values if -bound <= v < bound], sa.BigInteger())
    if fam == "decimal":
        return listed(plan, "decimal", [Decimal(v) for v in values], sa.Numeric())
    if fam == "float":
        return listed(plan, "float", values, sa.Float())
    if fam == "date":
        return listed(plan, "date", values, sa.Date())
    if fam == "datetime":
        aware = bool(getattr(col_type, "timezone", False))
        return listed(plan, f"datetime{aware}", [v.replace(tzinfo=UTC) if aware else v for v in values],
                      sa.DateTime(timezone=aware))
    if fam == "time":
        return listed(plan, "time", values, sa.Time())
    return None


def _loose_literals(plan: TypedPlan) -> ValueList | None:
    """Every family's values as the engine stores them (integers, reals, text) in one list."""
    lit = plan.literals
    out: list[Any] = [v for v in lit.get("int", []) if -_BIGINT < v < _BIGINT]
    out += [v for v in lit.get("decimal", []) if v != v.to_integral_value()]
    out += list(lit.get("float", []))
    out += list(plan.proof_text_values)
    return listed(plan, "loose", out, _Literal())


def predicate(dialect: Dialect, column: sa.ColumnElement, col: TypedColumn, plan: TypedPlan) -> sa.ColumnElement | None:
    """``column IN (the subjects' values of its family)``; None when there are none."""
    values = _loose_literals(plan) if loose(dialect) else _typed_literals(dialect, col.family, col.type_, plan)
    return in_list(column, values) if values is not None else None


def selected(column: sa.ColumnElement) -> sa.ColumnElement:
    """The column as the driver returns it: no SQLAlchemy result processing (SQLite's DATETIME
    parser would reject a text it did not write)."""
    return sa.type_coerce(column, sa.types.NullType())
