"""What each SQLite predicate of the residual sweep costs, one at a time, against the floor.

Builds ``--rows`` rows of benchmarks/sweep.py's data (50 subjects planted in every form) in a
SQLite file, then times, per table and OR-ed over every text column, each candidate predicate
against the floor (``length(coalesce(c, ''))`` per column), paired round by round as sweep.py
does. It answers "what does one more test per column cost", which decides how close the sweep
can get to the floor:

    python benchmarks/predicates.py                 # 300,000 rows, 7 rounds
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sweep as bench  # noqa: E402

from privacy_checks.observe.forms import LITERAL  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
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


if __name__ == "__main__":
    raise SystemExit(main())
