"""No live secret in anything a run writes, whichever stage fails and however it fails.

A standalone demo issues real session tokens; an SQLite trigger keeps a copy of each one it
issues (the demo deletes sessions with their user). The profile is broken on purpose at three
stages: reading the subject back puts its token into a URL that then fails, the export is read
from a path built from the token, and a Python adapter fails the deletion with a raw KeyError
(a traceback, whose frames show the token among their arguments). Then every byte the run wrote
— stdout, stderr, every file under reports/ (Allure results, evidence, the compliance report,
JUnit) — is searched for the admin token and every issued token. The ledger is left out: it
keeps what cleanup needs.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import yaml

from conftest import ROOT, run_suites

ADAPTER = '''\
from privacy_checks.target import Adapter


class Leaky(Adapter):
    """An adapter with a bug: a raw exception, the subject's token among its arguments."""

    def delete(self, subject, captured):
        return {"request_id": captured["no_such_capture"]}
'''


def _broken_profile(tmp_path: Path) -> Path:
    profile = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    profile["adapter"] = "leaky_adapter:Leaky"
    profile["operations"]["read_subject"]["steps"][0].update(
        path="/api/users/{{ captured.user_id }}?session={{ captured.token }}", expect=[299], auth="subject")
    profile["export"] = {"delivery": "files", "files": "/nonexistent/{{ captured.token }}/export.json",
                         "categories": "categories"}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    (tmp_path / "leaky_adapter.py").write_text(ADAPTER)
    return path


def _keep_issued_tokens(data_dir: str) -> Path:
    db = Path(data_dir) / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE IF NOT EXISTS issued_tokens (token TEXT);
            CREATE TRIGGER IF NOT EXISTS keep_issued AFTER INSERT ON sessions
            BEGIN INSERT INTO issued_tokens VALUES (new.token); END;
        """)
    return db


def test_no_secret_reaches_any_output_when_each_stage_fails(tmp_path, standalone_demo):
    db = _keep_issued_tokens(standalone_demo["PRIVACY_CHECKS_DEMO_DATA"])
    profile = _broken_profile(tmp_path)
    env = {**standalone_demo, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path),
                                                                          os.environ.get("PYTHONPATH")]))}
    run = run_suites(tmp_path, "suites/ccpa/test_collection.py", "suites/ccpa/test_right_to_delete.py",
                     "suites/ccpa/test_right_to_know.py", args=("--target", str(profile),
                                                                  f"--junitxml={tmp_path / 'reports' / 'junit.xml'}"),
                     env=env)
    with sqlite3.connect(db) as conn:
        issued = [row[0] for row in conn.execute("SELECT token FROM issued_tokens")]
    assert issued, "the demo issued no token: the run did not get far enough to test anything"
    secrets = [standalone_demo["PRIVACY_CHECKS_DEMO_ADMIN_TOKEN"], *issued]

    # each stage failed as intended, and said so without the secret
    outcomes = run.outcomes()
    assert outcomes["ccpa.collect.subject-reaches-declared-stores"] == "error", run.results
    assert "/api/users/1?[REDACTED]" in run.message("ccpa.collect.subject-reaches-declared-stores")
    assert outcomes["ccpa.delete.no-residual-data"] == "error"
    assert "KeyError" in run.stdout  # a real traceback was printed, scrubbed
    assert "/nonexistent/[REDACTED]/export.json" in run.message("ccpa.know.specific-pieces-complete")

    written = {"stdout": run.stdout, "stderr": run.stderr}
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file():
            written[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any("allure-results" in name for name in written) and any("evidence" in name for name in written)
    leaks = [(name, secret[:6] + "…") for name, text in written.items() for secret in secrets if secret in text]
    assert not leaks, leaks
