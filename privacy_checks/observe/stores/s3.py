"""S3-compatible object storage (``s3://bucket/prefix``): object keys and contents, every version.

Objects are listed with ``ListObjectVersions``: in a versioned bucket a deleted object's older
versions, and an overwritten object's earlier ones, still hold what they held, and each is a
finding of its own naming key and version id (a delete marker hides an object from a plain
listing, not from the bucket). Contents are streamed, never held whole:

- Parquet, CSV, JSON Lines (.jsonl, .ndjson; optionally .gz), by name: through the lake reader (``lake.py``, DuckDB
  with the predicates in its scan), so a finding names the row and column;
- anything else (text, JSON, logs, binaries; gzip by name or magic bytes, bzip2 and xz by magic
  bytes; another compression is unswept): line by line (long
  lines in overlapping pieces) behind the plan's byte prefilter, as file stores are read, so a
  binary is searched for the canary's bytes.

Caps: ``max_object_bytes`` per object version (default 100 MiB) and ``max_store_bytes`` per
sweep (default 10 GiB); what a cap skips is reported unswept, which makes an absence check an
error unless ``exclude_keys`` leaves that prefix out on purpose.

The sweep's time budget (``timeouts.sweep``) is checked between pages of the listing and before
each object version's read starts, and every 4,096 lines inside a text object (a table object is
read to its end): the versions not read are unswept by name, a text object stopped inside says
from which line on, and a listing cut short says after which key it stopped.

Profile keys (besides ``url``): ``endpoint_url``, ``region``, ``access_key_id``,
``secret_access_key``, ``session_token`` (secrets from ``${ENV}`` only; without them boto3's own
chain applies: environment, config files, instance roles), ``include_keys``/``exclude_keys``
(globs on object keys), ``max_object_bytes``, ``max_store_bytes``, ``versions`` (default true;
false lists current objects only, for stores that do not support version listing).
"""

from __future__ import annotations

import fnmatch
import io
import os
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from privacy_checks.errors import StoreError

from .base import (
    Hit,
    Plan,
    StoreSpec,
    SweepResult,
    Timing,
    Unswept,
    hits_in,
    not_reached,
    nothing_to_sweep,
    tested_in_process,
)
from .files import UNREADABLE, OutOfTime, Unreadable
from .progress import Budget

_MiB = 1 << 20
_READERS = 8  # object versions read at the same time


@dataclass
class Options:
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    include_keys: list[str] = field(default_factory=list)
    exclude_keys: list[str] = field(default_factory=list)
    max_object_bytes: int = 100 * _MiB
    max_store_bytes: int = 10 * 1024 * _MiB
    versions: bool = True

    @classmethod
    def of(cls, store: StoreSpec) -> Options:
        unknown = sorted(set(store.options) - set(cls.__dataclass_fields__))
        if unknown:
            raise StoreError(f"store {store.name!r}: unknown S3 setting(s) {', '.join(unknown)}")
        return cls(**store.options)


def bucket_and_prefix(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.netloc, parts.path.lstrip("/")


def client(store: StoreSpec, timeout_s: float, opts: Options | None = None):
    opts = opts or Options.of(store)
    config = Config(connect_timeout=min(timeout_s, 10), read_timeout=timeout_s,
                    retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("s3", endpoint_url=opts.endpoint_url, region_name=opts.region,
                        aws_access_key_id=opts.access_key_id, aws_secret_access_key=opts.secret_access_key,
                        aws_session_token=opts.session_token, config=config)


def _scrub(message: str, opts: Options) -> str:
    first = message.strip().splitlines()[0] if message.strip() else message
    for secret in (opts.secret_access_key, opts.session_token):
        if secret:
            first = first.replace(secret, "***")
    return first


def _error(store: StoreSpec, opts: Options, action: str, e: Exception) -> StoreError:
    at = f" at {opts.endpoint_url}" if opts.endpoint_url else ""
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        why = f"{err.get('Code', 'error')}: {err.get('Message') or e}"
    else:
        why = f"{type(e).__name__}: {e}"
    return StoreError(f"store {store.name!r}: cannot {action} {store.url}{at}: {_scrub(why, opts)}")


@dataclass
class _Version:
    key: str
    version_id: str | None  # None: an unversioned bucket
    latest: bool
    size: int


def sweep_store(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    """Sweep every object version under the store's prefix into ``result``."""
    opts = Options.of(store)
    assert store.url is not None
    bucket, prefix = bucket_and_prefix(store.url)
    s3 = client(store, timeout_s, opts)
    try:
        versions, cut = _listing(s3, bucket, prefix, opts, result.budget)
    except (ClientError, BotoCoreError) as e:
        raise _error(store, opts, "list", e) from None
    if cut:
        after = f"after {versions[-1].key}" if versions else "(none was listed)"
        result.unswept.append(Unswept(store.name, f"s3://{bucket}/{prefix}: the objects listed {after} (the "
                                      "listing stopped there: how many is unknown)", result.budget.reason()))
    listing = "ListObjectVersions" if opts.versions else "ListObjectsV2"
    result.queries.append(
        f"{store.name}: {listing} Bucket={bucket} Prefix={prefix or '(none)'}, every page ({len(versions)} "
        f"{'versions' if opts.versions else 'objects'}); GetObject of each (streamed; at most {opts.max_object_bytes} "
        f"bytes an object, {opts.max_store_bytes} for the store): keys and text tested in this process for "
        f"{tested_in_process(plan)}, Parquet/CSV/JSON Lines objects searched by DuckDB as a lake store")
    room = opts.max_store_bytes
    reads: list[tuple[_Version, str, str, dict]] = []
    selected = 0
    for v in versions:
        if opts.include_keys and not _matches(opts.include_keys, v.key):
            continue
        if _matches(opts.exclude_keys, v.key):
            continue
        selected += 1
        where = f"s3://{bucket}/{v.key}"
        label = where + (f" (version {v.version_id})" if v.version_id else "")
        row = {"version_id": v.version_id, "latest": v.latest}
        result.hits += hits_in(plan, v.key, store.name, "object", where, "key name", dict(row))
        if v.size > opts.max_object_bytes or v.size > room:
            result.count(store.name, _unit(v))
        if v.size > opts.max_object_bytes:
            result.unswept.append(Unswept(store.name, label, f"{v.size} bytes, larger than max_object_bytes "
                                          f"({opts.max_object_bytes}); exclude_keys can leave it out on purpose"))
            continue
        if v.size > room:
            result.unswept.append(Unswept(store.name, label, f"not read: the store's max_store_bytes "
                                          f"({opts.max_store_bytes}) was reached"))
            continue
        room -= v.size
        reads.append((v, where, label, row))
    if not selected and not cut:
        nothing_to_sweep(result, store.name, f"s3://{bucket}/{prefix}",
                         f"include_keys / exclude_keys leave none of the {len(versions)} object(s) under the prefix"
                         if versions else f"{listing} lists no object under the prefix")
    lake = _SharedLake(plan, timeout_s)

    def read(item: tuple[_Version, str, str, dict]) -> SweepResult:
        v, where, label, row = item
        part = SweepResult(budget=result.budget)
        t0 = time.perf_counter()
        try:
            n = _sweep_object(s3, bucket, v, where, row, store, plan, part, lake)
        except OutOfTime as e:  # inside a text object: its hits before that line stand
            part.unswept.append(Unswept(store.name, f"{label}, from line {e.line} on", result.budget.reason()))
            return part
        except Unreadable as e:
            part.unswept.append(Unswept(store.name, label, str(e)))
            return part
        except (ClientError, BotoCoreError, *UNREADABLE) as e:  # UNREADABLE: corrupt compressed data too
            reason = e.response.get("Error", {}).get("Code") if isinstance(e, ClientError) else type(e).__name__
            part.unswept.append(Unswept(store.name, label, f"unreadable: {reason}: {_scrub(str(e), opts)}"))
            return part
        part.count(store.name, "bytes", v.size)
        part.timings.append(Timing(store.name, label, time.perf_counter() - t0, n))
        return part

    try:
        # Object reads wait on the network: a few at a time (boto3 clients are thread-safe). Each
        # is started only while the sweep's time budget lasts; one started is read to its end.
        parts: list[Future[SweepResult]] = []
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            running: set[Future[SweepResult]] = set()
            for i, item in enumerate(reads):
                if len(running) >= _READERS:
                    _, running = wait(running, return_when=FIRST_COMPLETED)
                if result.budget.exceeded():
                    not_reached(result, store.name, [label for _, _, label, _ in reads[i:]], "object version(s)")
                    break
                result.count(store.name, _unit(item[0]))  # counted once its read starts
                parts.append(pool.submit(read, item))
                running.add(parts[-1])
            for part in (f.result() for f in parts):  # in listing order
                result.hits += part.hits
                result.unswept += part.unswept
                result.timings += part.timings
                for unit, n in part.examined.get(store.name, {}).items():
                    result.count(store.name, unit, n)
    finally:
        lake.close()


class _SharedLake:
    """One lake reader (a DuckDB connection) for the store's table objects, used one at a time."""

    def __init__(self, plan: Plan, timeout_s: float) -> None:
        self.plan, self.timeout_s = plan, timeout_s
        self.lock = threading.Lock()
        self._lake = None

    def get(self):
        from .lake import Lake

        if self._lake is None:
            self._lake = Lake(self.plan, self.timeout_s)
        return self._lake

    def close(self) -> None:
        if self._lake is not None:
            self._lake.__exit__()


def _listing(s3, bucket: str, prefix: str, opts: Options, budget: Budget) -> tuple[list[_Version], bool]:
    """Every object (version) under the prefix, in key order, and whether the sweep's time budget
    ran out between two pages of the listing (the versions listed until then come back)."""
    out: list[_Version] = []
    operation = "list_object_versions" if opts.versions else "list_objects_v2"
    for page in s3.get_paginator(operation).paginate(Bucket=bucket, Prefix=prefix):
        if opts.versions:
            for v in page.get("Versions", []):
                vid = v.get("VersionId")
                out.append(_Version(v["Key"], None if vid in (None, "null") else vid, bool(v.get("IsLatest")),
                                    int(v.get("Size", 0))))
        else:
            out += [_Version(o["Key"], None, True, int(o.get("Size", 0))) for o in page.get("Contents", [])]
        if page.get("IsTruncated") and budget.exceeded():
            return out, True
    return out, False


def _unit(v: _Version) -> str:
    return "objects" if v.latest else "noncurrent versions"


def _matches(patterns: list[str], key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _sweep_object(s3, bucket: str, v: _Version, where: str, row: dict, store: StoreSpec, plan: Plan,
                  result: SweepResult, lake: _SharedLake) -> int:
    from .lake import lake_format

    args: dict[str, Any] = {"Bucket": bucket, "Key": v.key}
    if v.version_id:
        args["VersionId"] = v.version_id
    body = s3.get_object(**args)["Body"]
    try:
        # A .json object is one document, read as text; JSON Lines are a table.
        fmt = None if v.key.lower().removesuffix(".gz").endswith(".json") else lake_format(v.key)
        if fmt is not None:
            return _sweep_table_object(body, v, where, row, store, result, lake, fmt)
        return _sweep_stream(body, v, where, row, store, plan, result)
    finally:
        body.close()


def _sweep_table_object(body, v: _Version, where: str, row: dict, store: StoreSpec, result: SweepResult,
                        lake: _SharedLake, fmt: str) -> int:
    """A Parquet/CSV/JSON Lines object: spooled to a temporary file (DuckDB reads files), then
    read by the lake reader so a finding names row and column."""
    suffix = os.path.basename(v.key)[-20:]
    with tempfile.NamedTemporaryFile(suffix="-" + suffix.replace("/", "_")) as tmp:
        for chunk in iter(lambda: body.read(_MiB), b""):
            tmp.write(chunk)
        tmp.flush()

        def locate(number: int, column: str):
            return "object", where, f"row {number}, column {column}", dict(row)

        label = where + (f" (version {v.version_id})" if v.version_id else "")
        with lake.lock:
            return lake.get().sweep_file(store.name, tmp.name, fmt, result, locate=locate, display=label,
                                         exclude_columns=store.exclude_columns)


class _Raw(io.RawIOBase):
    """botocore's streaming body as a raw stream, so BufferedReader/GzipFile can readline()."""

    def __init__(self, body) -> None:
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _sweep_stream(body, v: _Version, where: str, row: dict, store: StoreSpec, plan: Plan,
                  result: SweepResult) -> int:
    from .files import candidate_lines, decompressed

    stream: Any = decompressed(io.BufferedReader(_Raw(body), 1 << 16), v.key)
    hits: list[Hit] = []
    candidates = 0
    try:
        for number, text in candidate_lines(plan, stream, result.budget):
            candidates += 1
            hits += hits_in(plan, text, store.name, "object", where, f"line {number}", dict(row))
    finally:  # the lines read before an error or the budget's end keep their hits
        result.hits += hits
    return candidates
