"""Wall time of the suites against the demo: serial against pytest-xdist, and per subject.

1. `pytest suites` (every suite, the built-in demo, clean) serially and with `-n 2` / `-n 4`;
   each worker drives its own demo, the controller runs the one capture sink.
2. One check that creates N subjects, has each act and sweeps all stores once for all of them
   (benchmarks/scale_check.py), for N = 1, 10, 50: how a check's time grows with its subjects.

    python benchmarks/suite.py                  # everything, one repetition
    python benchmarks/suite.py --workers 1 4 --subjects 1 10 --repeat 2

Every run's per-check outcomes are compared with the serial run's: a faster run that
disagrees is reported as such, not as a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# As a user's machine would: with cached bytecode (a machine that sets PYTHONDONTWRITEBYTECODE
# would otherwise charge every run the package's compilation).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
QUIET = ["-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--no-privacy-allure"]


def _pytest(args: list[str], workdir: Path, env: dict | None = None, timeout: float = 1800) -> tuple[float, dict]:
    results = workdir / "results.json"
    argv = [sys.executable, "-m", "pytest", *args, *QUIET, f"--privacy-results={results}",
            f"--privacy-reports={workdir / 'reports'}", f"--ledger=sqlite:///{workdir / 'ledger.sqlite'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**CHILD_ENV, **(env or {})})
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pytest {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    data = json.loads(results.read_text()) if results.exists() else {"checks": []}
    return wall, {c["check_id"]: c["outcome"] for c in data["checks"]}


def suites(workers: list[int], repeat: int) -> list[tuple[str, float, float, str]]:
    rows = []
    baseline = None
    reference: dict | None = None
    for n in workers:
        walls = []
        outcomes: dict = {}
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp:
                args = ["suites"] + (["-n", str(n)] if n > 1 else [])
                wall, outcomes = _pytest(args, Path(tmp))
                walls.append(wall)
        wall = statistics.median(walls)
        reference = reference if reference is not None else outcomes
        baseline = baseline or wall
        agree = "same outcomes" if outcomes == reference else f"DIFFERENT outcomes: {_diff(reference, outcomes)}"
        passed = sum(1 for o in outcomes.values() if o == "passed")
        rows.append((f"suites, {'serial' if n == 1 else f'-n {n}'}", wall, baseline / wall,
                     f"{len(outcomes)} checks, {passed} passed; {agree}"))
        print(f"  {rows[-1][0]}: {wall:.1f} s", flush=True)
    return rows


def _diff(a: dict, b: dict) -> str:
    return ", ".join(f"{k}: {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def subjects(counts: list[int], repeat: int) -> list[tuple[str, float, float, str]]:
    rows = []
    base = None
    for n in counts:
        samples = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="pc-bench-") as tmp:
                out = Path(tmp) / "phases.json"
                wall, outcomes = _pytest(["benchmarks/scale_check.py"], Path(tmp),
                                         env={"PRIVACY_CHECKS_BENCH_SUBJECTS": str(n),
                                              "PRIVACY_CHECKS_BENCH_OUT": str(out)})
                if not out.exists():
                    raise SystemExit(f"the {n}-subject check did not finish (outcomes {outcomes})")
                data = json.loads(out.read_text())
                samples.append({**data["phases"], **{f"sweep {k}": v for k, v in data["sweep_by_store"].items()}})
        phases = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        check = sum(v for k, v in phases.items() if k in ("create", "act", "sweep", "cleanup"))
        base = base or check
        detail = ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if k != "start" and not k.startswith("sweep "))
        detail += " (sweep by store: " + ", ".join(f"{k[6:]} {v:.2f}" for k, v in phases.items()
                                                  if k.startswith("sweep ")) + ")"
        rows.append((f"one check, {n} subject(s)", check, check / base,
                     f"{check / n * 1000:.0f} ms/subject; {detail}"))
        print(f"  {rows[-1][0]}: {check:.2f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="1 = serial (the baseline)")
    ap.add_argument("--subjects", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (median reported)")
    args = ap.parse_args(argv)
    print(f"privacy-checks suite benchmark: {os.cpu_count()} CPU(s), python {sys.version.split()[0]}", flush=True)
    rows = suites(sorted(set(args.workers)), args.repeat) + subjects(sorted(set(args.subjects)), args.repeat)
    print()
    print(f"{'measurement':30} {'seconds':>8} {'ratio':>7}  notes")
    for label, seconds, ratio, note in rows:
        print(f"{label:30} {seconds:8.2f} {ratio:7.2f}  {note}")
    print("\nratio: suites = serial time / this time (speed-up); one check = this time / the 1-subject time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
