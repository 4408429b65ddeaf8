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

from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

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


def _listed(values: list[Any], type_: sa.types.TypeEngine) -> sa.BindParameter | None:
    """One expanding parameter rendered into the statement: a list of thousands of values costs
    one bound parameter to compile, not thousands (measured: 18,522 single parameters took 5.5 s
    of SQLAlchemy compilation for ten subjects, longer than the scan itself)."""
    if not values:
        return None
    return sa.bindparam(None, values, expanding=True, literal_execute=True, type_=type_)


def _typed_literals(fam: str, col_type: sa.types.TypeEngine, plan: TypedPlan) -> sa.BindParameter | None:
    """The plan's values of one family, typed as the column's family (a strict engine)."""
    values = plan.compared(fam)
    if fam == "int":
        return _listed(values, sa.BigInteger())
    if fam == "decimal":
        return _listed([Decimal(v) for v in values], sa.Numeric())
    if fam == "float":
        return _listed(values, sa.Float())
    if fam == "date":
        return _listed(values, sa.Date())
    if fam == "datetime":
        aware = bool(getattr(col_type, "timezone", False))
        return _listed([v.replace(tzinfo=UTC) if aware else v for v in values], sa.DateTime(timezone=aware))
    if fam == "time":
        return _listed(values, sa.Time())
    return None


def _loose_literals(plan: TypedPlan) -> sa.BindParameter | None:
    """Every family's values as the engine stores them (integers, reals, text) in one list."""
    lit = plan.literals
    out: list[Any] = [v for v in lit.get("int", []) if -_BIGINT < v < _BIGINT]
    out += [v for v in lit.get("decimal", []) if v != v.to_integral_value()]
    out += list(lit.get("float", []))
    out += list(plan.text_values)
    return _listed(out, _Literal())


def predicate(dialect: Dialect, column: sa.ColumnElement, col: TypedColumn, plan: TypedPlan) -> sa.ColumnElement | None:
    """``column IN (the subjects' values of its family)``; None when there are none."""
    listed = _loose_literals(plan) if loose(dialect) else _typed_literals(col.family, col.type_, plan)
    return column.in_(listed) if listed is not None else None


def selected(column: sa.ColumnElement) -> sa.ColumnElement:
    """The column as the driver returns it: no SQLAlchemy result processing (SQLite's DATETIME
    parser would reject a text it did not write)."""
    return sa.type_coerce(column, sa.types.NullType())
