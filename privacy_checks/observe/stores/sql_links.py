"""Rows still linked to a subject through the identifiers the target gave it.

A deletion can remove every value of a person and still leave rows that point at them: an order
whose ``customer_id`` is the deleted customer's id holds no canary, yet it is their purchase
history. The ids the target assigned are captured by the profile (``user_id``, …); a row links
to the subject when

- a column the database declares a foreign key on holds the key of a row that held the subject
  before the deletion (``orders.user_id`` → ``users.id``: the ``users`` row the sweep found the
  subject's canary in), or
- a column the profile declares under ``identifiers:`` (fnmatch patterns, for databases without
  declared foreign keys) holds the captured value.

Each linked row is reported as a Hit (form ``linked row``) with its table, column, row key and
the identifier (``field``), so retention exceptions, findings and reports treat it as any other
residual value. Comparisons are equality in the column's own type, pushed into the engine.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import LINKED_ROW

from .base import Hit, StoreSpec
from .sql import _reflect, _row_key

# Rows reported per column and value; the count says how many more there are.
ROWS_SHOWN = 20
FORM = LINKED_ROW


@dataclass(frozen=True)
class LinkColumn:
    store: str
    schema: str | None
    table: str
    column: str
    key: tuple[str, ...]
    via: str  # "foreign key to users.id" | "identifiers: user_id"
    parent: tuple[str, str] | None = None  # (table, column) a foreign key refers to
    identifier: str | None = None  # the captured value a declared column holds
    key_kind: str = "primary key"  # what `key` is (Hit.row_key_kind)

    @property
    def where(self) -> str:
        return self.table if self.schema is None else f"{self.schema}.{self.table}"


@dataclass
class LinkPlan:
    """One subject's links: which columns to read, and the values that name the subject there."""

    subject_id: str
    columns: dict[LinkColumn, dict[Any, str]] = field(default_factory=dict)  # column -> {value: field}

    def __bool__(self) -> bool:
        return any(self.columns.values())


def _sql(spec: StoreSpec) -> bool:
    from . import kind_of

    return kind_of(spec) == "sql"


def _engine(spec: StoreSpec) -> sa.Engine:
    from .sql import _engine as sql_engine

    engine, _ = sql_engine(spec, 30)
    return engine


def _matches(patterns, *names: str) -> bool:
    return any(fnmatch.fnmatchcase(n.lower(), p.lower()) for p in patterns for n in names)


def link_columns(specs: list[StoreSpec], identifiers: list[dict]) -> list[LinkColumn]:
    """Every column of the SQL stores that can link a row to a subject: reflected foreign keys
    and the profile's declared identifier columns. A declared pattern that names no column of
    any store it applies to is one clear error (the profile names a column that does not exist)."""
    out: list[LinkColumn] = []
    unmatched = {(i, p) for i, ident in enumerate(identifiers) for p in ident.get("columns", [])}
    for spec in specs:
        if spec.url is None or not _sql(spec):
            continue
        engine = _engine(spec)
        try:
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                default = inspector.default_schema_name
                schemas = spec.schemas or [default]
                for schema_name in schemas:
                    schema = None if schema_name == default else schema_name
                    # rows are named as the sweep names them (sql._row_key): a finding here and
                    # there points at the same row by the same key
                    columns_of, pks, uniques, indexes = _reflect(inspector, schema, sa.engine.reflection.ObjectKind.TABLE, typed=True)
                    for table in inspector.get_table_names(schema=schema):
                        qualified = f"{schema_name}.{table}"
                        if spec.include_tables is not None and not _matches(spec.include_tables, table, qualified):
                            continue
                        if _matches(spec.exclude_tables, table, qualified):
                            continue
                        key_cols, key_kind = _row_key(inspector, conn.dialect, schema, table,
                                                      columns_of.get((schema, table), []), pks, uniques, indexes)
                        key = tuple(key_cols)
                        names = [c["name"] for c in inspector.get_columns(table, schema=schema)]
                        for fk in inspector.get_foreign_keys(table, schema=schema):
                            if len(fk["constrained_columns"]) != 1 or len(fk["referred_columns"]) != 1:
                                continue  # a composite key names no single captured id
                            col, ref = fk["constrained_columns"][0], fk["referred_columns"][0]
                            out.append(LinkColumn(spec.name, schema, table, col, key,
                                                  f"foreign key to {fk['referred_table']}.{ref}", key_kind=key_kind,
                                                  parent=(fk["referred_table"], ref)))
                        for i, ident in enumerate(identifiers):
                            if ident.get("stores") and spec.name not in ident["stores"]:
                                continue
                            for pattern in ident.get("columns", []):
                                for name in names:
                                    if _matches([pattern], f"{table}.{name}", f"{qualified}.{name}"):
                                        unmatched.discard((i, pattern))
                                        out.append(LinkColumn(spec.name, schema, table, name, key,
                                                              f"identifiers: {ident['captured']}", key_kind=key_kind,
                                                              identifier=ident["captured"]))
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(f"store {spec.name!r}: cannot reflect its foreign keys: {getattr(e, 'orig', e)}") from None
        finally:
            engine.dispose()
    if unmatched:
        i, pattern = sorted(unmatched)[0]
        stores = identifiers[i].get("stores") or sorted(s.name for s in specs if s.url and _sql(s))
        raise StoreError(f"identifiers[{i}] ({identifiers[i]['captured']}): column {pattern!r} does not exist in "
                         f"store(s) {', '.join(stores)} (patterns are table.column or schema.table.column)")
    # a declared column that is also a foreign key is read once, as the foreign key
    unique: dict[tuple, LinkColumn] = {}
    for col in out:
        unique.setdefault((col.store, col.schema, col.table, col.column), col)
    return list(unique.values())


def plan_for(subject, columns: list[LinkColumn], hits_before: list[Hit]) -> LinkPlan:
    """The subject's values per link column: a declared column's captured value; a foreign key's
    referred keys of the rows that held the subject before the deletion (the sweep's hits)."""
    plan = LinkPlan(subject.id)
    captured = {k: v for k, v in subject.captured.items() if isinstance(v, int | str) and not isinstance(v, bool)}
    for col in columns:
        values: dict[Any, str] = {}
        if col.identifier is not None:
            if col.identifier in captured:
                values[captured[col.identifier]] = col.identifier
        else:
            parent_table, parent_col = col.parent
            for h in hits_before:
                if (h.subject_id == subject.id and h.store == col.store and h.row_key
                        and h.table_or_path.split(".")[-1] == parent_table and parent_col in h.row_key
                        and h.row_key_kind == "primary key"):
                    value = h.row_key[parent_col]
                    name = next((k for k, v in captured.items() if str(v) == str(value)), f"{parent_table}.{parent_col}")
                    values[value] = name
        plan.columns[col] = values
    return plan


def linked_rows(specs: list[StoreSpec], plan: LinkPlan) -> tuple[list[Hit], int]:
    """(one Hit per column and value that still links rows, naming the first row and up to
    ROWS_SHOWN in all; the columns read)."""
    by_store: dict[str, list[LinkColumn]] = {}
    for col, values in plan.columns.items():
        if values:
            by_store.setdefault(col.store, []).append(col)
    hits: list[Hit] = []
    read = 0
    for spec in specs:
        cols = by_store.get(spec.name)
        if not cols:
            continue
        engine = _engine(spec)
        try:
            with engine.connect() as conn:
                for col in cols:
                    read += 1
                    hits += _rows(conn, spec.name, col, plan.columns[col], plan.subject_id)
        except sa.exc.SQLAlchemyError as e:
            raise StoreError(f"store {spec.name!r}: cannot read linked rows: {getattr(e, 'orig', e)}") from None
        finally:
            engine.dispose()
    return hits, read


def _rows(conn, store: str, col: LinkColumn, values: dict[Any, str], subject_id: str) -> list[Hit]:
    physical = {"rowid", "ctid"}
    target = sa.column(col.column)
    keys = [sa.literal_column(k).label(k) if k in physical else sa.column(k) for k in col.key]
    source = sa.table(col.table, target, *[sa.column(k) for k in col.key if k not in physical and k != col.column],
                      schema=col.schema)
    hits = []
    for value, name in values.items():
        where = source.c[col.column] == value
        count = conn.execute(sa.select(sa.func.count()).select_from(source).where(where)).scalar_one()
        if not count:
            continue
        rows = conn.execute(sa.select(*keys).select_from(source).where(where).limit(ROWS_SHOWN)).all()
        # one finding per column and value: the first row's key, the others listed in the excerpt
        row_keys = [dict(zip(col.key, row, strict=True)) for row in rows]
        others = ", ".join(" ".join(f"{k}={v}" for k, v in rk.items()) for rk in row_keys[1:])
        more = f"; also rows {others}{' …' if count > len(rows) else ''}" if others else ""
        hits.append(Hit(store=store, location_kind="table", table_or_path=col.where, column_or_line=col.column,
                        row_key=row_keys[0] or None, subject_id=subject_id, field=name, form=FORM, weak=False,
                        excerpt=f"{col.column} = {value} links {count} row{'s' if count != 1 else ''} to the "
                                f"subject ({col.via}){more}",
                        row_key_kind=col.key_kind if col.key else "none"))
    return hits
