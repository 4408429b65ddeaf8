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


class NothingRecorded(PrivacyChecksError):
    """The record holds nothing yet: no key, object or file matches what the sink names. A Redis
    stream or a delivery log may only appear with the first delivery, so this is no error while a
    procedure waits; a recipient never seen at its end is a failed positive control, with this as
    the reason."""


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
    # The same place in two reads of the record: what holds the entry (a table, a key, an object,
    # a file) and the entry in it (a row, a stream entry, a version, a line). No TTL in either:
    # it changes on every read.
    container: str = ""
    entry: str = ""

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
        raise NothingRecorded(f"sink {name!r}: nothing matching {sink.get('key') or '*'} in store {spec.name!r}")
    if result.empty_globs:
        raise NothingRecorded(f"sink {name!r}: no file matches {result.empty_globs[0][1]} in store {spec.name!r}")
    if result.unswept:
        first = result.unswept[0]
        # an unreadable record of deliveries would otherwise read as "nothing was sent"
        raise PrivacyChecksError(f"sink {name!r}: cannot read {first.where} in store {first.store}: {first.reason}")
    hits = []
    for h in result.hits:
        container, entry = _entry(h)
        hits.append(StoreSinkHit(name, sink.get("role", "?"), h.store, f"{container}, {entry}", h.subject_id,
                                 h.field, h.form, h.excerpt, container, entry))
    return hits


def _entry(h) -> tuple[str, str]:
    """(what holds the entry, the entry in it), in the store's own terms."""
    key = h.row_key or {}
    if h.location_kind == "table":
        return f"table {h.table_or_path}", f"column {h.column_or_line}, row {h.describe_row() or '?'}"
    if h.location_kind == "key":
        return f"db {key.get('db')}, key {h.table_or_path} ({key.get('type')})", str(h.column_or_line)
    if h.location_kind == "object":
        version = f"version {key['version_id']}" if key.get("version_id") else "latest"
        return f"object {h.table_or_path}", version + (f", {h.column_or_line}" if h.column_or_line != "" else "")
    if h.location_kind == "row":
        where = h.place().split(": ", 1)[1]
        container, _, rest = where.partition(", row ")
        return container, f"row {rest}" if rest else where
    return f"file {h.table_or_path}", f"line {h.column_or_line}"


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
                                    m.needle.subject_id, m.needle.field, m.form, excerpt(text, m.start, m.end),
                                    "query", f"row {n} column {col}"))
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


@dataclass(frozen=True)
class Recorded:
    """A store-backed sink's hit, first seen in the read numbered `seq` (an entry that appeared
    since the previous read, or changed since it: a delivery made in between)."""

    hit: StoreSinkHit
    seq: int
    seen_at: str  # when the read that first saw it ran (ISO 8601, UTC)


class StoreSinkLog:
    """What the store-backed sinks recorded as sent, in the order it appeared.

    A record carries no delivery order this tool can read, so each read is compared with the one
    before: an entry (row, stream entry, object version, line) that is new or changed since then
    is a delivery made in between, numbered after everything seen before. Entries that appear
    in the same read are ordered by whose they are, in `order` (the subject before the control,
    which acts after it in every round), so the control's entry showing up is the barrier: what
    the subject's earlier activity sent is recorded by then, unless the target's record reorders
    deliveries. An entry updated in place with the very same content is invisible as a new
    delivery; the procedures' positive control (the subject's activity must show as a new entry
    before the choice) makes such a record an error, never a pass. Entries that shift place (a
    list pushed at its head, a rotated log) read as new: a false delivery, never a missed one.
    """

    # above any capture server's sequence numbers, so both can share one ordering per recipient
    SEQ0 = 1 << 40

    def __init__(self, profile, sinks: list[dict], needles: list[Needle], order: list[str], *,
                 timeout_s: float = 30) -> None:
        self.profile = profile
        self.sinks = [s for s in sinks if s.get("store")]
        self.needles = needles
        self.order = {sid: i for i, sid in enumerate(order)}
        self.timeout_s = timeout_s
        self.entries: list[Recorded] = []
        self.empty: dict[str, str] = {}  # sink -> why nothing could be read in the last read
        self.read: set[str] = set()  # sinks read at least once
        self._present: dict[tuple, frozenset] = {}
        self._seq = self.SEQ0

    def poll(self) -> int:
        """Read every store-backed sink once; the number of the last entry seen so far."""
        from datetime import UTC, datetime

        current: dict[tuple, list[StoreSinkHit]] = {}
        for sink in self.sinks:
            name = sink.get("name", "?")
            try:
                hits = store_sink_hits(self.profile, sink, self.needles, timeout_s=self.timeout_s)
            except NothingRecorded as e:
                self.empty[name] = str(e)
                hits = []
            else:
                self.empty.pop(name, None)
            self.read.add(name)
            for h in hits:
                current.setdefault((name, h.store, h.container, h.entry), []).append(h)
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        changed = []
        for ident, hits in current.items():
            content = frozenset((h.subject_id, h.field, h.form, h.excerpt) for h in hits)
            before = self._present.get(ident)
            if before != content:
                fresh = [h for h in hits if (h.subject_id, h.field, h.form, h.excerpt) not in (before or ())]
                if not fresh:  # an entry that only lost values delivered nothing new
                    continue
                changed.append((max(self.order.get(h.subject_id, len(self.order)) for h in fresh), ident, fresh))
        self._present = {ident: frozenset((h.subject_id, h.field, h.form, h.excerpt) for h in hits)
                         for ident, hits in current.items()}
        for _, _, fresh in sorted(changed, key=lambda c: c[0]):
            self._seq += 1
            self.entries.extend(Recorded(h, self._seq, now) for h in fresh)
        return self._seq

    def since(self, seq: int, needles: list[Needle]) -> list[Recorded]:
        wanted = {(n.subject_id, n.field) for n in needles}
        return [r for r in self.entries if r.seq > seq and (r.hit.subject_id, r.hit.field) in wanted]
