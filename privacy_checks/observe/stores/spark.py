"""Spark, for stores that outgrow one machine: the sweep's predicates run as Spark SQL on the
cluster, and only candidate rows come back.

``url`` is where Spark runs: a master (``spark://host:7077``, or ``local[N]`` on this machine) or
a Spark Connect server (``sc://host:15002``). The store names what to sweep: ``tables`` in the
session's catalog and/or ``paths`` (Parquet, CSV with a header, JSON Lines; globs as Spark reads
them). Each is one scan: every string-like column (binary, struct, array and map values as their
text) tested with the plan's substrings (``contains``) and whole values (``isin`` after a byte
length gate, which Spark turns into a hash-set probe); the matching rows are collected and the
Matcher decides. A finding names the table or file, the file a row came from and its row number
where the source says so (Parquet's ``_metadata.row_index``), and the column.

Typed columns (byte to long integers, decimals, float and double, DATE, TIMESTAMP and
TIMESTAMP_NTZ) are compared with the subjects' numbers, dates and instants in the column's own
type (``TypedPlan.compared``), with ``isin`` as for text; an instant column (TIMESTAMP) against
instants built from epoch microseconds and read back as epoch microseconds, so neither the
session's nor this process's time zone shifts it. Text columns meet the typed renderings as
whole values; a card's last four digits count only in a row that also holds the subject's
canary. CSV columns are text (no schema inference), JSON values have the types Spark infers.

Cost: one scan of every named table or path per sweep, run by the cluster's executors. The
session is started once per process and reused by later sweeps (a local JVM takes 10-25 s to
start); ``conf`` passes Spark settings (``spark.executor.memory``...). Local mode binds the
driver to 127.0.0.1 and runs no UI.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from privacy_checks.errors import StoreError

from .base import (
    Hit,
    Plan,
    StoreSpec,
    SweepResult,
    Timing,
    Unswept,
    as_text,
    hits_in,
    last_four_hits,
    matches,
    not_reached,
    typed_hits,
)

_SESSION: dict[str, Any] = {}
_LOCK = threading.Lock()
_MAX_CANDIDATES = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NEVER_SKIP = ("spark.sql.files.ignoreCorruptFiles", "spark.sql.files.ignoreMissingFiles")
_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}


def sweep_store(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    unknown = sorted(set(store.options) - {"tables", "paths", "conf"})
    if unknown:
        raise StoreError(f"store {store.name!r}: unknown Spark setting(s) {', '.join(unknown)}")
    spark = session(store)
    # A cluster (or the profile's conf) may skip files it cannot read without an error; the
    # sweep must hear of them, or their path sweeps clean: its reads never skip.
    for key in _NEVER_SKIP:
        spark.conf.set(key, "false")
    sources = [("table", t) for t in store.options.get("tables") or []]
    sources += [("path", p) for p in store.options.get("paths") or []]
    if not sources:
        raise StoreError(f"store {store.name!r}: name the tables or paths Spark should sweep")
    for i, (kind, name) in enumerate(sources):
        # between sources (one Spark job each): a job started runs to its end or its timeout
        if result.budget.exceeded():
            not_reached(result, store.name, [n for _, n in sources[i:]], "table(s) and path(s)")
            return
        t0 = time.perf_counter()
        try:
            frame = spark.table(name) if kind == "table" else _read(spark, name)
        except Exception as e:  # noqa: BLE001 - AnalysisException and friends: this source cannot be read
            result.unswept.append(Unswept(store.name, name, f"cannot read: {_first_line(e)}"))
            continue
        n = _sweep_frame(spark, store, plan, timeout_s, frame, kind, name, result)
        result.timings.append(Timing(store.name, name, time.perf_counter() - t0, n))


def session(store: StoreSpec):
    """The Spark session for the store's master (started once per process, then reused)."""
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        raise StoreError(f"store {store.name!r} is a spark store, which needs the Python package 'pyspark', "
                         "not installed here: pip install 'privacy-checks[spark]'") from None
    master = (store.url or "").strip()
    conf = {str(k): str(v) for k, v in (store.options.get("conf") or {}).items()}
    wanted = (master, tuple(sorted(conf.items())))
    with _LOCK:
        current = _SESSION.get("spark")
        if current is not None and _SESSION.get("key") == wanted:
            return current
        if current is not None:
            current.stop()
            _SESSION.clear()
        try:
            if master.startswith("sc://"):
                spark = SparkSession.builder.remote(master).getOrCreate()
            else:
                if master.startswith("local"):
                    # before the JVM starts: Spark otherwise picks the machine's external address
                    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
                builder = (SparkSession.builder.master(master).appName("privacy-checks sweep")
                           .config("spark.ui.enabled", "false")
                           .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="pcq-spark-"))
                           .config("spark.sql.shuffle.partitions", "4"))
                if master.startswith("local"):
                    builder = builder.config("spark.driver.host", "127.0.0.1").config(
                        "spark.driver.bindAddress", "127.0.0.1")
                for key, value in conf.items():
                    builder = builder.config(key, value)
                spark = builder.getOrCreate()
                spark.sparkContext.setLogLevel("ERROR")
        except Exception as e:  # noqa: BLE001 - no Java, unreachable master, missing Connect client...
            hint = " (is Java installed? Debian: openjdk-17-jre-headless)" if "java" in str(e).lower() else ""
            raise StoreError(f"store {store.name!r}: cannot start Spark at {master}: {_first_line(e)}{hint}") from None
        _SESSION.update(spark=spark, key=wanted)
        return spark


@atexit.register
def _stop_session() -> None:
    spark = _SESSION.pop("spark", None)
    if spark is not None:
        spark.stop()


def _read(spark, path: str):
    base = path.lower().rstrip("/*")
    base = base[:-3] if base.endswith(".gz") else base
    fmt = next((f for suffix, f in _FORMATS.items() if base.endswith(suffix)), "parquet")
    reader = spark.read
    if fmt == "csv":
        # FAILFAST: by default (PERMISSIVE) Spark drops every field of a row past the header's
        # count without a word, so a value there would sweep clean; failing makes the path unswept.
        reader = reader.option("header", "true").option("mode", "FAILFAST")
    return reader.format(fmt).load(path)


_TEXT_TYPES = ("StringType", "BinaryType", "StructType", "ArrayType", "MapType", "VarcharType", "CharType")
# Spark type -> the family its values are compared in (observe/typed.py); "instant" is TIMESTAMP
# (an instant shown in the session's time zone), "datetime" TIMESTAMP_NTZ (a wall-clock time).
_FAMILY = {**dict.fromkeys(("ByteType", "ShortType", "IntegerType", "LongType"), "int"), "DecimalType": "decimal",
           "FloatType": "float", "DoubleType": "float", "DateType": "date", "TimestampType": "instant",
           "TimestampNTZType": "datetime"}


def _sweep_frame(spark, store: StoreSpec, plan: Plan, timeout_s: float, frame, kind: str, name: str,
                 result: SweepResult) -> int:
    from pyspark.sql import functions as F

    # A column's name is data too: with header on, a headerless CSV's first record is read as the
    # names; a JSON key may be a value (an email keying an object). Found there: row 0.
    for f in frame.schema.fields:
        result.hits += hits_in(plan, f.name, store.name, "row", name, f.name,
                               {"row": 0, "file": None, **({"table": True} if kind == "table" else {})})
    columns = [f.name for f in frame.schema.fields
               if type(f.dataType).__name__ in _TEXT_TYPES and not matches(store.exclude_columns, f.name)]
    typed = [(f.name, _FAMILY[type(f.dataType).__name__]) for f in frame.schema.fields
             if plan.typed and type(f.dataType).__name__ in _FAMILY and not matches(store.exclude_columns, f.name)]
    result.count(store.name, "tables" if kind == "table" else "paths")
    result.count(store.name, "columns", len(columns))
    if plan.typed:
        result.count(store.name, "typed columns", len(typed))
    texts = {c: F.col(f"`{c}`").cast("string") for c in columns}
    preds = [p for p in (_predicate(F, texts[c], plan) for c in columns) if p is not None]
    preds += [p for p in (_typed_predicate(F, F.col(f"`{c}`"), fam, plan) for c, fam in typed) if p is not None]
    if not preds:
        return 0
    result.queries.append(f"{store.name}: {_shown(kind, name, columns, typed, plan)}")
    condition = preds[0]
    for p in preds[1:]:
        condition = condition | p
    position = [F.lit(None).alias("pcq_file"), F.lit(None).alias("pcq_row")]
    try:
        frame.select("_metadata.file_path")  # file sources only
        position = [F.col("_metadata.file_path").alias("pcq_file"), F.lit(None).alias("pcq_row")]
        frame.select("_metadata.row_index")  # Parquet only
        position[1] = F.col("_metadata.row_index").alias("pcq_row")
    except Exception:  # noqa: BLE001 - a source without (some) metadata columns
        pass
    # an instant comes back as epoch microseconds: collect() would give this process's local time
    typed_out = [F.unix_micros(F.col(f"`{c}`")) if fam == "instant" else F.col(f"`{c}`") for c, fam in typed]
    selected = frame.where(condition).select(*position, *[texts[c].alias(f"pcq_{i}") for i, c in enumerate(columns)],
                                             *[t.alias(f"pcq_t{i}") for i, t in enumerate(typed_out)])
    rows = _collect(spark, selected.limit(_MAX_CANDIDATES + 1), timeout_s, store, name, result)
    if rows is None:
        return 0
    if len(rows) > _MAX_CANDIDATES:
        result.unswept.append(Unswept(store.name, name, f"more than {_MAX_CANDIDATES} candidate rows: only the "
                                      "first were matched"))
    hits: list[Hit] = []
    for row in rows[:_MAX_CANDIDATES]:
        file, index = row[0], row[1]
        key: dict[str, Any] = {"row": None if index is None else int(index) + 1, "file": file}
        if kind == "table":
            key["table"] = True
        row_hits: list[Hit] = []
        values: dict[str, Any] = {}
        for i, column in enumerate(columns):
            values[column] = text = as_text(row[2 + i])
            if text:
                row_hits += hits_in(plan, text, store.name, "row", name, column, dict(key))
        for i, (column, fam) in enumerate(typed):
            value = row[2 + len(columns) + i]
            if fam == "instant" and value is not None:
                value = _EPOCH + timedelta(microseconds=value)
            values[column] = value
            row_hits += typed_hits(plan.typed, value, store.name, "row", name, column, dict(key))
        if plan.typed:
            row_hits += last_four_hits(plan.typed, store.name, values, row_hits,
                                       lambda c, k=key: ("row", name, c, dict(k)))
        hits += row_hits
    result.hits += hits
    return len(rows)


def _typed_predicate(F, column, fam: str, plan: Plan):
    """``column IN (the subjects' values of its family)``, the values in the column's own type."""
    if fam == "instant":
        values = [F.timestamp_micros(F.lit((v.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)))
                  for v in plan.typed.compared("datetime")]
    elif fam == "datetime":
        values = [F.lit(v.isoformat(sep=" ")).cast("timestamp_ntz") for v in plan.typed.compared("datetime")]
    else:
        values = plan.typed.compared(fam)
    return column.isin(values) if values else None


def _shown(kind: str, name: str, columns: list[str], typed: list[tuple[str, str]], plan: Plan) -> str:
    """The filter Spark runs, as Spark SQL with the plan's values as ``?``."""
    def text_test(c: str) -> str:
        text = f"CAST(`{c}` AS STRING)"
        tests = [f"contains(lower({text}), ?)" if ci else f"contains({text}, ?)" for _, ci in plan.patterns]
        if plan.whole_values:
            tests.append(f"(octet_length({text}) IN ({', '.join(map(str, plan.whole_octet_lengths))}) AND {text} IN "
                         f"(?, … {len(plan.whole_values)} values))")
        return " OR ".join(tests)

    tests = [t for t in (text_test(c) for c in columns) if t]
    tests += [f"`{c}` IN (?, … {len(plan.typed.compared('datetime' if fam == 'instant' else fam))} {fam} values)"
              for c, fam in typed]
    return f"SELECT _metadata.file_path, _metadata.row_index, … FROM {kind} {name} WHERE " + " OR ".join(tests)


def _predicate(F, text, plan: Plan):
    preds = [F.lower(text).contains(v.lower()) if ci else text.contains(v) for v, ci in plan.patterns]
    if plan.whole_values:
        preds.append(F.octet_length(text).isin(plan.whole_octet_lengths) & text.isin(plan.whole_values))
    if not preds:
        return None
    out = preds[0]
    for p in preds[1:]:
        out = out | p
    return out


def _collect(spark, frame, timeout_s: float, store: StoreSpec, name: str, result: SweepResult):
    """Run the scan, cancelled after ``timeout_s``; None (and unswept) if it failed."""
    group = f"pcq-{uuid.uuid4().hex}"
    cancel = None
    try:
        context = spark.sparkContext
        context.setJobGroup(group, "privacy-checks sweep", interruptOnCancel=True)
        cancel = threading.Timer(timeout_s, context.cancelJobGroup, args=(group,))
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext: interrupt the session instead
        if hasattr(spark, "interruptAll"):
            cancel = threading.Timer(timeout_s, spark.interruptAll)
    if cancel is not None:
        cancel.start()
    t0 = time.monotonic()
    try:
        return frame.collect()
    except Exception as e:  # noqa: BLE001 - a failed or cancelled job leaves this source unproven
        late = time.monotonic() - t0 >= timeout_s
        result.unswept.append(Unswept(store.name, name, f"timed out after {timeout_s:g}s" if late
                                      else f"cannot read: {_first_line(e)}"))
        return None
    finally:
        if cancel is not None:
            cancel.cancel()


def _first_line(e: Exception) -> str:
    """What went wrong, in one line. A job that failed in the JVM comes as py4j's "An error
    occurred while calling o37.collectToPython." over Java's stack: the line under it names the
    error, and the error classes of its causes say why (MALFORMED_CSV_RECORD) — their messages
    are left out, as they quote the stored record."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    lines = text.splitlines()
    first = lines[0]
    if first.startswith("An error occurred while calling") and len(lines) > 1:
        first = re.sub(r"^[:\s]*[\w.$]+(Exception|Error): ", "", lines[1]).strip()
        causes = re.findall(r"^Caused by: [\w.$]+: \[([A-Z_.]+)\]", text, re.MULTILINE)
        if causes:
            first += f" (caused by {', '.join(dict.fromkeys(causes))})"
    return first[:300]
