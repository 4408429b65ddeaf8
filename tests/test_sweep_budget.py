"""The sweep's time budget (timeouts.sweep) and its progress display (observe/stores/progress.py)."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys

from privacy_checks.observe.stores import StoreSpec, progress, sweep
from privacy_checks.subjects import SubjectFactory

ADA = SubjectFactory(seed="budget", nonce="n0", fields=["full_name", "email"]).build("test_budget")


def _database(path, tables=5):
    conn = sqlite3.connect(path)
    for i in range(tables):
        conn.execute(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, email TEXT)")
        conn.execute(f"INSERT INTO t{i} (email) VALUES (?)", (ADA.fields["email"] if i == 4 else "x@example.com",))
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_an_exceeded_budget_names_every_table_and_store_not_swept(tmp_path):
    url = _database(tmp_path / "a.db")
    result = sweep([StoreSpec("app", url=url), StoreSpec("logs", files=[str(tmp_path / "*.log")])], ADA.needles(),
                   budget_s=0)
    assert not result.hits  # t4 holds the subject, but was never reached
    assert [(u.store, u.where) for u in result.unswept] == [
        ("app", "t0"), ("app", "t1"), ("app", "t2"), ("app", "t3"), ("app", "t4"),
        ("logs", "(every table, file and key)")]
    assert all("timeouts.sweep: 0 s" in u.reason for u in result.unswept)
    # within the budget the same sweep finds the subject and leaves nothing unswept
    full = sweep([StoreSpec("app", url=url)], ADA.needles(), budget_s=600)
    assert not full.unswept and {h.table_or_path for h in full.hits} == {"t4"}


def test_progress_in_a_log_is_plain_lines_and_silent_without_a_stream(tmp_path, monkeypatch):
    url = _database(tmp_path / "a.db")
    log = io.StringIO()
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    progress.configure(stream=log)
    try:
        sweep([StoreSpec("app", url=url)], ADA.needles())
    finally:
        progress.configure()
    lines = log.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("sweep app: t4 (5/5 tables), 1 candidate rows, ")
    assert "about" in lines[0] and "s more in this store" in lines[0]
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", log.getvalue())  # no control characters but newlines
    # nothing configured (-q): nothing written
    quiet = io.StringIO()
    sweep([StoreSpec("app", url=url)], ADA.needles())
    assert quiet.getvalue() == ""


def test_progress_in_a_pytest_log_starts_its_own_line(tmp_path):
    """In a CI log pytest's progress dots share a line with whatever comes next: a progress line
    written there once read `suites/ccpa/test_x.py sweep database: …` with the dots after it."""
    (tmp_path / "test_progress_line.py").write_text(
        "from privacy_checks.observe.stores.progress import Budget, TerminalStream\n"
        "def test_first():\n    pass\n"
        "def test_sweeps(request):\n"
        "    budget = Budget(None, TerminalStream(request.config))\n"
        "    budget.started -= 10  # a sweep that has run for a while\n"
        "    budget.table_done('app', 't1', 1, 1, 3)\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_progress_line.py", "-p", "no:cacheprovider",
                           "-p", "no:randomly"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CI": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    progress = [line for line in lines if "sweep app: t1 (1/1 tables)" in line]
    assert progress and all(line.startswith("sweep app: t1") for line in progress), lines


def test_under_xdist_each_workers_progress_reaches_the_terminal_with_its_id(tmp_path):
    """A worker's terminal is not the user's: its progress lines go through the controller,
    prefixed with the worker's id; under -q nothing is shown."""
    (tmp_path / "test_progress_workers.py").write_text(
        "import time\n"
        "import pytest\n"
        "from privacy_checks.observe.stores.progress import Budget\n"
        "from privacy_checks.plugin import run_of\n"
        "@pytest.mark.parametrize('n', [1, 2, 3, 4])\n"
        "def test_sweeps(request, n):\n"
        "    budget = Budget(None, run_of(request.config).progress_stream)\n"
        "    budget.started -= 10  # a sweep that has run for a while\n"
        "    budget.table_done('app', f't{n}', 1, 1, n)\n"
        "    time.sleep(1)  # a long test: the controller shows the line before it ends\n")

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "pytest", "test_progress_workers.py", "-p", "no:cacheprovider",
                               "-p", "no:randomly", "-n", "2", *extra], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={**os.environ, "CI": "1"})

    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = re.findall(r"^\[(gw[01])\] sweep app: (t\d) \(1/1 tables\), (\d) candidate rows, 10\.\d s$",
                       proc.stdout, re.M)
    assert sorted(t for _, t, _ in shown) == ["t1", "t2", "t3", "t4"], proc.stdout
    assert all(rows == t[1] for _, t, rows in shown)
    assert {w for w, _, _ in shown} <= {"gw0", "gw1"}
    quiet = run("-q")
    assert quiet.returncode == 0 and "sweep app:" not in quiet.stdout, quiet.stdout


def _reasons_are_the_budgets(unswept) -> bool:
    return bool(unswept) and all(u.reason.startswith("not swept: the sweep's time budget (timeouts.sweep: 60 s)")
                                 for u in unswept)


def test_a_budget_that_runs_out_inside_a_file_store_names_the_files_and_globs_left(tmp_path, budget_runs_out):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(f"login {ADA.fields['email']}\n")
    for i in range(25):  # more than are named one by one
        (logs / f"b{i:02}.log").write_text(f"login {ADA.fields['email']} again\n")
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "x.log").write_text(f"{ADA.fields['email']}\n")
    store = StoreSpec("logs", files=[str(logs / "*.log"), str(tmp_path / "later" / "*.log")])
    full = sweep([store], ADA.needles(), budget_s=60)
    assert not full.unswept and len({h.table_or_path for h in full.hits}) == 27

    budget_runs_out(after=2)  # sweep()'s check before the store, then the one before a.log
    result = sweep([store], ADA.needles(), budget_s=60)
    assert {h.table_or_path for h in result.hits} == {str(logs / "a.log")}  # what was read keeps its hit
    assert result.examined["logs"] == {"files": 1}
    assert [u.where for u in result.unswept] == [
        *(str(logs / f"b{i:02}.log") for i in range(20)),
        f"5 more file(s) after {logs / 'b19.log'}, the last of them {logs / 'b24.log'}",
        f"every file matching {tmp_path / 'later' / '*.log'} (not listed)"]
    assert _reasons_are_the_budgets(result.unswept)


def test_a_budget_that_runs_out_inside_a_lake_store_names_the_files_left(tmp_path, budget_runs_out):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.csv").write_text(f"id,email\n1,x@example.com\n2,{ADA.fields['email']}\n")
    (tmp_path / "more").mkdir()
    store = StoreSpec("lake", lake=[str(tmp_path / "*.csv"), str(tmp_path / "more" / "*.parquet")])
    full = sweep([store], ADA.needles(), budget_s=60)
    assert not full.unswept and len({h.table_or_path for h in full.hits}) == 3
    budget_runs_out(after=2)
    result = sweep([store], ADA.needles(), budget_s=60)
    assert {(h.table_or_path, h.row_key["row"]) for h in result.hits} == {(str(tmp_path / "a.csv"), 2)}
    assert [u.where for u in result.unswept] == [
        str(tmp_path / "b.csv"), str(tmp_path / "c.csv"),
        f"every file matching {tmp_path / 'more' / '*.parquet'} (not listed)"]
    assert _reasons_are_the_budgets(result.unswept)


def test_a_budget_that_runs_out_inside_one_big_file_names_the_lines_left(tmp_path, budget_runs_out):
    """A single file can outlast the whole budget: it is looked at every 4,096 lines, and what
    was read before it ran out keeps its hits."""
    email = ADA.fields["email"]
    with open(tmp_path / "big.log", "w") as f:
        f.write(f"login {email}\n")
        f.writelines(f"request {i}\n" for i in range(2, 9000))
        f.write(f"logout {email}\n")  # line 9000
    (tmp_path / "next.log").write_text(f"{email}\n")
    store = StoreSpec("logs", files=[str(tmp_path / "*.log")])
    full = sweep([store], ADA.needles(), budget_s=60)
    assert not full.unswept and {(h.table_or_path, h.column_or_line) for h in full.hits} == {
        (str(tmp_path / "big.log"), 1), (str(tmp_path / "big.log"), 9000), (str(tmp_path / "next.log"), 1)}

    budget_runs_out(after=2)  # before the store, before big.log; the look at line 4,096 finds it out
    result = sweep([store], ADA.needles(), budget_s=60)
    assert {(h.table_or_path, h.column_or_line) for h in result.hits} == {(str(tmp_path / "big.log"), 1)}
    assert [u.where for u in result.unswept] == [f"{tmp_path / 'big.log'}, from line 4096 on",
                                                 str(tmp_path / "next.log")]
    assert _reasons_are_the_budgets(result.unswept)
