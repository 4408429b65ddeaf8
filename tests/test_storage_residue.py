"""Storage residue (issue 22 point 4): a deleted subject's canaries in SQLite files after SQL no
longer returns them, found by one raw scan of the database, its -wal and -journal; and the
deletion suite reporting them (default) or failing on them (storage_residue: fail)."""

from __future__ import annotations

import base64
import random
import re
import sqlite3

import pytest
import yaml

from privacy_checks.observe.forms import MARKER, Needle, canary_needles
from privacy_checks.observe.stores.base import StoreSpec
from privacy_checks.observe.stores.sqlite_residue import _WRITTEN, scan

DELETED = MARKER + "abcdefgh2j"
LIVE = MARKER + "zyxwvuts7r"


def _needles(sid: str, token: str) -> list[Needle]:
    return [Needle(sid, "full_name", f"Ada {token}"), Needle(sid, "email", f"ada.{token}@example.com"),
            *canary_needles(sid, [token])]


NEEDLES = _needles("gone", DELETED) + _needles("live", LIVE)


def _database(path, *, secure_delete: bool, journal: str = "WAL", encoding: str = "UTF-8") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA encoding = '{encoding}'")
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute(f"PRAGMA secure_delete = {'ON' if secure_delete else 'OFF'}")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, profile TEXT)")
    for token in (DELETED, LIVE):
        email = f"ada.{token}@example.com"
        conn.execute("INSERT INTO users (name, email, profile) VALUES (?, ?, ?)",
                     (f"Ada {token}", email.upper(), base64.b64encode(f'{{"mail": "{email}"}}'.encode()).decode()))
    conn.execute("DELETE FROM users WHERE name LIKE ?", (f"%{DELETED}%",))
    return conn


def _sql_returns(path, token: str) -> bool:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM users WHERE name LIKE ?", (f"%{token}%",)).fetchone()[0] > 0


def test_deleted_rows_in_free_space_of_the_database_file_are_found_with_their_fields(tmp_path):
    path = tmp_path / "app.sqlite"
    conn = _database(path, secure_delete=False)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the database file; the -wal emptied
    assert not _sql_returns(path, DELETED) and _sql_returns(path, LIVE)
    result = scan(StoreSpec("app", url=f"sqlite:///{path}"), NEEDLES)
    conn.close()
    assert result.not_scanned is None
    gone = [r for r in result.found if r.subject_id == "gone"]
    assert {(r.part, r.field, r.form) for r in gone} >= {
        ("database", "full_name", "exact"), ("database", "email", "casefold"), ("database", "email", "base64")}
    assert all(r.where.startswith("page 2 ") and r.offset > 4096 for r in gone), gone
    assert "live" in result.subjects()  # the positive control: the live row, seen in the same read


def test_secure_delete_and_a_truncated_log_leave_no_residue_while_the_live_row_is_seen(tmp_path):
    path = tmp_path / "app.sqlite"
    conn = _database(path, secure_delete=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    result = scan(StoreSpec("app", url=f"sqlite:///{path}"), NEEDLES)
    conn.close()
    assert result.subjects() == {"live"}, result.found
    assert {part for part, _, _ in result.files} == {"database", "-wal"}


def test_old_frames_of_the_log_hold_the_deleted_row_until_the_log_is_reused(tmp_path):
    """secure_delete zeroes the page the deletion writes, but the frames before it in the -wal
    still hold the row: named by frame and page."""
    path = tmp_path / "app.sqlite"
    conn = _database(path, secure_delete=True)
    result = scan(StoreSpec("app", url=f"sqlite:///{path}"), NEEDLES)
    conn.close()
    gone = [r for r in result.found if r.subject_id == "gone"]
    assert gone and {r.part for r in gone} == {"-wal"}, gone
    assert any(re.match(r"frame \d+ \(page 2; an older version that a later frame replaces", r.where)
               for r in gone), [r.where for r in gone]


def test_a_rollback_journal_left_behind_is_scanned(tmp_path):
    path = tmp_path / "app.sqlite"
    conn = _database(path, secure_delete=True, journal="PERSIST")
    result = scan(StoreSpec("app", url=f"sqlite:///{path}"), NEEDLES)
    conn.close()
    assert "-journal" in {part for part, _, _ in result.files}
    assert any(r.part == "-journal" and r.subject_id == "gone" for r in result.found), result.found


def test_a_utf16_database_is_read_as_utf16(tmp_path):
    path = tmp_path / "app.sqlite"
    conn = _database(path, secure_delete=False, encoding="UTF-16le")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    result = scan(StoreSpec("app", url=f"sqlite:///{path}"), NEEDLES)
    conn.close()
    assert {("gone", "full_name"), ("live", "full_name")} <= {(r.subject_id, r.field) for r in result.found}


def test_base64_never_reads_as_a_canary_written_out():
    """The scan skips decoding an occurrence that reads as another subject's canary written out
    (marker, run of 4s, body); no base64 rendering of a canary, at any alignment, reads so."""
    rng = random.Random(22)
    seen = 0
    for _ in range(300):
        body = rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567")
                                                                  for _ in range(9))
        for before in (b"", b"x", b"xy"):
            for after in (b"", b"@example.com", b" Lovelace"):
                raw = before + (MARKER + body).encode() + after
                for text in (base64.b64encode(raw), base64.urlsafe_b64encode(raw), base64.b64encode(raw).lower()):
                    low = text.decode().lower()
                    at = low.find("q0nd")
                    while at >= 0:
                        seen += 1
                        assert not _WRITTEN.match(low[at:]), (raw, text)
                        at = low.find("q0nd", at + 1)
    assert seen > 2000


@pytest.mark.parametrize(("url", "why"), [
    ("postgresql://u@127.0.0.1:1/db", "a postgresql database is on its server"),
    ("sqlite:///{tmp}/missing.sqlite", "is not on this machine"),
    ("sqlite://", "names no database file"),
])
def test_a_database_that_is_not_a_file_here_is_not_scanned_and_says_why(tmp_path, url, why):
    result = scan(StoreSpec("db", url=url.format(tmp=tmp_path)), NEEDLES)
    assert result.not_scanned and why in result.not_scanned
    assert not result.found and not result.files


def test_the_profile_key_is_validated(tmp_path):
    from privacy_checks.errors import ProfileError
    from privacy_checks.profile import load_profile

    def profile(store: dict) -> str:
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump({"name": "t", "base_url": "http://127.0.0.1:1", "allowed_hosts": ["127.0.0.1"],
                                        "stores": [{"name": "app", **store}]}))
        return str(path)

    assert load_profile(profile({"url": "sqlite:////tmp/x.sqlite", "storage_residue": "fail"})).stores
    with pytest.raises(ProfileError, match="storage_residue: fail needs a SQLite database file"):
        load_profile(profile({"url": "postgresql://u@127.0.0.1/db", "storage_residue": "fail"}))
    with pytest.raises(ProfileError, match="storage_residue"):
        load_profile(profile({"url": "sqlite:////tmp/x.sqlite", "storage_residue": "sometimes"}))


# -- the deletion suite against the demo ---------------------------------------------------------

DELETE_SUITE = "suites/ccpa/test_right_to_delete.py"
RESIDUAL = "ccpa.delete.no-residual-data"


def _run_with_fail_mode(tmp_path, flaws: tuple[str, ...]):
    """The deletion suite against a demo with ``flaws``, its three SQLite stores set to
    storage_residue: fail."""
    import socket

    from privacy_checks.demo.launch import DemoProcess
    from privacy_checks.runtime import demo_profile_path
    from tests.conftest import run_suites

    text = demo_profile_path().read_text()
    text, n = re.subn(r"(\n    url: sqlite:///\$\{PRIVACY_CHECKS_DEMO_DATA\}/\w+\.sqlite\n)", r"\1    storage_residue: fail\n",
                      text)
    assert n == 3
    profile = tmp_path / "demo-residue-fail.yaml"
    profile.write_text(text)
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    # the run's capture listens where the demo delivers (the profile's capture.bind); the demo
    # mails nowhere, so the newsletter recipient's control is an error: not this test's business
    demo = DemoProcess(flaws=list(flaws), sink_url=f"http://127.0.0.1:{port}", sink_bind=f"127.0.0.1:{port}").start()
    try:
        return run_suites(tmp_path, DELETE_SUITE, args=("--target", str(profile)), env=demo.env())
    finally:
        demo.stop()


def test_residue_is_reported_not_failed_by_default(suite_runner):
    run = suite_runner(DELETE_SUITE, flaws=("no_secure_delete",))
    assert run.returncode == 0, run.stdout[-3000:]
    check = run.results[RESIDUAL]
    assert check["outcome"] == "passed"
    assert check["examined"]["SQLite files scanned for storage residue"] >= 3
    remarks = "\n".join(check["remarks"])
    assert re.search(r"app: residue in storage until overwritten or vacuumed: file \S+/app\.sqlite(-wal)? "
                     r"\((database|-wal)\) holds the deleted subject's .*full_name \(exact\)", remarks), remarks
    html = (run.reports / "compliance-report.html").read_text()
    assert "Noted (does not change the outcome)" in html and "residue in storage until overwritten" in html
    stages = run.evidence(RESIDUAL)["evidence"]["stages"]
    scan = next(s for s in stages if s["stage"] == "storage residue (raw scan of SQLite files)")
    assert scan["residue"] and set(scan["scanned"]["app"]["of them seen in the files"]) == {"the control", "the barrier"}


def test_residue_fails_the_deletion_check_where_the_profile_says_so(tmp_path):
    run = _run_with_fail_mode(tmp_path, ("no_secure_delete",))
    assert {c for c, o in run.outcomes().items() if o == "failed"} == {RESIDUAL}, run.outcomes()
    message = run.message(RESIDUAL)
    assert re.search(r"app: file \S+/app\.sqlite(-wal)? \((database|-wal), residue in storage until overwritten or "
                     r"vacuumed\), at byte \d+ in (page|frame) \d+", message), message


def test_the_clean_demo_leaves_no_residue_even_where_it_would_fail(tmp_path):
    """secure_delete on and the log cut back when reused: nothing of the deleted subject in the
    files, while the control and the barrier are seen there (else the check could not pass)."""
    run = _run_with_fail_mode(tmp_path, ())
    assert run.outcomes()[RESIDUAL] == "passed", run.message(RESIDUAL)
    assert run.results[RESIDUAL]["remarks"] == []
