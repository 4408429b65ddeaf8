"""A recipient observed through a store, for targets that cannot be pointed at our capture sink.

A profile sink declared with `store:` (and, for a database, `table:` or `query:`) is the target's
own record of what went out: an outbound-events table, a mail queue, a delivery log. What the
recipient received is then what that record holds, searched with the sweep's canary forms:

    sinks:
      - name: newsletter
        role: third_party
        purpose: marketing email
        store: app
        table: outbound_events          # fnmatch pattern, as the sweep's include_tables
      - name: broker
        role: sale
        purpose: data sale
        store: app
        query: "SELECT payload FROM exports WHERE partner = 'broker'"

A `table` is read whole: the store's exclusions (chosen for residual-data sweeps) do not apply,
since an excluded column could be exactly the one carrying a subject's data to the recipient.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from ..errors import PrivacyChecksError, StoreError
from ..runtime import store_spec
from .forms import Matcher, Needle, excerpt
from .stores import StoreSpec, kind_of, sweep
from .stores.sql import _engine, _redacted, _scrub, _statement_timeout

_MAX_QUERY_ROWS = 100_000


@dataclass(frozen=True)
class StoreSinkHit:
    sink: str
    role: str
    store: str
    location: str  # "table outbound_events column payload row {'id': 3}" or a file and line
    subject_id: str
    field: str
    form: str
    excerpt: str

    def where(self) -> str:
        return f"{self.sink} ({self.role}) via store {self.store}: {self.location}"


def store_sink_hits(profile, sink: dict, needles: list[Needle], *, timeout_s: float = 30) -> list[StoreSinkHit]:
    """Every needle found in what a store-backed `sink` records as sent, with where it is."""
    name = sink.get("name", "?")
    store = profile.store(sink.get("store") or "")
    if store is None:
        raise PrivacyChecksError(f"sink {name!r}: no store named {sink.get('store')!r} in the profile")
    # What was sent is read whole: the store's exclusions were chosen for residual-data sweeps.
    spec = replace(store_spec(store), exclude_tables=[], exclude_columns=[])
    spec.options.pop("exclude_keys", None)
    kind = kind_of(spec)
    if sink.get("query"):
        return _query_hits(spec, sink, needles, timeout_s)
    if sink.get("table"):
        if kind != "sql":
            raise PrivacyChecksError(f"sink {name!r}: 'table' needs a database store; {spec.name!r} is {kind}")
        tables = sink["table"] if isinstance(sink["table"], list) else [sink["table"]]
        spec = replace(spec, include_tables=tables)
    if sink.get("key"):
        if kind not in ("redis", "s3"):
            raise PrivacyChecksError(f"sink {name!r}: 'key' names Redis keys or S3 objects; {spec.name!r} is {kind}")
        # A Redis stream or list, or an S3 prefix, standing for what went to this recipient.
        spec.options["include_keys"] = [sink["key"]]
    result = sweep([spec], needles, timeout_s=timeout_s)
    # a store with nothing to read is named first, in the sink's own terms (what it asked for)
    if kind == "sql" and not any(t.where for t in result.timings):
        raise PrivacyChecksError(f"sink {name!r}: no table matching {spec.include_tables or '*'} "
                                 f"in store {spec.name!r}")
    examined = result.examined.get(spec.name, {})
    if kind in ("redis", "s3") and not (examined.get("keys") or examined.get("objects")):
        raise PrivacyChecksError(f"sink {name!r}: nothing matching {sink.get('key') or '*'} in store {spec.name!r}")
    if result.empty_globs:
        raise PrivacyChecksError(f"sink {name!r}: no file matches {result.empty_globs[0][1]} "
                                 f"in store {spec.name!r}")
    if result.unswept:
        first = result.unswept[0]
        # an unreadable record of deliveries would otherwise read as "nothing was sent"
        raise PrivacyChecksError(f"sink {name!r}: cannot read {first.where} in store {first.store}: {first.reason}")
    hits = []
    for h in result.hits:
        if h.location_kind == "table":
            location = f"table {h.table_or_path} column {h.column_or_line} row {h.row_key}"
        elif h.location_kind == "file":
            location = f"file {h.table_or_path} line {h.column_or_line}"
        else:
            location = h.place().split(": ", 1)[1]
        hits.append(StoreSinkHit(name, sink.get("role", "?"), h.store, location, h.subject_id, h.field,
                                 h.form, h.excerpt))
    return hits


def _query_hits(spec: StoreSpec, sink: dict, needles: list[Needle], timeout_s: float) -> list[StoreSinkHit]:
    name = sink.get("name", "?")
    query = sink["query"].strip().rstrip(";")
    if not query or query.split(None, 1)[0].lower() not in ("select", "with"):
        raise PrivacyChecksError(f"sink {name!r}: 'query' must be a SELECT, not {query[:40]!r}")
    if spec.url is None:
        raise PrivacyChecksError(f"sink {name!r}: 'query' needs a database store; {spec.name!r} is files")
    matcher = Matcher(needles)
    engine, url = _engine(spec, timeout_s)
    hits: list[StoreSinkHit] = []
    try:
        try:
            conn = engine.connect()
        except Exception as e:  # noqa: BLE001 - whatever the driver raises, the store is unreachable
            raise StoreError(f"store {spec.name!r}: cannot connect to {_redacted(url)}: "
                             f"{_scrub(str(getattr(e, 'orig', e)), url)}") from None
        with conn:
            t0 = time.monotonic()
            try:
                with _statement_timeout(conn, timeout_s):
                    rows = conn.execute(sa.text(query))
                    columns = list(rows.keys())
                    for n, row in enumerate(rows.fetchmany(_MAX_QUERY_ROWS), 1):
                        for col, value in zip(columns, row, strict=True):
                            text = _as_text(value)
                            for m in matcher.find(text):
                                hits.append(StoreSinkHit(
                                    name, sink.get("role", "?"), spec.name, f"query row {n} column {col}",
                                    m.needle.subject_id, m.needle.field, m.form, excerpt(text, m.start, m.end)))
            except sa.exc.SQLAlchemyError as e:
                late = " (timed out)" if time.monotonic() - t0 >= timeout_s else ""
                raise PrivacyChecksError(f"sink {name!r}: its query failed in store {spec.name!r}{late}: "
                                         f"{_scrub(str(getattr(e, 'orig', e)), url)}") from None
            finally:
                conn.rollback()  # read only: nothing the query did is kept
    finally:
        engine.dispose()
    return hits


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
