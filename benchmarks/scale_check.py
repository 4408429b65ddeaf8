"""Benchmark-only check (run by benchmarks/suite.py): N subjects per check, one sweep for all.

Creates PRIVACY_CHECKS_BENCH_SUBJECTS subjects through the target, has each act, sweeps every
store once for all of them, and writes the time of each phase to PRIVACY_CHECKS_BENCH_OUT.
Not a privacy check: it cites no clause and is never collected from suites/.
"""

from __future__ import annotations

import json
import os
import time

from privacy_checks.observe.stores import sweep
from privacy_checks.runtime import store_specs


def test_many_subjects_act_and_are_all_found_in_one_sweep(privacy_run):
    n = int(os.environ.get("PRIVACY_CHECKS_BENCH_SUBJECTS", "1"))
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    privacy_run.profile  # noqa: B018 - start the demo outside the measured phases
    phases["start"] = time.perf_counter() - t0
    start = len(privacy_run.created)
    try:
        t0 = time.perf_counter()
        subjects = [privacy_run.create_subject("bench", role="subject") for _ in range(n)]
        phases["create"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in subjects:
            privacy_run.target.run("activity", s)
        phases["act"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        needles = [needle for s in subjects for needle in s.needles(s.strong_fields())]
        result = sweep(store_specs(privacy_run.profile), needles)
        phases["sweep"] = time.perf_counter() - t0
        stores = {t.store: round(t.seconds, 3) for t in result.timings if t.where is None}
        found = {h.subject_id for h in result.hits}
        assert found == {s.id for s in subjects}, f"{n - len(found)} subject(s) not found by the sweep"
    finally:
        t0 = time.perf_counter()
        errors = privacy_run.remove_created_since(start)
        phases["cleanup"] = time.perf_counter() - t0
    assert not errors, errors
    out = os.environ.get("PRIVACY_CHECKS_BENCH_OUT")
    if out:
        with open(out, "w") as fh:
            json.dump({"subjects": n, "phases": phases, "sweep_by_store": stores}, fh)
