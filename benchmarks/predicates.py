"""What each SQLite predicate of the residual sweep costs, one at a time, against the floor.

Builds ``--rows`` rows of benchmarks/sweep.py's data (50 subjects planted in every form) in a
SQLite file, then times, per table and OR-ed over every text column, each candidate predicate
against the floor (``length(coalesce(c, ''))`` per column), paired round by round as sweep.py
does. It answers "what does one more test per column cost", which decides how close the sweep
can get to the floor:

    python benchmarks/predicates.py                 # 300,000 rows, 7 rounds
    python benchmarks/predicates.py --sweep-tests --db sqlite,postgres   # the sweep's own tests
    python benchmarks/predicates.py --typed --db sqlite,postgres   # what a typed column's test can cost

With ``--typed`` the tables gain sweep.py's eight typed columns (the floor reads them too, as
sweep.py's does) and every variant is the literal's test on the text columns OR one test per typed
column; "adds" is that variant's multiple of the floor minus the literal alone's, which is what
issue 15's "typed part" measures. The cheapest reads of a column (``IS NULL``, one comparison)
give the least any per-row test of the typed columns can add, whatever it compares.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep as bench  # noqa: E402

from privacy_checks.observe.forms import LITERAL  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--typed", action="store_true", help="the typed columns' tests (issue 15)")
    ap.add_argument("--sweep-tests", action="store_true",
                    help="the sweep's own text-column tests: the literal, beside one comparison, all forms")
    ap.add_argument("--db", default="sqlite",
                    help="with --typed or --sweep-tests: sqlite, postgres or both (comma-separated)")
    args = ap.parse_args(argv)
    if args.typed:
        return typed_main(args)
    if args.sweep_tests:
        return sweep_tests_main(args)
    rng = random.Random(7)
    subjects = bench.make_subjects(50, rng)
    sizes = bench.sizes_for(args.rows)
    plants, _ = bench.plan_plants(subjects, sizes, rng)
    whole = [s["phone"] for s in subjects]
    for s in subjects:
        for f in ("full_name", "email", "username"):
            for kind in ("md5", "sha1", "sha256"):
                digest = hashlib.new(kind, s[f].encode()).hexdigest()
                whole += [digest, digest.upper()]
    listed = ",".join(f"'{w}'" for w in whole)
    digests = ",".join(f"'{w}'" for w in whole if len(w) >= 32)
    phones = ",".join(f"'{s['phone']}'" for s in subjects)
    gate = "((1 << length(CAST({c} AS BLOB)) - 11) & 9007199793709057) != 0"  # 11, 32, 40, 64 bytes
    digest_gate = "((1 << length(CAST({c} AS BLOB)) - 32) & 4294967553) != 0"  # 32, 40, 64 bytes
    variants = {
        f"LIKE '%{LITERAL}%'": lambda c: f"{c} LIKE '%{LITERAL}%'",
        f"GLOB '*{LITERAL}*'": lambda c: f"{c} GLOB '*{LITERAL}*'",
        f"instr(c, '{LITERAL}')": lambda c: f"instr({c}, '{LITERAL}') > 0",
        "length gate + whole list": lambda c: f"{gate.format(c=c)} AND {c} IN ({listed})",
        f"whole list ({len(whole)} values) alone": lambda c: f"{c} IN ({listed})",
        "LIKE + length gate + whole list": lambda c: f"{c} LIKE '%{LITERAL}%' OR {gate.format(c=c)} AND {c} IN ({listed})",
        "LIKE + whole list, no gate": lambda c: f"{c} LIKE '%{LITERAL}%' OR {c} IN ({listed})",
        "LIKE + digest gate + digests only": lambda c: f"{c} LIKE '%{LITERAL}%' OR {digest_gate.format(c=c)} AND {c} IN ({digests})",
        "digest gate alone": lambda c: f"{digest_gate.format(c=c)}",
        # the least a second test per column can cost: one comparison, no function call
        "LIKE + one comparison": lambda c: f"{c} LIKE '%{LITERAL}%' OR {c} = 'zzzz'",
        "GLOB + one equality": lambda c: f"{c} GLOB '*{LITERAL}*' OR {c} = '{subjects[0]['phone']}'",
        "GLOB + 50 phones, no gate": lambda c: f"{c} GLOB '*{LITERAL}*' OR {c} IN ({phones})",
    }
    with tempfile.TemporaryDirectory(prefix="pcq-pred-") as tmp:
        path = Path(tmp) / "p.db"
        bench.build_sqlite(path, sizes, plants, 7)
        db = sqlite3.connect(path)
        tables = {t: cols for t, (_, cols) in bench.TABLES.items()}
        floor = [f"SELECT count(*) FROM {t} WHERE " + " + ".join(f"length(coalesce({c}, ''))" for c in cols) + " < 0"
                 for t, cols in tables.items()]

        def timed(queries: list[str]) -> tuple[float, int]:
            t0 = time.perf_counter()
            n = sum(db.execute(q).fetchone()[0] for q in queries)
            return time.perf_counter() - t0, n

        ratios: dict[str, list[float]] = {k: [] for k in variants}
        rows: dict[str, int] = {}
        for _ in range(args.repeat):
            for name, pred in variants.items():
                f, _ = timed(floor)
                t, rows[name] = timed([f"SELECT count(*) FROM {t} WHERE " + " OR ".join(pred(c) for c in cols)
                                       for t, cols in tables.items()])
                ratios[name].append(t / f)
        db.close()
    print(f"{args.rows} rows, 11 text columns, SQLite {sqlite3.sqlite_version}; median of {args.repeat} paired rounds")
    print(f"{'predicate (per column, OR-ed)':44} {'x floor':>8} {'rows':>6}")
    for name, values in ratios.items():
        print(f"{name:44} {statistics.median(values):8.2f} {rows[name]:6}")
    return 0


def _database(db: str, tmp: Path, sizes, plants, typed: bool, stops: list) -> str:
    """sweep.py's rows in a fresh SQLite file or throwaway PostgreSQL cluster; its URL."""
    if db == "sqlite":
        return bench.build_sqlite(tmp / "p.db", sizes, plants, 7, typed=typed)
    if db == "postgres":
        url, stop = bench.start_throwaway_cluster(tmp)
        stops.append(stop)
        bench.build_postgres(url, sizes, plants, 7, typed=typed)
        return url
    raise SystemExit(f"unknown --db {db!r}")


def _paired(engine, floor_fn, statements: dict[str, list[str]], repeat: int):
    """Each variant's multiple of the floor (a floor run right before it, round by round) and
    the rows it selects; the connection set up as the sweep sets its own (sql.sweep_session)."""
    from privacy_checks.observe.stores.sql import sweep_session

    ratios: dict[str, list[float]] = {k: [] for k in statements}
    rows: dict[str, int] = {}
    with engine.connect() as conn:
        sweep_session(conn)

        def timed(queries: list[str]) -> tuple[float, int]:
            t0 = time.perf_counter()
            n = sum(conn.exec_driver_sql(q).scalar_one() for q in queries)
            return time.perf_counter() - t0, n

        timed(list(statements.values())[-1])  # warm the caches
        for _ in range(repeat):
            for name, queries in statements.items():
                t0 = time.perf_counter()
                floor_fn()
                f = time.perf_counter() - t0
                t, rows[name] = timed(queries)
                ratios[name].append(t / f)
    return {k: statistics.median(v) for k, v in ratios.items()}, rows


def sweep_tests_main(args: argparse.Namespace) -> int:
    """The sweep's own text-column tests (sql._predicate, rendered as the sweep renders them) on
    each --db: the literal alone (exact forms), the same beside one plain comparison, and all
    forms (the literal beside the digests' whole-value test), against the floor."""
    import sqlalchemy as sa

    from privacy_checks.observe.forms import check_forms
    from privacy_checks.observe.stores.base import Plan

    rng = random.Random(7)
    subjects = bench.make_subjects(50, rng)
    sizes = bench.sizes_for(args.rows)
    plants, _ = bench.plan_plants(subjects, sizes, rng)
    needles = bench.needles_of(subjects)
    plans = {"exact": Plan(needles, ("exact",)), "all": Plan(needles, check_forms(None))}
    results = []
    stops: list = []
    with tempfile.TemporaryDirectory(prefix="pcq-pred-") as tmp:
        try:
            for db in args.db.split(","):
                engine = sa.create_engine(_database(db, Path(tmp), sizes, plants, False, stops))
                statements = _sweep_test_statements(engine, plans)
                ratios, rows = _paired(engine, bench.floor_query(engine), statements, args.repeat)
                engine.dispose()
                results.append((db, ratios, rows))
        finally:
            for stop in stops:
                stop()
    print(f"{args.rows} rows, 11 text columns, 50 subjects planted in every form; median of {args.repeat} "
          f"paired rounds; the sweep's own tests per column, OR-ed")
    print(f"{'db':9} {'test per text column':44} {'x floor':>8} {'rows':>6}")
    for db, ratios, rows in results:
        for name, ratio in ratios.items():
            print(f"{db:9} {name:44} {ratio:8.2f} {rows[name]:6}")
    return 0


def _sweep_test_statements(engine, plans) -> dict[str, list[str]]:
    import sqlalchemy as sa

    from privacy_checks.observe.stores import sql

    dialect = engine.dialect
    meta = sa.MetaData()
    meta.reflect(engine)

    def test(col: sa.Column, plan) -> sa.ColumnElement:
        c = sql._Column(col.name, sql._classify(dialect, col.type), col.type)
        c.column = col
        return sql._predicate(dialect, c, plan)

    variants = {
        "the literal (exact forms)": lambda col: test(col, plans["exact"]),
        "the literal + one comparison": lambda col: sa.or_(test(col, plans["exact"]),
                                                            sql.text_expression(dialect, col) == "zzzz"),
        "all forms (the literal + digests)": lambda col: test(col, plans["all"]),
    }
    return {name: [str(sa.select(sa.func.count()).select_from(t).where(
                       sa.or_(*(make(c) for c in t.columns if c.name != "id"))).compile(
                           dialect=dialect, compile_kwargs={"literal_binds": True})) for t in meta.sorted_tables]
            for name, make in variants.items()}


def typed_main(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from privacy_checks.observe.stores import sql_typed, text_expression
    from privacy_checks.observe.typed import TypedPlan

    rng = random.Random(7)
    subjects = bench.make_subjects(50, rng)
    sizes = bench.sizes_for(args.rows)
    typed = bench.typed_values(subjects, random.Random("7-typed"))
    plants, _ = bench.plan_plants(subjects, sizes, rng, typed)
    plans = {n: TypedPlan(bench.typed_needles_of(subjects[:n], typed)) for n in (1, 50)}
    typed_names = {c for cols in bench.TYPED_COLUMNS.values() for c, _ in cols}
    # a value of the column's own type that no row holds: one comparison, nothing else
    sentinels = ((sa.Integer, -1), (sa.Numeric, Decimal(-1)), (sa.DateTime, datetime(1, 1, 1)), (sa.Date, date(1, 1, 1)))

    def sentinel(col: sa.Column):
        return next(v for t, v in sentinels if isinstance(col.type, t))

    def lists(dialect, col: sa.Column, n: int):
        fam = sql_typed.family(dialect, col.type)
        # the test the sweep gives the column (sql_typed.predicate): SQLite's one list of every
        # family's values, or PostgreSQL's list of the column's own family
        return sql_typed.predicate(dialect, col, sql_typed.TypedColumn(col.name, fam, col.type), plans[n])

    def list_size(dialect, n: int, col: sa.Column) -> int:
        return len(lists(dialect, col, n).right.values)

    ops = {
        "literal only (no typed test)": None,
        "+ t IS NULL": lambda d, c: c.is_(None),
        "+ t = one value (one comparison)": lambda d, c: c == sa.literal(sentinel(c), c.type),
        "+ t IN (the sweep's list, 1 subject)": lambda d, c: lists(d, c, 1),
        "+ t IN (the sweep's list, 50 subjects)": lambda d, c: lists(d, c, 50),
    }

    def literal_test(dialect, text):
        # the same for every variant: what the typed tests add is the point (SQLite's LIKE ignores
        # ASCII case; PostgreSQL's does not)
        if dialect.name == "sqlite":
            return text.contains(LITERAL)
        return sa.func.strpos(sa.func.lower(text), LITERAL) > 0

    def measure(url: str):
        engine = sa.create_engine(url)
        dialect = engine.dialect
        meta = sa.MetaData()
        meta.reflect(engine)
        # the typed columns the sweep compares (PostgreSQL compares none for a family whose values
        # prove nothing alone: the birth date's DATE column)
        tested = [c for t in meta.sorted_tables for c in t.columns
                  if c.name in typed_names and lists(dialect, c, 50) is not None]
        statements = {}
        for name, op in ops.items():
            statements[name] = []
            for table in meta.sorted_tables:
                tests = [literal_test(dialect, text_expression(dialect, c)) for c in table.columns
                         if c.name != "id" and c.name not in typed_names]
                tests += [op(dialect, c) for c in table.columns if op and c in tested]
                query = sa.select(sa.func.count()).select_from(table).where(sa.or_(*tests))
                statements[name].append(str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})))
        sizes_of = {n: sorted({list_size(dialect, n, c) for c in tested}) for n in (1, 50)}
        ratios, rows = _paired(engine, bench.floor_query(engine), statements, args.repeat)
        engine.dispose()
        return ratios, rows, sizes_of, len(tested)

    stops: list = []
    results = []
    with tempfile.TemporaryDirectory(prefix="pcq-pred-") as tmp:
        try:
            for db in args.db.split(","):
                results.append((db, *measure(_database(db, Path(tmp), sizes, plants, True, stops))))
        finally:
            for stop in stops:
                stop()
    n_typed = sum(len(c) for c in bench.TYPED_COLUMNS.values())
    print(f"{args.rows} rows, 11 text and {n_typed} typed columns (floor: each read once, as sweep.py's); "
          f"median of {args.repeat} paired rounds; 'adds' = the multiple minus the literal alone's")
    print(f"{'db':9} {'text columns: the literal; typed columns:':44} {'x floor':>8} {'adds':>6} {'rows':>6}")
    for db, ratios, rows, sizes_of, tested in results:
        base = ratios["literal only (no typed test)"]
        for name, ratio in ratios.items():
            print(f"{db:9} {name:44} {ratio:8.2f} {ratio - base:6.2f} {rows[name]:6}")
        print(f"{db:9} {tested} typed columns tested; list sizes: 1 subject {sizes_of[1]}, 50 subjects {sizes_of[50]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
