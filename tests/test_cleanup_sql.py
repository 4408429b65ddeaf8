"""Subjects created only through SQL steps are cleaned up after a run is killed, and a target
that only retires accounts is reported subject by subject, never counted as cleaned.

The "target" is a real SQLite database reached only by SQL steps; no HTTP service exists.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privacy_checks.ledger import Ledger
from privacy_checks.observe.forms import MARKER

ROOT = Path(__file__).resolve().parent.parent

PROFILE = """\
name: sqlshop
base_url: http://127.0.0.1:9
allowed_hosts: [127.0.0.1]
subject:
  fields: [full_name, email, username, custom_field]
operations:
  create_subject:
    steps:
      - sql: "INSERT INTO customer (name, email, username, retired) VALUES (:name, :email, :username, 0)"
        store: shop
        params: {name: "{{ subject.full_name }}", email: "{{ subject.email }}", username: "{{ subject.username }}"}
      - sql: "INSERT INTO orders (customer_id, note) SELECT id, :note FROM customer WHERE email = :email"
        store: shop
        params: {note: "{{ subject.custom_field }}", email: "{{ subject.email }}"}
  read_subject:
    steps:
      - sql: "SELECT * FROM customer WHERE email = :email"
        store: shop
        params: {email: "{{ subject.email }}"}
    gone_when: rowcount == 0 or row.retired == 1
  delete:
    description: the shop can only retire a customer
    steps:
      - sql: "UPDATE customer SET retired = 1 WHERE email = :email"
        store: shop
        params: {email: "{{ subject.email }}"}
{cleanup}stores:
  - name: shop
    url: sqlite:///{db}
"""
HARD_DELETE = """\
  cleanup:
    steps:
      - sql: "SELECT id FROM customer WHERE email = :email"
        store: shop
        params: {email: "{{ subject.email }}"}
        capture: {customer_id: row.id}
      - sql: "DELETE FROM orders WHERE customer_id = :id"
        store: shop
        params: {id: "{{ captured.customer_id }}"}
      - sql: "DELETE FROM customer WHERE id = :id"
        store: shop
        params: {id: "{{ captured.customer_id }}"}
"""


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / "shop.sqlite"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, email TEXT, username TEXT, retired INTEGER);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, note TEXT);
    """)
    con.close()
    return db


def _profile(tmp_path: Path, db: Path, cleanup: str) -> Path:
    path = tmp_path / "sqlshop.yaml"
    path.write_text(PROFILE.replace("{db}", str(db)).replace("{cleanup}", cleanup))
    return path


def _synthetic_rows(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return sum(con.execute(f"SELECT count(*) FROM {table} WHERE {column} LIKE ?", (f"%{MARKER}%",)).fetchone()[0]
                   for table, column in (("customer", "email"), ("orders", "note")))
    finally:
        con.close()


def _killed_run(tmp_path: Path, profile: Path, ledger_url: str) -> None:
    """A run that created two subjects through SQL, killed by SIGKILL before its teardown."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "tests/data/sleeper_check.py", "-q", "-s", "-p", "no:cacheprovider",
         "--target", str(profile), "--ledger", ledger_url, "--lease-seconds", "2", "--privacy-results="],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        out.append(line)
        if "SUBJECTS-CREATED" in line:
            break
        if not line and proc.poll() is not None:
            raise AssertionError("the run never created its subjects:\n" + "".join(out))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ledger = Ledger(ledger_url)
    deadline = time.monotonic() + 30
    while not ledger.orphans("sqlshop") and time.monotonic() < deadline:
        time.sleep(0.5)  # the killed run's lease expires
    ledger.close()


def _cleanup(profile: Path, ledger_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privacy_checks.cli", "cleanup", "--target", str(profile),
                           "--ledger", ledger_url], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_subjects_created_only_by_sql_leave_zero_rows_after_a_killed_run(tmp_path, shop):
    profile = _profile(tmp_path, shop, HARD_DELETE)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    _killed_run(tmp_path, profile, ledger_url)
    assert _synthetic_rows(shop) == 4
    ledger = Ledger(ledger_url)
    # nothing was captured: cleanup finds each subject by the values the ledger recorded
    assert [(s["state"], s["captured"]) for s in ledger.subjects_for("sqlshop")] == [("created", {})] * 2
    result = _cleanup(profile, ledger_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "removed 2 subject(s), 0 already gone"
    assert _synthetic_rows(shop) == 0
    assert [s["state"] for s in ledger.subjects_for("sqlshop")] == ["cleaned", "cleaned"]


def test_a_target_that_only_retires_is_reported_subject_by_subject_until_a_cleanup_removes_them(tmp_path, shop):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    retire_only = _profile(tmp_path, shop, "")
    _killed_run(tmp_path, retire_only, ledger_url)
    result = _cleanup(retire_only, ledger_url)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "removed 0 subject(s), 0 already gone"
    remains = [line for line in lines if line.startswith("  remains: ")]
    assert len(remains) == 2, result.stdout
    for line in remains:
        assert "shop: customer (email); shop: customer (full_name); shop: customer (username); shop: orders " \
               "(custom_field)" in line, line
        assert "the delete operation ran (no cleanup operation is declared), but the target keeps these" in line
    assert _synthetic_rows(shop) == 4  # retired, not removed
    assert [s["state"] for s in Ledger(ledger_url).subjects_for("sqlshop")] == ["orphaned", "orphaned"]

    # the profile gains a cleanup that deletes through SQL; the next cleanup removes them for good
    hard = _profile(tmp_path, shop, HARD_DELETE)
    result = _cleanup(hard, ledger_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["removed 2 subject(s), 0 already gone"]
    assert _synthetic_rows(shop) == 0


def test_a_record_found_by_its_values_that_no_longer_carries_the_canaries_is_refused(tmp_path, shop):
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    profile = _profile(tmp_path, shop, HARD_DELETE)
    _killed_run(tmp_path, profile, ledger_url)
    # read_subject is changed to find records by username, and one record's values now belong
    # to somebody else but the username: the canary guard must leave it alone
    text = profile.read_text().replace("SELECT * FROM customer WHERE email = :email\"\n        store: shop\n"
                                       "        params: {email: \"{{ subject.email }}\"}",
                                       "SELECT name, email FROM customer WHERE username = :u\"\n        store: shop\n"
                                       "        params: {u: \"{{ subject.username }}\"}")
    profile.write_text(text)
    con = sqlite3.connect(shop)
    victim = con.execute("SELECT id, username FROM customer ORDER BY id LIMIT 1").fetchone()
    con.execute("UPDATE customer SET name = 'Real Person', email = 'real@example.org' WHERE id = ?", (victim[0],))
    con.commit()
    con.close()
    result = _cleanup(profile, ledger_url)
    assert "refused" in result.stdout and "does not carry the ledger's canary values" in result.stdout, result.stdout
    con = sqlite3.connect(shop)
    assert con.execute("SELECT email FROM customer WHERE id = ?", (victim[0],)).fetchone() == ("real@example.org",)
    con.close()
