"""`privacy-checks census` against the built-in demo: its table is the deletion procedure's own
positive control, its stubs are retention exceptions a person still has to justify."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import DEMO_LINT_ENV
from privacy_checks.ledger import Ledger
from privacy_checks.observe.forms import MARKER, TOKEN_FIELD
from privacy_checks.profile import lint

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "privacy_checks" / "profiles" / "demo.yaml"
DEMO_ENV = DEMO_LINT_ENV


# the demo profile's recipients that receive every subject (the newsletter by mail)
RECEIVING = {s["name"] for s in yaml.safe_load(DEMO.read_text())["sinks"] if s.get("expect_subject", True)}


def _census(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PRIVACY_CHECKS_TARGET"}
    return subprocess.run([sys.executable, "-m", "privacy_checks.cli", "census",
                           "--ledger", f"sqlite:///{tmp_path / 'census-ledger.sqlite'}", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def _any_demo_dir(place: str) -> str:
    return re.sub(r"privacy-checks-demo-[^/]+", "privacy-checks-demo-*", place)


def _rows(table: str) -> list[list[str]]:
    """The store rows of the census table: STORE, PLACE, COLUMN / LINE, FIELD, FORM."""
    lines = table.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("STORE")))
    cols = [lines[header].index(h) for h in ("STORE", "PLACE", "COLUMN / LINE", "FIELD", "FORM")]
    rows = []
    for line in lines[header + 1:]:
        if not line.strip():
            break
        rows.append([line[a:b].strip() for a, b in zip(cols, [*cols[1:], None], strict=True)])
    return rows


def test_the_census_table_is_what_the_deletion_procedure_sees_before_deleting(tmp_path, suite_runner):
    census = _census(tmp_path)
    assert census.returncode == 0, census.stdout + census.stderr
    assert census.stdout.startswith(f"census of demo: subject {MARKER}")
    rows = _rows(census.stdout)
    shown: dict[str, set[str]] = {}
    for store, place, column, field, _form in rows:
        # weak values, and the bare canary a word index keeps (field canary, form token), are
        # shown by the census but not what the procedure's positive control looks for
        if not field.endswith("(weak)") and field != TOKEN_FIELD:
            # a key or object place is shown as its prefix (keys profile:*); the procedure's
            # evidence names each key, which that pattern must match
            where = place.split(" ", 1)[1] if place.startswith(("table ", "file ", "keys ", "objects ")) else place
            shown.setdefault(store, set()).add(_any_demo_dir(f"{where}.{column}"))

    run = suite_runner("suites/ccpa/test_right_to_delete.py")
    assert run.returncode == 0, run.stdout[-3000:]
    evidence = json.loads((tmp_path / "reports" / "evidence" / "ccpa.delete.no-residual-data.json").read_text())
    control = next(s for s in evidence["evidence"]["stages"] if s["stage"] == "positive control: stores")
    assert set(control["seen"]) == set(shown)
    for store, places in control["seen"].items():
        places = [_any_demo_dir(p) for p in places]  # the census and the suite each start a demo
        matched = {pattern for place in places for pattern in shown[store] if fnmatch.fnmatchcase(place, pattern)}
        assert all(any(fnmatch.fnmatchcase(place, p) for p in shown[store]) for place in places), (store, places)
        assert matched == shown[store], (store, places, shown[store])
    # the tickets and the shared room are places too; every recipient the demo feeds is listed
    assert "app.messages.body" in {f"{s}.{p}" for s, ps in shown.items() for p in ps}
    for recipient in RECEIVING:
        assert f"\n{recipient} " in census.stdout, census.stdout
    # and the census removed what it created
    assert [s["state"] for s in Ledger(f"sqlite:///{tmp_path / 'census-ledger.sqlite'}").subjects_for("demo")] == \
        ["cleaned", "cleaned"]


def test_json_and_exception_stubs_that_lint_only_once_a_person_fills_them_in(tmp_path):
    result = _census(tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["target"] == "demo" and data["decoy"]
    assert data["operations"][:3] == ["create_subject", "login", "activity"]
    fields = {(f["store"], f["location"], f["column"]): f["field"] for f in data["found"]}
    assert fields[("app", "tickets", "body")] == "support_ticket"
    assert {r["recipient"] for r in data["received"]} == RECEIVING

    stubs = _census(tmp_path, "--suggest-exceptions")
    assert stubs.returncode == 0, stubs.stderr
    exceptions = yaml.safe_load(stubs.stdout)["retention_exceptions"]
    assert {"store": "app", "table": "tickets", "column": "body", "legal_basis": "", "reason": ""} in exceptions
    profile = tmp_path / "with-stubs.yaml"
    demo = DEMO.read_text()
    base = demo[:demo.index("retention_exceptions:")]
    profile.write_text(base + stubs.stdout + "\n")
    problems = lint(profile, DEMO_ENV)
    assert problems and all(p.endswith(("legal_basis: must not be empty", "reason: must not be empty"))
                            for p in problems), problems
    for e in exceptions:
        e.update(legal_basis="Cal. Civ. Code §1798.105(d)(8)", reason="kept to comply with a legal obligation")
    profile.write_text(base + yaml.safe_dump({"retention_exceptions": exceptions}, allow_unicode=True))
    assert lint(profile, DEMO_ENV) == []
