"""Redis stores (``redis://``, ``rediss://``): every key name and every value of every type.

Keys are listed with ``SCAN`` (never ``KEYS``, which blocks the server for the whole keyspace)
and read page by page with two pipelined round trips: the types of the page's keys, then one
read per key by type (``GETRANGE`` for strings, ``HSCAN``/``SSCAN``, ``ZRANGE`` (then ``ZSCAN`` for a
sorted set that fills the first chunk), ``LRANGE``,
``XRANGE``, ``JSON.GET``). A collection too large for one reply is read on by its own cursor.
That is the floor benchmarks/sweep.py measures (one SCAN and a pipelined read of every value);
the sweep adds only one byte search per page (``_PageGate``) and the Matcher on the
keys it selects (every value of such a key: a weak value is named beside proof), and a third round trip
(``PTTL``, ``TYPE``) for the few keys that hold a needle, so a finding can say how long Redis
will keep it.

The sweep's time budget (``timeouts.sweep``) is checked between SCAN pages: once it has run out,
the database is reported unswept from the cursor SCAN had reached (a position in the server's
hash table, not a count: how many keys are left is unknown), and each later database as not
started. A page SCAN returned is always read and searched whole.

``SCAN`` guarantees every key present for the whole iteration is returned at least once, and
may return one twice: keys are deduplicated per database, and a key that vanished between two
round trips (type ``none``) is skipped. A value larger than ``max_value_bytes`` is read up to
the cap and reported as unswept (the rest is unknown), which makes an absence check an error.

Caches often compress what they keep (Rails' cache store deflates entries over 1 KiB, django-redis
has zlib and gzip compressors): a value whose first bytes hold a zlib or gzip header is inflated
(up to the cap) and searched as well as its raw bytes; a finding there is labelled
"(zlib-compressed)" or "(gzip-compressed)". A stream that cannot be inflated to its end is unswept.

``search: lua`` runs one Lua script per SCAN page that tests every value on the server and
returns only candidate keys (measured 0.58x the floor's time in the issue), but blocks the
server while it runs (~13 ms per page of 1000 keys): for non-production targets only, never
the default.

Profile keys (besides ``url``): ``databases`` (default: the URL's database if it names one,
else every database holding keys), ``include_keys``/``exclude_keys`` (globs on key names),
``max_value_bytes`` (default 1 MiB), ``scan_count`` (default 1000), ``search`` (scan | lua).
"""

from __future__ import annotations

import bisect
import fnmatch
import re
import time
import urllib.parse
import zlib
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.exceptions import RedisError

from privacy_checks.errors import StoreError

from ..forms import texts_of_bytes, utf16_bytes
from ..typed import trie_pattern
from .base import (
    Hit,
    Plan,
    StoreSpec,
    SweepResult,
    Timing,
    Unswept,
    hits_in,
    nothing_to_sweep,
    tested_in_process,
)

_DEFAULT_CAP = 1 << 20


@dataclass
class Options:
    databases: list[int] | None = None
    include_keys: list[str] = field(default_factory=list)
    exclude_keys: list[str] = field(default_factory=list)
    max_value_bytes: int = _DEFAULT_CAP
    scan_count: int = 1000
    search: str = "scan"

    @classmethod
    def of(cls, store: StoreSpec) -> Options:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(store.options) - known)
        if unknown:
            raise StoreError(f"store {store.name!r}: unknown Redis setting(s) {', '.join(unknown)}")
        opts = cls(**store.options)
        if opts.search not in ("scan", "lua"):
            raise StoreError(f"store {store.name!r}: search must be 'scan' or 'lua', not {opts.search!r}")
        return opts


def redacted(url: str) -> str:
    """The URL without its password (``redis://:***@host:6379/0``)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _scrub(message: str, url: str) -> str:
    password = urllib.parse.urlsplit(url).password
    first = message.strip().splitlines()[0] if message.strip() else message
    return first.replace(password, "***") if password else first


def _url_database(url: str) -> int | None:
    """The database the URL names (path ``/2`` or ``?db=2``), or None if it names none."""
    parts = urllib.parse.urlsplit(url)
    db = urllib.parse.parse_qs(parts.query).get("db")
    if db:
        return int(db[0])
    path = parts.path.strip("/")
    return int(path) if path.isdigit() else None


def connect(store: StoreSpec, timeout_s: float, db: int | None = None) -> redis.Redis:
    """A client for one database, every command bounded by ``timeout_s``."""
    assert store.url is not None
    kwargs: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": min(timeout_s, 10)}
    if db is not None:
        kwargs["db"] = db
    try:
        return redis.Redis.from_url(store.url, **kwargs)
    except (ValueError, RedisError) as e:
        raise StoreError(f"store {store.name!r}: invalid Redis URL {redacted(store.url)}: "
                         f"{_scrub(str(e), store.url)}") from None


def store_error(store: StoreSpec, e: Exception) -> StoreError:
    assert store.url is not None
    return StoreError(f"store {store.name!r}: cannot read {redacted(store.url)}: {type(e).__name__}: "
                      f"{_scrub(str(e), store.url)}")


def sweep_store(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    """Sweep every key of every database the store names into ``result``."""
    opts = Options.of(store)
    try:
        databases = _databases(store, opts, timeout_s)
        listed = 0
        stopped = False  # by the sweep's time budget: each database then names what it left (_Sweeper.run)
        for db in databases:
            t0 = time.perf_counter()
            client = connect(store, timeout_s, db)
            result.queries.append(f"{store.name}: {_shown(opts, db, plan)}")
            try:
                sweeper = _Sweeper(store, plan, opts, client, db, result)
                n = sweeper.run()
                listed += sweeper.listed
                stopped = stopped or sweeper.stopped
            finally:
                client.close()
            result.timings.append(Timing(store.name, f"db {db}", time.perf_counter() - t0, n))
        result.count(store.name, "databases", len(databases))
        if not listed and not stopped:  # a budget that ran out has named what it left
            keys = f" matching {', '.join(opts.include_keys)}" if opts.include_keys else ""
            left = " that exclude_keys leaves" if opts.exclude_keys else ""
            nothing_to_sweep(result, store.name, "db " + ", ".join(map(str, databases)),
                             f"no key{keys}{left} in the database(s)")
    except RedisError as e:
        raise store_error(store, e) from None


def _shown(opts: Options, db: int, plan: Plan) -> str:
    """How one database is read and searched, without the values searched for."""
    patterns = ", ".join(opts.include_keys or ["*"])
    if opts.search == "lua":
        paging = f"db {db}: EVALSHA of the search script per SCAN page (MATCH {patterns} COUNT {opts.scan_count})"
    else:
        paging = f"db {db}: SCAN MATCH {patterns} COUNT {opts.scan_count}, every page"
    return (f"{paging}; per page one pipeline of TYPE and one of GETRANGE 0 {opts.max_value_bytes} / HSCAN / SSCAN / "
            f"ZRANGE (ZSCAN past the first chunk) / LRANGE / XRANGE / JSON.GET by type (at most {opts.max_value_bytes} bytes a value); every key "
            f"name and value tested in this process for {tested_in_process(plan)} (weak values only in a key "
            f"with a value that proves the subject); PTTL of each key with a hit")


def _databases(store: StoreSpec, opts: Options, timeout_s: float) -> list[int]:
    if opts.databases is not None:
        return list(opts.databases)
    named = _url_database(store.url or "")
    if named is not None:
        return [named]
    client = connect(store, timeout_s)
    try:
        keyspace = client.info("keyspace")
    finally:
        client.close()
    # {"db0": {"keys": 3, ...}}; a server with no key at all still has database 0 to show as swept
    return sorted(int(name[2:]) for name in keyspace if name.startswith("db")) or [0]


_AGAIN = object()  # a zset's first chunk was full: read it whole by ZSCAN from cursor 0

# How a collection is read a chunk at a time: (command, first cursor); see _Sweeper._read_chunks.
_COLLECTIONS = ("hash", "set", "zset", "list", "stream")


class _Sweeper:
    """One database: SCAN pages, pipelined reads, the Matcher on each value."""

    def __init__(self, store: StoreSpec, plan: Plan, opts: Options, client: redis.Redis, db: int,
                 result: SweepResult) -> None:
        self.store, self.plan, self.opts, self.client, self.db, self.result = store, plan, opts, client, db, result
        # A key is a record, like a row: one whose values hold proof is matched whole, and the
        # weak values in it are named there (docs/profile.md, "Typed values"); a key holding a
        # weak value alone is not looked for. Without anything that proves, every key is matched.
        self.gate = _PageGate.of(plan)
        self.seen: set[bytes] = set()
        self.candidates = 0
        self.listed = 0  # keys SCAN returned that exclude_keys leaves (search: lua: keys the server searched)
        self.chunk = max(1, opts.scan_count)
        self._lua = None
        self.stopped = False  # the sweep's time budget ran out before SCAN finished

    def run(self) -> int:
        patterns = self.opts.include_keys or ["*"]
        for i, pattern in enumerate(patterns):
            cursor = 0
            while True:
                # between pages: a page SCAN returned is always read and searched whole
                if self.result.budget.exceeded():
                    self._out_of_time(cursor, patterns[i:])
                    return self.candidates
                if self.opts.search == "lua":
                    cursor, keys = self._lua_page(cursor, pattern)
                else:
                    cursor, keys = self.client.scan(cursor, match=pattern if pattern != "*" else None,
                                                    count=self.opts.scan_count)
                self._page(keys)
                if cursor == 0:
                    break
        return self.candidates

    def _out_of_time(self, cursor: int, patterns: list[str]) -> None:
        """What SCAN had not returned when the budget ran out. SCAN's cursor is a position in the
        server's hash table, not a count: how many keys are left is unknown, so none is named."""
        self.stopped = True
        reason = self.result.budget.reason()

        def matching(pattern: str) -> str:
            return "" if pattern == "*" else f" matching {pattern}"

        first, *rest = patterns
        where = (f"db {self.db}: every key{matching(first)} (SCAN not started)" if cursor == 0 else
                 f"db {self.db}: the keys{matching(first)} SCAN had not returned when the sweep stopped at cursor "
                 f"{cursor} (how many is unknown)")
        self.result.unswept.append(Unswept(self.store.name, where, reason))
        self.result.unswept += [Unswept(self.store.name, f"db {self.db}: every key{matching(p)} (SCAN not started)",
                                        reason) for p in rest]

    # -- one SCAN page ---------------------------------------------------------------------------
    def _page(self, keys: list[bytes]) -> None:
        fresh = []
        for key in keys:
            if key in self.seen:
                continue  # SCAN may return a key twice (rehashing); it is swept once
            self.seen.add(key)
            if self.opts.exclude_keys and _matches(self.opts.exclude_keys, key):
                continue
            fresh.append(key)
        if self.opts.search != "lua":  # the script's pages hold only candidates: it counts what it scanned
            self.listed += len(fresh)
        if not fresh:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in fresh:
            pipe.type(key)
        types = [t.decode() if isinstance(t, bytes) else str(t) for t in pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        readers = []
        for key, kind in zip(fresh, types, strict=True):
            if kind == "none":
                continue  # deleted since SCAN returned it
            readers.append((key, kind))
            _first_read(pipe, key, kind, self.opts.max_value_bytes, self.chunk)
        replies = pipe.execute(raise_on_error=False)
        self.result.count(self.store.name, "keys", len(readers))
        page: list[tuple[bytes, list[tuple[Any, bytes]]]] = []
        count = 0
        for (key, kind), reply in zip(readers, replies, strict=True):
            if isinstance(reply, Exception):
                self._unswept(key, f"cannot read its {kind} value: {reply}")
                continue
            values = [("key name", key), *self._values(key, kind, reply)]
            count += len(values) - 1
            values += self._inflated(key, values)
            page.append((key, values))
        self.result.count(self.store.name, "values", count)
        found = {page[i][0]: page[i][1] for i in self._holding(page)}
        if found:
            self._report(found)

    def _inflated(self, key: bytes, values: list[tuple[Any, bytes]]) -> list[tuple[Any, bytes]]:
        """The compressed values among ``values``, inflated (searched beside their raw bytes)."""
        out = []
        for where, data in values:
            if not _COMPRESSED_START.search(data[:_HEADER_SCAN]):
                continue  # most values: one search of a few bytes
            found = _inflate(data, self.opts.max_value_bytes)
            if found is None:
                continue
            how, text, problem = found
            if problem:
                self._unswept(key, f"{_label(where)}: {how} data {problem}")
            if text:
                out.append((("{} ({}-compressed)", _label(where), how), text))
        return out

    def _holding(self, page: list[tuple[bytes, list[tuple[Any, bytes]]]]) -> list[int]:
        """Indexes of the keys of a page with a value the gate passes."""
        if self.gate is None:
            return list(range(len(page)))
        owners: list[int] = []
        chunks: list[bytes] = []
        for i, (_, values) in enumerate(page):
            for _, data in values:
                owners.append(i)
                chunks.append(data)
        return sorted({owners[j] for j in self.gate.holding(chunks)})

    def _values(self, key: bytes, kind: str, reply) -> Any:
        """(where in the key, bytes) of every value the key holds, reading on past the first reply."""
        cap = self.opts.max_value_bytes
        if kind == "string":
            if len(reply) > cap:
                self._unswept(key, f"string value larger than max_value_bytes ({cap}): only the first {cap} "
                                   "bytes were read")
                reply = reply[:cap]
            yield "value", reply
            return
        if kind == "ReJSON-RL":
            doc = reply if isinstance(reply, bytes) else str(reply).encode()
            if len(doc) > cap:
                # JSON.GET has no range: the document came whole, only its first bytes are searched,
                # as for a string, so the cap bounds the search the same way for every type
                self._unswept(key, f"JSON document larger than max_value_bytes ({cap}): only the first {cap} "
                                   "bytes were searched")
                doc = doc[:cap]
            yield "document", doc
            return
        if kind not in _COLLECTIONS:
            self._unswept(key, f"type {kind} is not read by the sweep")
            return
        if kind == "list":
            reply = (0, reply)  # LRANGE's reply, with where it started
        if kind == "zset":
            # ZRANGE's first chunk, members only; a zset that fills it is read again whole by
            # ZSCAN (which, unlike ranks, misses no member that stays while it runs)
            reply = (_AGAIN if len(reply) >= self.chunk else 0, [(m, None) for m in reply])
        read = 0
        for where, data in _chunk_values(kind, reply):
            read += len(data)
            yield where, data
        for where, data in self._rest(key, kind, reply):
            read += len(data)
            if read > cap:
                self._unswept(key, f"{kind} larger than max_value_bytes ({cap}): the rest was not read")
                return
            yield where, data

    def _rest(self, key: bytes, kind: str, reply) -> Any:
        """The members beyond the first reply, one chunk per round trip (large collections only)."""
        while True:
            if kind in ("hash", "set", "zset"):
                cursor = 0 if reply[0] is _AGAIN else int(reply[0])
                if cursor == 0 and reply[0] is not _AGAIN:
                    return
                command = {"hash": "HSCAN", "set": "SSCAN", "zset": "ZSCAN"}[kind]
                reply = self.client.execute_command(command, key, cursor, "COUNT", self.chunk)
                yield from _chunk_values(kind, reply)
            elif kind == "list":
                start, items = reply
                if len(items) < self.chunk:
                    return
                start += len(items)
                reply = (start, self.client.lrange(key, start, start + self.chunk - 1))
                yield from _chunk_values(kind, reply)
            else:  # stream
                entries = reply
                if len(entries) < self.chunk:
                    return
                last = entries[-1][0]
                last = last.decode() if isinstance(last, bytes) else last
                reply = self.client.xrange(key, min=f"({last}", count=self.chunk)
                yield from _chunk_values(kind, reply)

    def _report(self, found: dict[bytes, list[tuple[str, bytes]]]) -> None:
        """Match the candidates; a third round trip fetches type and TTL for keys with hits."""
        hits: dict[bytes, list[tuple[str, str]]] = {}
        for key, values in found.items():
            self.candidates += 1
            for where, data in values:
                # UTF-8, and UTF-16 where a canary is in it (Redis keeps whatever bytes it is given)
                for text in texts_of_bytes(data):
                    if self.plan.find(text) and (_label(where), text) not in hits.get(key, []):
                        hits.setdefault(key, []).append((_label(where), text))
        if not hits:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in hits:
            pipe.type(key)
            pipe.pttl(key)
        replies = pipe.execute()
        for i, (key, values) in enumerate(hits.items()):
            kind, pttl = replies[2 * i], replies[2 * i + 1]
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            # -1: no expiry; -2: gone since it was read (the read still saw it, so it stands).
            expires = pttl / 1000 if pttl is not None and pttl >= 0 else None
            name = key.decode("utf-8", errors="replace")
            row = {"db": self.db, "type": kind if kind != "none" else "gone since read"}
            for where, text in values:
                self.result.hits += _hits(self.plan, text, self.store.name, name, where, row, expires)

    def _unswept(self, key: bytes, reason: str) -> None:
        name = key.decode("utf-8", errors="replace")
        self.result.unswept.append(Unswept(self.store.name, f"db {self.db} key {name}", reason))

    # -- server-side search (search: lua) ------------------------------------------------------------
    def _lua_page(self, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
        if self._lua is None:
            self._lua = self.client.register_script(_LUA_SEARCH)
        ci, cs, whole, hex_runs = _literals(self.plan)
        args = [cursor, self.opts.scan_count, pattern, len(ci), len(cs), len(whole), int(hex_runs),
                *ci, *cs, *whole]
        next_cursor, keys, scanned = self._lua(keys=[], args=args)
        # Keys the script found nothing in were swept on the server: count them as examined there.
        self.result.count(self.store.name, "keys searched on the server", int(scanned))
        self.listed += int(scanned)
        return int(next_cursor), list(keys)


# A zlib stream starts with 0x78 and a byte making the pair a multiple of 31 (RFC 1950); a gzip
# member with 1f 8b 08 (RFC 1952). Serialisers put a few bytes of their own before it (a version,
# a flag): the header is looked for in a value's first bytes, and tried where it is found.
_COMPRESSED_START = re.compile(rb"\x78[\x01\x5e\x9c\xda]|\x1f\x8b\x08|\x28\xb5\x2f\xfd|\x04\x22\x4d\x18")
# frames the sweep cannot inflate (no decoder in the standard library): reported, never passed over
_UNREAD = {b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}
_HEADER_SCAN = 8


def _inflate(data: bytes, cap: int) -> tuple[str, bytes, str] | None:
    """(zlib | gzip, what the first stream in ``data`` inflates to, a problem or "") or None when
    no header in the first bytes starts a stream. Output past ``cap`` is cut and is a problem: the
    rest of the value was not searched."""
    for m in _COMPRESSED_START.finditer(data[:_HEADER_SCAN]):
        if m.group() in _UNREAD:
            return _UNREAD[m.group()], b"", "cannot be inflated by the sweep: its content was not searched"
        how = "gzip" if m.group().startswith(b"\x1f") else "zlib"
        inflater = zlib.decompressobj(wbits=31 if how == "gzip" else 15)
        try:
            text = inflater.decompress(data[m.start():], cap + 1)
        except zlib.error:
            continue  # a header by chance (text may start "x^"): the raw bytes are searched anyway
        if len(text) > cap:
            return how, text[:cap], f"inflates past max_value_bytes ({cap}): only the first {cap} bytes were searched"
        if not inflater.eof:
            return how, text, "ends before its stream does: what it inflates to was searched, the rest is unknown"
        return how, text, ""
    return None


# every hex digit to "x", every other byte to "."
_HEX = bytes(ord("x") if chr(b) in "0123456789abcdefABCDEF" else ord(".") for b in range(256))
_HEX_RUN = b"x" * 32


class _PageGate:
    """Which values of a page can hold proof: true of every value ``Plan.proof_prefilter`` passes
    (the canary literal in any case, UTF-8 and UTF-16; other patterns; a 32-digit hex run when
    there are digests; the typed values' proof texts), tested on the page's values joined by
    newlines with the fastest primitive for each: ``bytes.find`` on the lower-cased page for
    the literal, one ``translate`` and ``find`` for hex runs, a regular expression only for
    typed texts. One regular expression of all of them over the page measured 13 ms a page of
    1,000 keys; this a fraction of that. No searched string holds a newline (else the values
    are searched one by one), so a match never spans two values."""

    def __init__(self, plan: Plan) -> None:
        self.folded = [b for p, ci in plan.patterns if ci for b in dict.fromkeys(
            (p.lower().encode("utf-8"), utf16_bytes(p.lower())))]
        self.exact = [b for p, ci in plan.patterns if not ci for b in dict.fromkeys(
            (p.encode("utf-8"), utf16_bytes(p)))]
        self.hex = bool(plan.digests)
        words = plan.typed.proof_text_values
        self.words = re.compile(trie_pattern(words).encode()) if words else None
        self.joinable = not any(b"\n" in b for b in self.folded + self.exact) and not (
            self.words is not None and any("\n" in w for w in words))

    @classmethod
    def of(cls, plan: Plan) -> _PageGate | None:
        gate = cls(plan)
        return gate if gate.folded or gate.exact or gate.hex or gate.words is not None else None

    def holding(self, chunks: list[bytes]) -> set[int]:
        """Indexes of the chunks that pass."""
        if not self.joinable:
            return {i for i, c in enumerate(chunks) if self._starts(c)}
        starts, at = [], 0
        for c in chunks:
            starts.append(at)
            at += len(c) + 1
        return {bisect.bisect_right(starts, i) - 1 for i in self._starts(b"\n".join(chunks))}

    def _starts(self, blob: bytes) -> list[int]:
        """Where a match starts (at least one per value that holds one)."""
        out: list[int] = []
        for text, needles in ((blob.lower() if self.folded else b"", self.folded), (blob, self.exact)):
            for needle in needles:
                i = text.find(needle)
                while i != -1:
                    out.append(i)
                    i = text.find(needle, i + 1)
        if self.hex:
            marked = blob.translate(_HEX)
            i = marked.find(_HEX_RUN)
            while i != -1:
                out.append(i)
                i = marked.find(_HEX_RUN, i + 32)  # the run's next 31 starts are in the same value
        if self.words is not None:
            out += [m.start() for m in self.words.finditer(blob)]
        return out


def _hits(plan: Plan, text: str, store: str, key: str, where: str, row: dict, expires: float | None) -> list[Hit]:
    return hits_in(plan, text, store, "key", key, where, dict(row), expires)


def _matches(patterns: list[str], key: bytes) -> bool:
    name = key.decode("utf-8", errors="replace")
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _first_read(pipe, key: bytes, kind: str, cap: int, chunk: int) -> None:
    # Arguments as bytes: packing converts every int and str argument of 200,000 commands.
    if kind == "string":
        # one byte past the cap tells a cut value from one of exactly cap bytes
        pipe.execute_command("GETRANGE", key, b"0", str(cap).encode())
    elif kind == "hash":
        pipe.execute_command("HSCAN", key, b"0", b"COUNT", str(chunk).encode())
    elif kind == "set":
        pipe.execute_command("SSCAN", key, b"0", b"COUNT", str(chunk).encode())
    elif kind == "zset":
        # members without their scores (ZSCAN sends both, and each score is parsed as a float)
        pipe.execute_command("ZRANGE", key, b"0", str(chunk - 1).encode())
    elif kind == "list":
        pipe.execute_command("LRANGE", key, b"0", str(chunk - 1).encode())
    elif kind == "stream":
        pipe.xrange(key, count=chunk)
    elif kind == "ReJSON-RL":
        pipe.execute_command("JSON.GET", key)
    else:
        pipe.echo(b"")  # keeps replies aligned with keys; the type is reported as unswept


def _chunk_values(kind: str, reply) -> Any:
    # Where a value sits, as a template and its parts: formatted (``_label``) only for the few
    # values with a hit, not for each of the 160,000 values of 100,000 keys.
    if kind == "hash":
        _, flat = reply
        flat = flat.items() if isinstance(flat, dict) else zip(flat[::2], flat[1::2], strict=True)
        for name, value in flat:
            yield ("field name {}", name), name
            yield ("field {}", name), value
    elif kind == "set":
        for member in reply[1]:
            yield "member", member
    elif kind == "zset":
        flat = reply[1]
        members = [m for m, _ in flat] if flat and isinstance(flat[0], tuple) else flat[::2]
        for member in members:
            yield "member", member
    elif kind == "list":
        start, items = reply if isinstance(reply, tuple) else (0, reply)
        for i, item in enumerate(items, start):
            yield ("index {}", i), item
    elif kind == "stream":
        for entry_id, fields in reply:
            for name, value in fields.items():
                yield ("entry {} field name {}", entry_id, name), name
                yield ("entry {} field {}", entry_id, name), value


def _label(where: str | tuple) -> str:
    if isinstance(where, str):
        return where
    template, *parts = where
    return template.format(*(p.decode("utf-8", errors="replace") if isinstance(p, bytes) else p for p in parts))


def _literals(plan: Plan) -> tuple[list[bytes], list[bytes], list[str], bool]:
    """What a server-side search tests, from the plan: case-insensitive and case-sensitive
    substrings (each in UTF-8 and UTF-16, as the page gate tests them; Lua's string.lower folds
    the ASCII letters of either), whole values, and whether a 32-digit hex run makes a candidate
    (digests)."""
    ci: list[bytes] = []
    cs: list[bytes] = []
    for value, insensitive in plan.patterns:
        text = value.lower() if insensitive else value
        (ci if insensitive else cs).extend(dict.fromkeys((text.encode("utf-8"), utf16_bytes(text))))
    # weak values are named beside proof once the key is read (_Sweeper.gate): not searched here
    return ci, cs, list(plan.typed.proof_text_values), bool(plan.digests)


# ARGV: cursor, count, match, #ci, #cs, #whole, hex?, ci..., cs..., whole...
# Returns {next cursor, keys holding a candidate, keys scanned}. Looser than the Matcher, never
# stricter: every value the prefilter would pass, this passes (the key is then read and matched).
_LUA_SEARCH = """
local cursor, count, match = ARGV[1], ARGV[2], ARGV[3]
local nci, ncs, nwhole, hex = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1'
local ci, cs, whole = {}, {}, {}
local i = 8
for _ = 1, nci do ci[#ci + 1] = ARGV[i]; i = i + 1 end
for _ = 1, ncs do cs[#cs + 1] = ARGV[i]; i = i + 1 end
for _ = 1, nwhole do whole[ARGV[i]] = true; i = i + 1 end
local hexrun = string.rep('%x', 32)
local function hit(v)
  if type(v) ~= 'string' or v == '' then return false end
  if whole[v] then return true end
  -- a zlib or gzip header in the first bytes: the client inflates and searches it (_inflate)
  local head = string.sub(v, 1, 8)
  if string.find(head, '\\120[\\1\\94\\156\\218]') or string.find(head, '\\31\\139\\8', 1, true) or string.find(head, '\\40\\181\\47\\253', 1, true) or string.find(head, '\\4\\34\\77\\24', 1, true) then return true end
  local lower = nil
  for _, p in ipairs(ci) do
    lower = lower or string.lower(v)
    if string.find(lower, p, 1, true) then return true end
  end
  for _, p in ipairs(cs) do
    if string.find(v, p, 1, true) then return true end
  end
  for w, _ in pairs(whole) do
    if string.find(v, w, 1, true) then return true end
  end
  if hex and string.find(v, hexrun) then return true end
  return false
end
local function any(list)
  for _, v in ipairs(list) do if hit(v) then return true end end
  return false
end
local args = {'SCAN', cursor, 'COUNT', count}
if match ~= '*' then args[#args + 1] = 'MATCH'; args[#args + 1] = match end
local page = redis.call(unpack(args))
local found = {}
for _, key in ipairs(page[2]) do
  local t = redis.call('TYPE', key)['ok']
  local yes = hit(key)
  if not yes then
    if t == 'string' then yes = hit(redis.call('GET', key))
    elseif t == 'hash' then yes = any(redis.call('HGETALL', key))
    elseif t == 'list' then yes = any(redis.call('LRANGE', key, 0, -1))
    elseif t == 'set' then yes = any(redis.call('SMEMBERS', key))
    elseif t == 'zset' then yes = any(redis.call('ZRANGE', key, 0, -1))
    elseif t == 'stream' then
      for _, e in ipairs(redis.call('XRANGE', key, '-', '+')) do
        if any(e[2]) then yes = true; break end
      end
    else yes = t ~= 'none' end
  end
  if yes then found[#found + 1] = key end
end
return {page[1], found, #page[2]}
"""
