"""Storage residue scan (observe/stores/sqlite_residue.py): cost against the SQL sweep and the floor.

Builds a SQLite database in WAL mode with secure_delete off: ``--rows`` rows of six text
columns (letters, base64 and hex mixed in), ``--subjects`` subjects' canaries planted (as written,
upper-cased and base64), then deletes half the subjects and checkpoints. Measures, best of
``--repeat``: the floor (one SELECT reading every text column), the residual sweep of the store
(observe.stores.sweep, every form) and the raw scan of the database file and its -wal; checks
that the raw scan finds every deleted subject and every live one.

    python benchmarks/storage_residue.py                     # 200k rows
    python benchmarks/storage_residue.py --rows 2000000
"""

from __future__ import annotations

import argparse
import base64
import random
import sqlite3
import string
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from privacy_checks.observe.forms import MARKER, Needle, canary_needles  # noqa: E402
from privacy_checks.observe.stores import StoreSpec, sweep  # noqa: E402
from privacy_checks.observe.stores.sqlite_residue import scan  # noqa: E402

COLUMNS = ("name", "email", "note", "payload", "digest", "city")


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 10)))


def _row(rng: random.Random) -> tuple:
    return (f"{_word(rng).title()} {_word(rng).title()}", f"{_word(rng)}@{_word(rng)}.example",
            " ".join(_word(rng) for _ in range(rng.randint(4, 14))),
            base64.b64encode(rng.randbytes(rng.randint(12, 60))).decode(), rng.randbytes(16).hex(), _word(rng))


def build(path: Path, rows: int, subjects: int, seed: int) -> tuple[list[list[Needle]], list[str]]:
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute(f"CREATE TABLE people (id INTEGER PRIMARY KEY, owner TEXT, {', '.join(c + ' TEXT' for c in COLUMNS)})")
    conn.execute("BEGIN")
    batch = [(None, *_row(rng)) for _ in range(rows)]
    conn.executemany(f"INSERT INTO people VALUES (NULL, {', '.join('?' * (len(COLUMNS) + 1))})", batch)
    needles, ids = [], []
    for s in range(subjects):
        sid = f"s{s}"
        token = MARKER + rng.choice(string.ascii_lowercase) + "".join(
            rng.choice(string.ascii_lowercase + "234567") for _ in range(9))
        name, email = f"Ada {token}", f"ada.{token}@example.com"
        conn.execute("INSERT INTO people (owner, name, email, note, payload) VALUES (?, ?, ?, ?, ?)",
                     (sid, name, email.upper(), f"wrote {token} here",
                      base64.b64encode(f"{{\"email\": \"{email}\"}}".encode()).decode()))
        needles.append([Needle(sid, "full_name", name), Needle(sid, "email", email), *canary_needles(sid, [token])])
        ids.append(sid)
    conn.execute("COMMIT")
    deleted = ids[::2]
    conn.executemany("DELETE FROM people WHERE owner = ?", [(d,) for d in deleted])
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    conn.close()
    return needles, deleted


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--subjects", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        needles, deleted = build(path, args.rows, args.subjects, args.seed)
        flat = [n for group in needles for n in group]
        spec = StoreSpec("bench", url=f"sqlite:///{path}")
        sizes = {p.name: p.stat().st_size for p in Path(tmp).iterdir()}

        def floor():
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                return conn.execute(f"SELECT {', '.join(f'max(length({c}))' for c in COLUMNS)} FROM people").fetchone()

        t_floor, _ = best(floor, args.repeat)
        t_sweep, result = best(lambda: sweep([spec], flat), args.repeat)
        t_scan, found = best(lambda: scan(spec, flat), args.repeat)
        # as the deletion procedure scans: the deleted subject, the control and the barrier
        t_three, _ = best(lambda: scan(spec, needles[0] + needles[1] + needles[3]), args.repeat)
        live = {n[0].subject_id for n in needles} - set(deleted)
        # what the files really still hold: a deleted row SQLite rewrote a page over is gone
        raw_bytes = b"".join(p.read_bytes() for p in Path(tmp).iterdir()).lower()
        held = {n.subject_id for n in flat if n.field == "canary" and n.value.encode() in raw_bytes}
        raw = found.subjects()
        sql = {h.subject_id for h in result.hits}
        print(f"rows {args.rows:,}, subjects {args.subjects} ({len(deleted)} deleted); files: "
              + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))
        print(f"floor (one read of every text column)   {t_floor * 1000:9.1f} ms")
        print(f"SQL sweep (every form)                   {t_sweep * 1000:9.1f} ms  {t_sweep / t_floor:5.2f}x floor")
        print(f"raw scan (database + -wal)               {t_scan * 1000:9.1f} ms  {t_scan / t_floor:5.2f}x floor  "
              f"{t_scan / t_sweep:5.2f}x SQL sweep  (every subject's needles)")
        print(f"raw scan, 3 subjects' needles            {t_three * 1000:9.1f} ms  {t_three / t_floor:5.2f}x floor  "
              f"{t_three / t_sweep:5.2f}x SQL sweep  (as the deletion procedure runs it)")
        print(f"SQL returns: {len(sql & live)}/{len(live)} live, {len(sql & set(deleted))}/{len(deleted)} deleted; "
              f"raw scan sees: {len(raw & live)}/{len(live)} live, {len(raw & set(deleted))}/{len(deleted)} deleted "
              f"({len(held & set(deleted))} still in the files' bytes; {len(found.found)} copies decoded)")
        if raw != held:
            sys.exit(f"recall: the scan saw {sorted(raw)}, the files hold {sorted(held)}")


if __name__ == "__main__":
    main()
