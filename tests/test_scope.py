"""What a run covered: a deselected, uncollected or cut-off check is named in the report, and a
clause it cites is never "held" (issue 20, points 1 and 11).

An auditor saw `-k "not no_trace"` drop the one check that catches a soft delete while the
report said "all checked promises held", and a run stopped by Ctrl-C after one check report
"all checked promises held" and OSCAL `satisfied`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, run_suites
from privacy_checks.collection import defined_checks
from privacy_checks.report.compliance import REPORT_HTML, REPORT_JSON

DELETE = "suites/ccpa/test_right_to_delete.py"

DUMP_PLUGIN = '''
import json, os
from privacy_checks.collection import check_id, citations

def pytest_collection_finish(session):
    out = {}
    for item in session.items:
        cid = check_id(item)
        if cid:
            out[cid] = sorted(f"{f}:{r}" for f, r in citations(item))
    with open(os.environ["DUMP_TO"], "w") as fh:
        json.dump(out, fh)
'''


def _report(run) -> dict:
    return json.loads((run.reports / REPORT_JSON).read_text())


def _clause(report: dict, display_start: str) -> dict:
    return next(c for r in report["regulations"] for c in r["clauses"] if c["display"].startswith(display_start))


def test_the_suites_source_names_every_check_pytest_collects_with_its_clauses(tmp_path):
    """The list of checks a run did not run comes from reading the suites' source; it must be
    exactly what pytest collects, clauses included, or a left-out check would go unnamed."""
    (tmp_path / "dump_checks.py").write_text(DUMP_PLUGIN)
    out = tmp_path / "collected.json"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "DUMP_TO": str(out)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", "-p", "dump_checks",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    collected = json.loads(out.read_text())
    defined = {cid: sorted(c.clauses) for cid, c in defined_checks().items()}
    assert len(collected) > 50 and defined == collected


def test_a_deselected_check_is_named_and_its_clause_is_only_partly_tested(tmp_path):
    # The soft delete is on: the one check that would catch it is deselected with -k.
    run = run_suites(tmp_path, DELETE, flaws=("soft_delete",), args=("-k", "not no_trace"))
    assert "ccpa.delete.no-residual-data" not in run.results and run.failing() == set(), run.outcomes()
    report = _report(run)
    not_run = {c["check_id"]: c for c in report["checks"] if c["outcome"] == "not run"}
    assert not_run["ccpa.delete.no-residual-data"]["message"] == "deselected by -k 'not no_trace'"
    # the rest of the CCPA suite was never collected: named too, with why
    assert "not collected" in not_run["ccpa.know.machine-readable"]["message"]
    assert "ccpa.delete.account-gone" not in not_run
    assert _clause(report, "Cal. Civ. Code §1798.105")["outcome"] == "partly tested"
    assert report["summary"]["verdict"].startswith("partly tested"), report["summary"]
    assert "-k 'not no_trace'" in report["run"]["command"] and report["run"]["selection"] == ["-k 'not no_trace'"]
    html = (run.reports / REPORT_HTML).read_text()
    assert 'id="not-run"' in html and "ccpa.delete.no-residual-data" in html and "partly tested" in html
    assert "all checked promises held" not in html
    # each check has one anchor, however many clauses it cites; its other clauses link to it
    for check_id in run.results:
        assert html.count(f'id="check-{check_id}"') == 1, check_id
    assert 'href="#check-ccpa.delete.request-completes"' in html
    # the OSCAL file does not call the deselected check satisfied
    oscal = json.loads((run.reports / "oscal-assessment-results.json").read_text())
    findings = oscal["assessment-results"]["results"][0]["findings"]
    residual = next(f for f in findings if f["target"]["title"] == "ccpa.delete.no-residual-data")
    assert residual["target"]["status"]["state"] == "not-satisfied"
    # the terminal says so too
    assert "not run (" in run.stdout and "deselected by -k 'not no_trace': ccpa.delete.no-residual-data" in run.stdout


def test_a_whole_suite_run_with_nothing_left_out_holds(tmp_path):
    """The positive side: the same file with the clean demo, its whole suite collected and the
    check that was deselected above selected — nothing is listed as not run."""
    run = run_suites(tmp_path, "suites/ccpa", args=("--privacy-check", "ccpa.delete.*"))
    report = _report(run)
    not_run = [c for c in report["checks"] if c["outcome"] == "not run"]
    # --privacy-check deselects the rest of the suite, and says so; checks of other suites that
    # cite a clause the deletion checks cite (§1798.130) are named as not in this run
    mine = [c for c in not_run if not c["message"].startswith("not in this run")]
    assert mine and all(c["message"] == "deselected by --privacy-check 'ccpa.delete.*'" for c in mine), mine
    others = [c for c in not_run if c["message"].startswith("not in this run")]
    assert others and all(c["check_id"].startswith("policy.") for c in others), others
    assert all(any(cl.startswith("Cal. Civ. Code §1798.130") for cl in c["clauses"]) for c in others), others
    assert _clause(report, "Cal. Civ. Code §1798.105")["outcome"] == "passed"


INTERRUPT_PLUGIN = '''
def pytest_runtest_logfinish(nodeid, location):
    # Ctrl-C as the user presses it: once the first check's result is in
    raise KeyboardInterrupt
'''


def test_an_interrupted_run_says_so_and_names_what_did_not_run(tmp_path):
    (tmp_path / "interrupt_after_one.py").write_text(INTERRUPT_PLUGIN)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    run = run_suites(tmp_path, DELETE, args=("-p", "interrupt_after_one"), env=env)
    assert run.returncode == 2 and len(run.results) == 1, (run.returncode, run.stdout[-2000:])
    report = _report(run)
    verdict = report["summary"]["verdict"]
    assert verdict.startswith("interrupted — ") and "held" not in verdict, verdict
    assert report["run"]["interrupted"]
    not_run = [c for c in report["checks"] if c["outcome"] == "not run"]
    planned = [c for c in not_run if c["message"].startswith("planned but not run: the run was interrupted")]
    assert len(planned) == 5, not_run  # the file's six checks, one ran
    oscal = json.loads((run.reports / "oscal-assessment-results.json").read_text())
    states = [f["target"]["status"]["state"] for f in oscal["assessment-results"]["results"][0]["findings"]]
    assert "not-satisfied" in states
    html = (run.reports / REPORT_HTML).read_text()
    assert "The run did not finish" in html
    # the ledger does not call the run finished
    from privacy_checks.ledger import Ledger

    book = Ledger(ledger)
    try:
        with book.engine.connect() as conn:
            statuses = [r["status"] for r in conn.execute(book.runs.select()).mappings()]
    finally:
        book.close()
    assert statuses == ["interrupted"], statuses


def test_a_run_that_ran_no_check_leaves_the_previous_reports_as_they_were(tmp_path):
    first = run_suites(tmp_path, DELETE, args=("--privacy-check", "ccpa.delete.account-gone"))
    assert first.outcomes() == {"ccpa.delete.account-gone": "passed"}

    def files() -> dict:
        found = {p: p.read_bytes() for p in Path(first.reports).rglob("*") if p.is_file()}
        return {**found, "results": (tmp_path / "privacy-results.json").read_bytes()}

    before = files()
    assert len(before) > 5
    for extra in (("--collect-only",), ("-k", "no_such_test_anywhere")):
        again = run_suites(tmp_path, DELETE, args=extra)
        assert again.returncode in (0, 5), again.stdout[-2000:]
        assert files() == before, extra
    manifest = json.loads((Path(first.reports) / "manifest.json").read_text())
    assert all((Path(first.reports) / f["path"]).is_file() for f in manifest["files"])
