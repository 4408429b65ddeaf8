"""Each clause the suites cite says what they test of it and what they do not, and a clause is
held only for its tested aspects (issue 20 point 3: §1798.100 showed *held* though none of its
checks tests the notice at collection or retention)."""

from __future__ import annotations

import json

from conftest import run_suites
from privacy_checks import clauses
from privacy_checks.collection import defined_checks
from privacy_checks.report.compliance import _aspects, clause_id


def test_every_clause_a_suite_cites_has_its_aspects_listed():
    cited = {clause_id(c).split("(", 1)[0] for check in defined_checks().values() for c in check.clauses}
    listed = _aspects()
    assert cited and not cited - set(listed), sorted(cited - set(listed))
    for key in cited:
        assert listed[key].get("tested"), f"{key}: no tested aspect"
        assert isinstance(listed[key].get("not_tested"), list), key
        aspects = listed[key]["tested"] + listed[key]["not_tested"]
        assert all(isinstance(a, str) and a for a in aspects), (key, aspects)  # ": " in YAML makes a mapping
        # which text of the law the citations were read against, or why they were not (issue 20 point 10)
        assert isinstance(listed[key].get("checked_against"), str) and listed[key]["checked_against"], key
    # every key is a clause the registry knows
    for key in listed:
        family, _, ref = key.partition(":")
        clauses.resolve(family, ref.removeprefix("Art. "))


def test_a_clause_held_with_aspects_untested_says_so_in_the_report(tmp_path):
    # §1798.125 is cited by one check only, so this one file runs all of it
    run = run_suites(tmp_path, "suites/ccpa/test_non_discrimination.py")
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()
    report = json.loads((run.reports / "compliance-report.json").read_text())
    section = next(c for r in report["regulations"] for c in r["clauses"]
                   if c["display"] == "Cal. Civ. Code §1798.125")
    assert section["outcome"] == "passed" and section["outcome_in_words"] == "held for the aspects tested"
    assert any("financial incentive" in a for a in section["not_tested"]), section["not_tested"]
    page = (run.reports / "compliance-report.html").read_text()
    assert "Held for the aspects tested only" in page and "financial incentive programmes" in page
    # the auditor sees which text the citation was checked against
    assert section["checked_against"] == _aspects()["ccpa:1798.125"]["checked_against"]
    assert section["checked_against"].startswith("Cal. Civ. Code §1798.125"), section["checked_against"]
    assert "Citations checked against: Cal. Civ. Code §1798.125" in page


def test_each_check_has_a_severity_and_the_profile_can_change_it(tmp_path, standalone_demo):
    import yaml

    from privacy_checks.runtime import demo_profile_path

    profile = yaml.safe_load(demo_profile_path().read_text())
    profile["severity"] = {"ccpa.delete.no-residual-*": "minor"}
    path = tmp_path / "severity.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    run = run_suites(tmp_path, "suites/ccpa/test_right_to_delete.py", env=standalone_demo,
                     args=("--target", str(path)))
    report = json.loads((run.reports / "compliance-report.json").read_text())
    checks = {c["check_id"]: c for c in report["checks"] if c["outcome"] != "not run"}
    residual = checks["ccpa.delete.no-residual-data"]
    assert residual["severity"] == "minor", residual
    assert residual["severity_from"] == "profile severity 'ccpa.delete.no-residual-*'"
    # the others take the heaviest weight of the clauses they cite (§1798.105 is critical)
    others = [c for c in checks.values() if c["check_id"] != residual["check_id"]]
    assert others and all(c["severity_from"] == "the clauses it cites" for c in others)
    assert checks["ccpa.delete.account-gone"]["severity"] == "critical"
    page = (run.reports / "compliance-report.html").read_text()
    assert "Severity set by the profile severity" in page and "severity minor" in page
