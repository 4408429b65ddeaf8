"""Waivers: a waived broken promise does not fail the run and says why; an expired one is
ignored, saying so; one naming an unknown check stops the run before anything is touched."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

import pytest
from test_reports import DELETION, run_synthetic

from conftest import ROOT, run_suites
from privacy_checks.report.compliance import write_reports
from privacy_checks.report.waivers import WaiverError, cover, find_waiver, load_waivers, split_expired


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
    assert waivers[0].places == ("table:search/*",) and waivers[0].approved == date(2026, 11, 2)
    assert len(waivers[0].file_sha256) == 64


@pytest.mark.parametrize("text, message", [
    ("- {check: a.b, approver: x, expires: 2099-01-01}", "missing justification"),
    ("- {check: a.b, justification: y, approver: x, expires: soon}", "expires must be a date"),
    ("- {check: a.b, clause: 'ccpa:1798.105', justification: y, approver: x, expires: 2099-01-01}", "exactly one"),
    ("- {clause: 'ccpa:1798.999', justification: y, approver: x, expires: 2099-01-01}", "1798.999"),
    ("- {clause: '1798.105', justification: y, approver: x, expires: 2099-01-01}", "must look like 'ccpa:1798.105'"),
    ("- {check: Not_An_Id, justification: y, approver: x, expires: 2099-01-01}", "lower-case"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, owner: z}", "unknown field(s) owner"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, places: 'table:search/*'}",
     "waiver #1: places must be a non-empty list"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, places: []}",
     "waiver #1: places must be a non-empty list"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, places: ['search/*']}",
     "places: 'search/*' must start with a place kind (table:, file:"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, places: ['table:']}",
     "places: 'table:' must start with a place kind"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, places: [3]}",
     "places: each entry must be a non-empty string"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, approved: last week}",
     "approved must be a date"),
    ("- {check: a.b, justification: y, approver: x, expires: 2099-01-01, approved: 2099-02-01}",
     "approved (2099-02-01) is after expires (2099-01-01)"),
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


def waivers_of(tmp_path: Path, text: str):
    return load_waivers(write(tmp_path, text))


SEARCH = ["table:search/documents/body", "table:search/documents_fts/body (index term)"]
USERS = ["table:app/users/email"]


def test_a_waiver_naming_places_covers_only_those_places(tmp_path):
    [waiver] = waivers_of(tmp_path, """
- {check: c.d, places: ["table:search/*"], justification: y, approver: x, expires: 2099-01-01}
""")
    citations = [("ccpa", "1798.105"), ("ccpa_regs", "7022(b)(1)")]
    partly = cover([waiver], "c.d", citations, USERS + SEARCH)
    assert not partly.complete and partly.waivers == [waiver]
    assert [p for p in partly.places if partly.place_waived(p)] == SEARCH
    assert partly.to_dict()["places_broken"] == USERS
    assert {c: v["outcome"] for c, v in partly.clause_outcomes().items()} == {
        "ccpa:1798.105": "failed", "ccpa_regs:7022(b)(1)": "failed"}
    assert cover([waiver], "c.d", citations, SEARCH).complete
    # a failure that names no place is not one of the places the waiver names
    assert not cover([waiver], "c.d", citations, []).anything
    assert not cover([waiver], "other.check", citations, SEARCH).anything


def test_a_clause_waiver_covers_that_clause_or_its_subsections_only(tmp_path):
    w120, w135 = waivers_of(tmp_path, """
- {clause: "ccpa:1798.120", justification: y, approver: x, expires: 2099-01-01}
- {clause: "ccpa:1798.135", justification: y, approver: x, expires: 2099-01-01}
""")
    citations = [("ccpa", "1798.120"), ("ccpa", "1798.135"), ("ccpa_regs", "7026(f)")]
    places = ["recipient:partner/POST /partner/leads"]
    one = cover([w120], "ccpa.opt-out.sharing-stops", citations, places)
    assert not one.complete and not one.place_waived(places[0])
    assert {c: v["outcome"] for c, v in one.clause_outcomes().items()} == {
        "ccpa:1798.120": "waived", "ccpa:1798.135": "failed", "ccpa_regs:7026(f)": "failed"}
    assert not cover([w120, w135], "x.y", citations, places).complete  # §7026(f) is still unwaived
    assert cover([w120, w135], "x.y", citations[:2], places).complete
    # a subsection waiver does not cover a citation of the whole section, a section waiver covers
    # every subsection cited
    narrow, whole = waivers_of(tmp_path, """
- {clause: "ccpa_regs:7026(f)", justification: y, approver: x, expires: 2099-01-01}
- {clause: "ccpa_regs:7026", justification: y, approver: x, expires: 2099-01-01}
""")
    assert not cover([narrow], "x.y", [("ccpa_regs", "7026")], places).anything
    assert cover([narrow], "x.y", [("ccpa_regs", "7026(f)(2)")], places).complete
    assert cover([whole], "x.y", [("ccpa_regs", "7026(f)")], places).complete


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


SCOPED = """
waivers:
  - check: ccpa.delete.no-residual-data
    places: ["table:search/*"]
    justification: Search index rows are purged by the nightly reindex (PRIV-112)
    approver: Dana Whitfield
    approved: 2026-11-02
    expires: 2099-12-31
"""


def test_a_waiver_scoped_to_the_search_index_leaves_the_check_failed_naming_the_users_table(tmp_path):
    waivers = write(tmp_path, SCOPED)
    reports = tmp_path / "reports"
    run = run_suites(tmp_path, DELETION, flaws=("soft_delete",),
                     args=("--waivers", str(waivers), "--privacy-reports", str(reports),
                           "--privacy-check", "ccpa.delete.no-residual-data"))
    assert run.returncode == 1, run.stdout[-3000:]
    result = run.results["ccpa.delete.no-residual-data"]
    assert result["outcome"] == "failed"
    message = result["message"]
    # still broken first, naming the users table; the waived search rows after, marked
    still, _, waived = message.partition("\nwaived in ")
    unwaived = [pid for pid in (p["id"] for p in result["places"]) if not pid.startswith("table:search/")]
    assert len(unwaived) >= 40  # users, tickets, messages, analytics, cache, objects, lake, logs...
    assert f"still broken in {len(unwaived)} place(s)" in still and "app: table users, column" in still
    assert "search:" not in still
    assert waived and all(line.startswith("  [waived] search: ") for line in waived.splitlines()[1:6])
    assert "PRIV-112" in message and "covers only part of what broke" in message
    # the results still say where it broke: every place, the waived ones marked
    places = {p["id"]: p for p in result["places"]}
    assert "table:app/users/email" in places and "waived" not in places["table:app/users/email"]
    search = [p for pid, p in places.items() if pid.startswith("table:search/")]
    assert search and all(p["waived"] == {"by": ["waivers.yaml#1"], "whole": True,
                                          "clauses": ["ccpa_regs:7022(b)(1)", "ccpa:1798.105(c)(1)"]} for p in search)
    assert result["waived"]["complete"] is False
    assert "table:app/users/email" in result["waived"]["places_broken"]

    report = json.loads((reports / "compliance-report.json").read_text())
    assert report["summary"]["broken"] == 1 and report["summary"]["waived"] == 0
    clause = next(c for r in report["regulations"] for c in r["clauses"] if c["clause"] == "1798.105")
    assert clause["outcome"] == "failed"
    entry = next(c for c in report["checks"] if c["check_id"] == "ccpa.delete.no-residual-data")
    first_waived = next(i for i, line in enumerate(entry["where"]) if line.startswith("[waived] "))
    assert all(not line.startswith("[waived] ") for line in entry["where"][:first_waived])
    assert all(line.startswith("[waived] search: ") for line in entry["where"][first_waived:])
    assert any(line.startswith("app: table users, column email") for line in entry["where"][:first_waived])
    # the waivers in force: file, its SHA-256, approver, approval date, expiry, what each covered
    digest = hashlib.sha256(waivers.read_bytes()).hexdigest()
    assert report["waivers"]["file"] == str(waivers) and report["waivers"]["sha256"] == digest
    [w] = report["waivers"]["in_force"]
    assert (w["approver"], w["approved"], w["expires"], w["places"], w["used_by"]) == (
        "Dana Whitfield", "2026-11-02", "2099-12-31", ["table:search/*"], ["ccpa.delete.no-residual-data"])
    page = (reports / "compliance-report.html").read_text()
    assert "<h3>Waivers in force</h3>" in page and digest in page and "2026-11-02" in page
    row = re.search(r"<tr><td><code>search: table documents, column body</code>(.*?)</td>", page)
    assert row and 'class="badge o-waived">waived</span>' in row.group(1), row
    users = re.search(r"<tr><td><code>app: table users, column email</code>(.*?)</td>", page)
    assert users and "o-waived" not in users.group(1)
    # a report rebuilt later from the results (privacy-checks report) lists the same waivers
    rebuilt = write_reports(tmp_path / "privacy-results.json", tmp_path / "rebuilt")
    assert rebuilt.report["waivers"] == report["waivers"]


def test_a_clause_waiver_leaves_the_other_clauses_of_the_check_broken(tmp_path):
    waivers = write(tmp_path, """
- clause: "ccpa:1798.120"
  justification: The partner feed is being rebuilt (PRIV-150)
  approver: Dana Whitfield
  expires: 2099-12-31
""")
    reports = tmp_path / "reports"
    run = run_suites(tmp_path, "suites/ccpa/test_opt_out.py", flaws=("ignore_opt_out",),
                     args=("--waivers", str(waivers), "--privacy-reports", str(reports),
                           "--privacy-check", "ccpa.opt-out.sharing-stops"))
    assert run.returncode == 1, run.stdout[-3000:]
    result = run.results["ccpa.opt-out.sharing-stops"]
    assert result["outcome"] == "failed"
    assert result["places"] and all(p["id"].startswith("recipient:") for p in result["places"])
    assert {c: v["outcome"] for c, v in result["waived"]["clauses"].items()} == {
        "ccpa:1798.120(d)": "waived", "ccpa:1798.135(c)(4)": "failed", "ccpa_regs:7026(f)": "failed"}
    said = re.search(r"waived for (.*) only; still broken against (.*)", result["message"])
    assert said and said.group(1) == "Cal. Civ. Code §1798.120(d)", result["message"]
    assert sorted(said.group(2).split(", ")) == ["11 CCR §7026(f)", "Cal. Civ. Code §1798.135(c)(4)"]
    report = json.loads((reports / "compliance-report.json").read_text())
    outcome = {c["display"]: c["outcome"] for r in report["regulations"] for c in r["clauses"]}
    assert outcome["Cal. Civ. Code §1798.120"] == "waived"
    assert outcome["Cal. Civ. Code §1798.135"] == "failed" and outcome["11 CCR §7026"] == "failed"
    assert report["summary"]["broken"] == 1 and report["summary"]["waived"] == 0
    page = (reports / "compliance-report.html").read_text()
    section = page[page.index('id="ccpa-1798.120"'):page.index('id="ccpa-1798.121"')]
    assert "For this clause: <span class=\"badge o-waived\">waived</span>" in section
    assert "For this clause" not in page[page.index('id="ccpa-1798.135"'):]


def test_a_malformed_places_entry_stops_the_run_naming_the_file_and_entry(tmp_path):
    waivers = write(tmp_path, """
- {check: ccpa.delete.no-residual-data, justification: y, approver: x, expires: 2099-01-01}
- {check: ccpa.delete.no-residual-data, places: "table:search/*", justification: y, approver: x,
   expires: 2099-01-01}
""")
    run = run_suites(tmp_path, DELETION, args=("--waivers", str(waivers)))
    assert run.returncode == 4, run.stdout + run.stderr
    assert f"{waivers}: waiver #2: places must be a non-empty list" in run.stderr
    assert run.results == {}
