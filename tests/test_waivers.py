"""Waivers: a waived broken promise does not fail the run and says why; an expired one is
ignored, saying so; one naming an unknown check stops the run before anything is touched."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from test_reports import DELETION, run_synthetic

from conftest import ROOT, run_suites
from privacy_checks.report.waivers import WaiverError, find_waiver, load_waivers, split_expired


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    return path


WAIVER = """
- check: {check}
  justification: Search rows are purged by the nightly reindex (PRIV-112)
  approver: Dana Whitfield
  expires: {expires}
"""


def test_the_example_waiver_file_loads():
    waivers = load_waivers(ROOT / "fixtures" / "waivers.example.yaml")
    assert [w.check or w.clause for w in waivers] == ["ccpa.delete.no-residual-data", "ccpa_regs:7022(b)(3)"]


@pytest.mark.parametrize("text, message", [
    ("- {check: a.b, approver: x, expires: 2099-01-01}", "missing justification"),
    ("- {check: a.b, justification: y, approver: x, expires: soon}", "expires must be a date"),
    ("- {check: a.b, clause: 'ccpa:1798.105', justification: y, approver: x, expires: 2099-01-01}", "exactly one"),
    ("- {clause: 'ccpa:1798.999', justification: y, approver: x, expires: 2099-01-01}", "1798.999"),
    ("- {clause: '1798.105', justification: y, approver: x, expires: 2099-01-01}", "must look like 'ccpa:1798.105'"),
    ("- {check: Not_An_Id, justification: y, approver: x, expires: 2099-01-01}", "lower-case"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, owner: z}", "unknown field(s) owner"),
    ("check: a.b", "expected a list"),
    ("- [unclosed", "not valid YAML"),
])
def test_bad_waiver_files_say_which_entry_and_why(tmp_path, text, message):
    with pytest.raises(WaiverError, match="waivers.yaml") as exc:
        load_waivers(write(tmp_path, text))
    assert message in str(exc.value)


def test_clause_waivers_match_the_section_or_a_subsection_and_below(tmp_path):
    path = write(tmp_path, """
waivers:
  - {clause: "ccpa_regs:7022(b)", justification: y, approver: x, expires: 2099-01-01}
  - {clause: "gdpr:Art. 17", justification: y, approver: x, expires: 2000-01-01}
""")
    active, expired = split_expired(load_waivers(path), today=date(2030, 1, 1))
    assert [w.clause for w in expired] == ["gdpr:Art. 17"]
    assert find_waiver(active, "x.y", [("ccpa_regs", "7022(b)(1)")]) is active[0]
    assert find_waiver(active, "x.y", [("ccpa_regs", "7022")]) is None
    assert find_waiver(active, "x.y", [("ccpa_regs", "7022(c)")]) is None
    assert find_waiver(active, "x.y", [("ccpa", "1798.105")]) is None
    # The expiry date is the last day the waiver holds.
    assert not expired[0].expired(date(2000, 1, 1)) and expired[0].expired(date(2000, 1, 2))


def test_a_waived_broken_promise_does_not_fail_the_run_and_shows_its_justification(tmp_path):
    waivers = write(tmp_path, WAIVER.format(check="ccpa.delete.no-residual-data", expires="2099-12-31"))
    reports = tmp_path / "reports"
    run = run_suites(tmp_path, DELETION, flaws=("soft_delete",),
                     args=("--waivers", str(waivers), "--privacy-reports", str(reports)))
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"{len(run.results) - 2} passed, 1 waived, 1 not applicable" in run.stdout, run.stdout[-500:]
    assert run.outcomes()["ccpa.delete.no-residual-data"] == "waived"
    message = run.message("ccpa.delete.no-residual-data")
    assert "nightly reindex (PRIV-112)" in message and "approved by Dana Whitfield" in message
    assert "app: table users" in message  # waived, not hidden: where it broke is still said
    report = json.loads((reports / "compliance-report.json").read_text())
    assert report["summary"]["waived"] == 1 and report["summary"]["broken"] == 0
    clause = next(c for r in report["regulations"] for c in r["clauses"] if c["clause"] == "1798.105")
    assert clause["outcome"] == "waived"
    allure = [json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")]
    waived = next(r for r in allure if r["name"] == "Deleted subject leaves no trace in any store")
    assert waived["status"] == "skipped" and "PRIV-112" in waived["statusDetails"]["message"]
    assert waived["statusDetails"]["message"].startswith("[waived] ")  # what categories.json matches


def test_an_expired_waiver_is_ignored_with_a_warning_naming_it(tmp_path):
    waivers = write(tmp_path, WAIVER.format(check="ccpa.delete.no-residual-data", expires="2020-01-31"))
    run = run_suites(tmp_path, DELETION, flaws=("soft_delete",),
                     args=("--waivers", str(waivers), "--privacy-reports", str(tmp_path / "reports")))
    assert run.returncode == 1
    assert run.outcomes()["ccpa.delete.no-residual-data"] == "failed"
    assert ("waiver for check ccpa.delete.no-residual-data expired on 2020-01-31 (waivers.yaml#1, "
            "approved by Dana Whitfield): ignored") in run.stdout
    report = json.loads((tmp_path / "reports" / "compliance-report.json").read_text())
    assert any("expired on 2020-01-31" in line for line in report["waivers_ignored"])


def test_a_waiver_naming_an_unknown_check_is_a_usage_error(tmp_path):
    waivers = write(tmp_path, WAIVER.format(check="ccpa.delete.no-such-check", expires="2099-12-31"))
    run = run_suites(tmp_path, DELETION, args=("--waivers", str(waivers)))
    assert run.returncode == 4, run.stdout + run.stderr
    assert "ccpa.delete.no-such-check (waivers.yaml#1)" in run.stderr
    assert run.results == {}


def test_a_waiver_cannot_hide_a_check_that_could_not_be_made(tmp_path):
    write(tmp_path, """
- {clause: "gdpr:17", justification: known, approver: x, expires: 2099-01-01}
- {clause: "ccpa:1798.105", justification: known gap, approver: x, expires: 2099-01-01}
""")
    proc = run_synthetic(tmp_path, "--waivers", "waivers.yaml")
    assert proc.returncode == 1, proc.stdout
    results = {c["check_id"]: c["outcome"] for c in
               json.loads((tmp_path / "reports" / "privacy-results.json").read_text())["checks"]}
    assert results == {"syn.delete.broken": "waived", "syn.delete.unreachable": "error",
                       "syn.delete.control": "error", "syn.collect.ok": "passed"}
    proc = run_synthetic(tmp_path, "--waivers", "waivers.yaml", "-k", "broken or ok")
    assert proc.returncode == 0 and "1 passed, 2 deselected, 1 waived" in proc.stdout, proc.stdout


def test_under_xdist_an_unknown_check_in_a_waiver_stops_the_run_before_any_test(tmp_path):
    pytest.importorskip("xdist")
    waivers = write(tmp_path, WAIVER.format(check="ccpa.delete.no-such-check", expires="2099-12-31"))
    run = run_suites(tmp_path, DELETION, args=("-n", "2", "--waivers", str(waivers)))
    assert run.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, run.stdout[-3000:]
    assert "ccpa.delete.no-such-check (waivers.yaml#1)" in run.stdout
    assert run.results == {}
