"""Residual-data sweep: find subjects' values, in any form, in every place a store keeps data.

One contract for every kind of store: ``sweep(stores, needles)`` returns the hits (store,
location, key, field, form) and what could not be swept. Each kind lives in its own module,
chosen by the store's URL scheme (``KINDS``); a store given as ``files`` globs is swept by
``files``. A kind module exposes ``sweep_store(store, plan, timeout_s, result)`` and is imported
only when a profile names a store of that kind, so a driver nobody uses is never required.

| kind    | module     | URL schemes                                                  |
|---------|------------|--------------------------------------------------------------|
| sql     | `sql.py`   | any SQLAlchemy URL (sqlite, postgresql, mysql, ...)          |
| files   | `files.py` | none: the store gives `files` globs                          |
| redis   | `redis.py` | `redis://`, `rediss://`                                      |
| s3      | `s3.py`    | `s3://bucket/prefix` (any S3-compatible endpoint)            |
| lake    | `lake.py`  | none: the store gives `lake` globs (Parquet, CSV, JSON Lines) |
| spark   | `spark.py` | `spark://` (a master), `sc://` (Spark Connect), `local[N]`   |
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Collection, Sequence

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import Needle, check_forms

from .base import Hit, Plan, StoreSpec, SweepResult, Timing, Unswept
from .progress import Budget

__all__ = [
    "Hit",
    "KINDS",
    "StoreSpec",
    "SweepResult",
    "Timing",
    "Unswept",
    "kind_of",
    "sweep",
    "text_expression",
]

# URL scheme (before any "+driver") -> kind module. Anything else is a SQLAlchemy URL.
KINDS: dict[str, str] = {"redis": "redis", "rediss": "redis", "s3": "s3", "spark": "spark", "sc": "spark"}
_DEFAULT_KIND = "sql"
# Spark's own names for a master on this machine: "local", "local[4]", "local[*]", "local[2,3]".
_SPARK_LOCAL = re.compile(r"^local(\[[0-9*]+(,[0-9]+)?\])?$")
# kind -> (the package it imports, how to install it)
_PACKAGES = {
    "redis": ("redis", "pip install redis"),
    "s3": ("boto3", "pip install boto3"),
    "lake": ("duckdb", "pip install duckdb"),
    "spark": ("pyspark", "pip install 'privacy-checks[spark]'"),
}


def kind_of(store: StoreSpec) -> str:
    """The module (kind) that sweeps ``store``."""
    if store.lake is not None:
        return "lake"
    if store.url is None:
        return "files"
    if _SPARK_LOCAL.match(store.url.strip()):
        return "spark"
    scheme = store.url.split(":", 1)[0].split("+", 1)[0].lower()
    return KINDS.get(scheme, _DEFAULT_KIND)


def _module(kind: str, store: StoreSpec | None = None):
    try:
        return importlib.import_module(f"{__name__}.{kind}")
    except ModuleNotFoundError as e:
        package, install = _PACKAGES.get(kind, (e.name, f"pip install {e.name}"))
        if e.name != package:
            raise
        name = f"store {store.name!r}" if store else "a store"
        raise StoreError(f"{name} is a {kind} store, which needs the Python package {package!r}, "
                         f"not installed here: {install}") from None


def sweep(
    stores: Sequence[StoreSpec],
    needles: Sequence[Needle],
    *,
    timeout_s: float = 60,
    forms: Collection[str] | None = None,
    budget_s: float | None = None,
) -> SweepResult:
    """Search every store for every needle in every form (or only ``forms``).

    ``timeout_s`` bounds each statement (and each connection attempt). A store that cannot be
    reached raises ``StoreError``; a table, column or file that cannot be read is listed in
    ``unswept``. Nothing is written anywhere. ``budget_s`` (default: the profile's
    ``timeouts.sweep``, see progress.py) bounds the whole call: what it does not reach is unswept.
    """
    plan = Plan(list(needles), check_forms(forms))
    result = SweepResult()
    result.budget = Budget.current(budget_s)
    for store in stores:
        if result.budget.exceeded() and kind_of(store) != "sql":  # a database names its tables itself
            result.unswept.append(Unswept(store.name, "(every table, file and key)", result.budget.reason()))
            continue
        t0 = time.perf_counter()
        limit = timeout_s
        if result.budget.seconds is not None:  # no statement outlives the budget
            limit = max(1.0, min(timeout_s, result.budget.seconds - result.budget.elapsed()))
        _module(kind_of(store), store).sweep_store(store, plan, limit, result)
        result.timings.append(Timing(store.name, None, time.perf_counter() - t0))
    from privacy_checks import coverage

    coverage.note_sweep(stores, result)  # the run's scope, as the compliance report lists it
    return result


def text_expression(*args, **kwargs):
    """The column as text, as the SQL sweep reads it (see ``sql.text_expression``)."""
    from .sql import text_expression as impl

    return impl(*args, **kwargs)
