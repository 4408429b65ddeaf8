"""`pytest -n 4` gives every check the same outcome as a serial run, clean and with a flaw on.

Under pytest-xdist each worker drives its own demo with its own subjects; the capture sink
(run by the controller) and the ledger are shared, so these runs also prove that sharing works:
the checks that judge third-party deliveries pass only if every worker's demo reached the one
sink, and the ledger holds each worker's subjects once, all cleaned up.
"""

from __future__ import annotations

from collections import Counter

from privacy_checks.ledger import Ledger
from tests.conftest import run_suites

QUIET = ("-p", "no:hypothesispytest")
# A flaw whose checks live in several modules, so workers judge it apart from each other.
FLAW = "soft_delete"
FLAW_SUITES = ("suites/ccpa/test_right_to_delete.py", "suites/gdpr/test_right_to_erasure.py",
               "suites/ccpa/test_collection.py")


def _ledger_subjects(path) -> list[dict]:
    ledger = Ledger(f"sqlite:///{path / 'ledger.sqlite'}")
    try:
        return ledger.subjects_for("demo")
    finally:
        ledger.close()


def _differences(serial, parallel) -> dict:
    return {k: (serial.results.get(k, {}).get("message", "")[:300], parallel.results.get(k, {}).get("message", "")[:300])
            for k in set(serial.results) | set(parallel.results) if serial.outcomes().get(k) != parallel.outcomes().get(k)}


def test_four_workers_give_the_same_outcomes_as_a_serial_run(tmp_path):
    (tmp_path / "serial").mkdir()
    (tmp_path / "parallel").mkdir()
    serial = run_suites(tmp_path / "serial", "suites/ccpa", "suites/gdpr", args=QUIET)
    parallel = run_suites(tmp_path / "parallel", "suites/ccpa", "suites/gdpr", args=QUIET + ("-n", "4"))
    assert serial.results, serial.stdout[-3000:]
    assert parallel.outcomes() == serial.outcomes(), _differences(serial, parallel)
    assert parallel.returncode == serial.returncode
    subjects = _ledger_subjects(tmp_path / "parallel")
    runs = {s["run_id"] for s in subjects}
    assert 2 <= len(runs) <= 4, f"expected one ledger run per worker that made subjects, got {len(runs)}"
    duplicates = [c for c, n in Counter(s["canary"] for s in subjects).items() if n > 1]
    assert not duplicates, f"canaries shared between subjects: {duplicates}"
    left = [s for s in subjects if s["state"] not in ("cleaned", "deleted", "awaiting_request")]
    assert not left, f"subjects left on the target: {[(s['canary'], s['state']) for s in left]}"


def test_four_workers_agree_with_a_serial_run_when_a_flaw_is_on(tmp_path):
    (tmp_path / "serial").mkdir()
    (tmp_path / "parallel").mkdir()
    serial = run_suites(tmp_path / "serial", *FLAW_SUITES, flaws=(FLAW,), args=QUIET)
    parallel = run_suites(tmp_path / "parallel", *FLAW_SUITES, flaws=(FLAW,), args=QUIET + ("-n", "4"))
    assert "failed" in serial.outcomes().values(), serial.outcomes()
    assert parallel.outcomes() == serial.outcomes(), _differences(serial, parallel)
    for check, outcome in serial.outcomes().items():
        if outcome == "failed":
            assert "app: table users" in parallel.message(check), parallel.message(check)



def test_two_processes_opening_a_fresh_ledger_at_once_both_get_it(tmp_path):
    """xdist workers open one fresh ledger at the same moment. One of them read "no schema
    version yet" just before the other wrote it, and its own write then broke the unique key:
    all that worker's checks became errors ("unreadable or corrupt") in a CI run. Forced here
    by letting a second opener finish between the first one's read and its write."""
    import sqlalchemy as sa

    from privacy_checks.ledger import SCHEMA_VERSION

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    raced: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO PC_META") and not raced:
            raced.append("other opener")
            Ledger(url)  # the other worker wins: its version row is committed first

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    try:
        first = Ledger(url)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
    assert raced, "the interleaving was not forced: the first opener never wrote the version"
    with first.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(first.meta.c.key, first.meta.c.value))]
    assert rows == [("schema_version", str(SCHEMA_VERSION))]
