"""The benchmark scripts still run and still measure what they claim, on a small scale.

Timings are not asserted (shared, noisy machines); the sweep benchmark's own recall check is:
it exits 1 when a planted canary is not found, so this also proves the sweep's recall on the
benchmark's data in every form.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from pg import PostgresUnavailable, find_bindir

from conftest import ROOT


def _databases() -> list[str]:
    if find_bindir() is not None or os.environ.get("PRIVACY_CHECKS_TEST_PG_URL"):
        return ["sqlite", "postgres"]
    if os.environ.get("CI"):
        raise PostgresUnavailable("CI must run the PostgreSQL half of the benchmark: install postgresql")
    return ["sqlite"]


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_sweep_benchmark_finds_every_planted_canary_and_prints_its_table(tmp_path, db):
    if db not in _databases():
        pytest.skip("PostgreSQL not available: install postgresql or set PRIVACY_CHECKS_TEST_PG_URL")
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--rows", "4000", "--subjects", "3",
         "--repeat", "1", "--db", db, "--skip-slow", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recalls = re.findall(r"recall (\d+)/(\d+)", run.stdout)
    # exact and all forms, for one and for three subjects; each found all it planted
    assert len(recalls) == 8 and all(got == want and int(want) > 0 for got, want in recalls), run.stdout
    assert f"{db:9} floor (read every text column once)" in run.stdout
    assert re.search(rf"{db} +all forms 3 subjects / 1 subject +\d+\.\d\d", run.stdout), run.stdout


def test_the_typed_section_finds_every_planted_typed_value_and_prints_issue_15s_targets(tmp_path):
    """--typed plants card numbers, birth dates, loyalty numbers, amounts and instants in typed
    columns; the sweep must find every one (exit 1 on a miss) and the summary states the targets."""
    db = _databases()[-1]
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--rows", "4000", "--subjects", "3",
         "--repeat", "1", "--db", db, "--skip-slow", "--typed", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recalls = [(int(a), int(b)) for a, b in re.findall(r"recall (\d+)/(\d+)", run.stdout)]
    assert len(recalls) == 8 and all(got == want > 0 for got, want in recalls), run.stdout
    # eight typed values per subject: with typed needles the sweep finds eight more places per subject
    text_only = dict(re.findall(r"sweep all forms, (text only), 3 subjects.*?recall \d+/(\d+)", run.stdout))
    with_typed = dict(re.findall(r"sweep all forms \+ (typed), 3 subjects.*?recall \d+/(\d+)", run.stdout))
    assert int(with_typed["typed"]) == int(text_only["text only"]) + 8 * 3, run.stdout
    assert re.search(rf"{db} +typed values add +-?\d+\.\d\dx the floor +<= 0.3x", run.stdout), run.stdout


def test_the_duckdb_and_redis_sections_find_every_planted_canary_and_print_their_floors(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--rows", "4000", "--keys", "2000", "--subjects",
         "3", "--repeat", "1", "--db", "duckdb,redis", "--skip-slow", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    recalls = re.findall(r"recall (\d+)/(\d+)", run.stdout)
    # DuckDB: exact and all forms for one and three subjects; Redis: the sweep for one and three, and Lua
    assert len(recalls) == 14 and all(got == want and int(want) > 0 for got, want in recalls), run.stdout
    assert "duckdb    floor (read every text column once)" in run.stdout
    assert "redis     floor (SCAN + pipelined read of every value)" in run.stdout
    assert re.search(r"redis +sweep all forms, 3 subjects +\d+\.\d\dx +<= 1.5x", run.stdout), run.stdout


def test_the_predicate_benchmark_times_each_predicate_and_the_full_one_finds_every_planted_row():
    """benchmarks/predicates.py (the README's per-predicate costs): the literal, gate and list
    together select exactly the rows benchmarks/sweep.py planted, so its figures time a working
    predicate, not an empty one."""
    import random

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sweep as bench

    rows = 3000
    rng = random.Random(7)
    subjects = bench.make_subjects(50, rng)
    plants, expected = bench.plan_plants(subjects, bench.sizes_for(rows), rng)
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "predicates.py"), "--rows", str(rows),
                          "--repeat", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    measured = {m.group(1).strip(): (float(m.group(2)), int(m.group(3)))
                for m in re.finditer(r"^(.{44}) +(\d+\.\d\d) +(\d+)$", run.stdout, re.M)}
    assert len(measured) == 12, run.stdout
    # every row holding a planted value is selected, and no other
    assert measured["LIKE + length gate + whole list"][1] == len(plants), run.stdout
    assert len(expected) == 50 * 10  # ten forms per subject were planted
    assert all(ratio > 0 for ratio, _ in measured.values())


def test_the_typed_predicate_benchmark_selects_every_row_holding_a_literal_or_a_typed_proof():
    """benchmarks/predicates.py --typed (the README's lower bound for issue 15's typed part): the
    typed columns' list is the sweep's own, and with it the statements select exactly the rows
    holding the literal or a subject's proving typed value (card, loyalty number, instant), so the
    figures time a working test, not an empty one."""
    import random

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sweep as bench

    rows = 3000
    rng = random.Random(7)
    subjects = bench.make_subjects(50, rng)
    typed = bench.typed_values(subjects, random.Random("7-typed"))
    _, expected = bench.plan_plants(subjects, bench.sizes_for(rows), rng, typed)
    stdout, measured = _sqlite_rows_selected("--typed", rows)
    assert len(measured) == 5, stdout
    assert "sqlite    8 typed columns tested" in stdout

    def rows_holding(forms_of_subject) -> int:
        return len({(t, r) for s, f, form, t, _, r in expected if forms_of_subject(s, f, form)})

    literal_forms = ("exact", "casefold", "urlencoded", "base64")
    literal = rows_holding(lambda s, f, form: form in literal_forms and f != "phone")
    proof = ("card_number", "loyalty_number", "moment")
    assert measured["literal only (no typed test)"] == literal > 0
    assert measured["+ t IS NULL"] == measured["+ t = one value (one comparison)"] == literal
    one, many = "+ t IN (the sweep's list, 1 subject)", "+ t IN (the sweep's list, 50 subjects)"
    assert measured[one] == rows_holding(
        lambda s, f, form: (form in literal_forms and f != "phone") or (s == "s000" and f in proof))
    assert measured[many] == rows_holding(lambda s, f, form: (form in literal_forms and f != "phone") or f in proof)


def test_the_sweep_test_benchmark_times_the_sweeps_own_tests_and_all_forms_find_every_planted_row():
    """benchmarks/predicates.py --sweep-tests (the README's floor for issue 22's all forms): the
    statements are the sweep's own column tests, and with all forms they select every row
    benchmarks/sweep.py planted a subject's value in, and no other."""
    import random

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sweep as bench

    rows = 3000
    rng = random.Random(7)
    subjects = bench.make_subjects(50, rng)
    _, expected = bench.plan_plants(subjects, bench.sizes_for(rows), rng)
    stdout, measured = _sqlite_rows_selected("--sweep-tests", rows)
    assert len(measured) == 3, stdout
    assert measured["all forms (the literal + digests)"] == len({(t, r) for *_, t, _, r in expected})
    assert 0 < measured["the literal (exact forms)"] == measured["the literal + one comparison"] \
        < measured["all forms (the literal + digests)"]


def _sqlite_rows_selected(mode: str, rows: int) -> tuple[str, dict[str, int]]:
    """Run benchmarks/predicates.py in ``mode`` on SQLite, one round: its output and, per measured
    line, the rows that line's statements selected."""
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "predicates.py"), mode, "--db", "sqlite",
                          "--rows", str(rows), "--repeat", "1"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # "sqlite    <name, 44 wide>  <x floor>  [<adds>]  <rows>"
    line = re.compile(r"^sqlite    (.{44}) +\d+\.\d\d +(?:-?\d+\.\d\d +)?(\d+)$", re.M)
    return run.stdout, {m.group(1).strip(): int(m.group(2)) for m in line.finditer(run.stdout)}
