"""reports/oscal-assessment-results.json: valid against the official OSCAL model (compliance-trestle's
pydantic models of OSCAL 1.1.x), built from a real run against the demo with a flaw switched on,
listed in the manifest, and the same when `privacy-checks report` rebuilds it."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import pytest
import trestle.oscal as trestle_oscal  # compliance-trestle, in the dev extra
from trestle.oscal.assessment_results import AssessmentResults
from trestle.oscal.catalog import Catalog

from conftest import run_suites
from privacy_checks.observe.forms import MARKER
from privacy_checks.report import build, compliance
from privacy_checks.report.oscal import (
    CATALOG_JSON,
    NS,
    OSCAL_VERSION,
    objective_id,
    oscal_assessment_results,
    oscal_catalog,
    oscal_documents,
)

DELETION = "suites/ccpa/test_right_to_delete.py"
BROKEN = "ccpa.delete.no-residual-data"


def validated(doc: dict) -> AssessmentResults:
    """Parse with trestle's models (extra keys forbidden, patterns and enums checked) and
    serialise back, which trestle refuses for a datetime without a timezone."""
    assert set(doc) == {"assessment-results"}
    model = AssessmentResults.parse_obj(doc["assessment-results"])
    model.oscal_serialize_json()
    # trestle does not check these; the official schema does.
    assert re.match(trestle_oscal.OSCAL_VERSION_REGEX, doc["assessment-results"]["metadata"]["oscal-version"])
    for result in model.results:
        for finding in result.findings or []:
            assert finding.target.status is not None, finding.title  # required by the official schema
    return model


def validated_catalog(doc: dict) -> Catalog:
    assert set(doc) == {"catalog"}
    model = Catalog.parse_obj(doc["catalog"])
    model.oscal_serialize_json()
    return model


def ids_referenced(doc: dict) -> None:
    """Every uuid the results point at is defined in the document: parties, components, the
    tool, risks and observations (trestle checks shapes, not references)."""
    ar = doc["assessment-results"]
    (result,) = ar["results"]
    parties = {p["uuid"] for p in ar["metadata"]["parties"]}
    roles = {r["id"] for r in ar["metadata"]["roles"]}
    for rp in ar["metadata"]["responsible-parties"]:
        assert rp["role-id"] in roles and set(rp["party-uuids"]) <= parties
    local = result["local-definitions"]
    components = {c["uuid"] for c in local["components"]}
    tools = {c["uuid"] for c in local["assessment-assets"]["components"]}
    observations = {o["uuid"] for o in result.get("observations", [])}
    risks = {r["uuid"] for r in result.get("risks", [])}
    for entry in result.get("observations", []) + result.get("findings", []) + result.get("risks", []):
        for origin in entry["origins"]:
            assert {a["actor-uuid"] for a in origin["actors"] if a["type"] == "tool"} <= tools
    for o in result.get("observations", []):
        assert {s["subject-uuid"] for s in o["subjects"]} <= components
    for f in result.get("findings", []):
        assert {r["risk-uuid"] for r in f.get("related-risks", [])} <= risks
        assert {r["observation-uuid"] for r in f["related-observations"]} <= observations
    for r in result.get("risks", []):
        assert {x["observation-uuid"] for x in r["related-observations"]} <= observations
        for entry in r["risk-log"]["entries"]:
            assert {x["party-uuid"] for x in entry["logged-by"]} <= parties


def props(entry: dict, name: str) -> list[str]:
    return [p["value"] for p in entry.get("props", []) if p["name"] == name and p["ns"] == NS]


def finding_for(doc: dict, check_id: str) -> dict:
    (result,) = doc["assessment-results"]["results"]
    return next(f for f in result["findings"] if f["target"]["title"] == check_id)


def observation_for(doc: dict, finding: dict) -> dict:
    (result,) = doc["assessment-results"]["results"]
    (related,) = finding["related-observations"]
    return next(o for o in result["observations"] if o["uuid"] == related["observation-uuid"])


@pytest.fixture(scope="module")
def deletion_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oscal-soft-delete")
    reports = tmp / "reports"
    run = run_suites(tmp, DELETION, flaws=("soft_delete",), args=("--privacy-reports", str(reports)))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    return tmp, reports, run


def test_a_real_run_writes_valid_oscal_assessment_results(deletion_run):
    _, reports, run = deletion_run
    path = reports / compliance.OSCAL_JSON
    doc = json.loads(path.read_text())
    model = validated(doc)
    assert model.metadata.oscal_version.__root__ == OSCAL_VERSION
    ar = doc["assessment-results"]
    # import-ap points at the back-matter resource that describes the plan.
    resources = {r["uuid"]: r for r in ar["back-matter"]["resources"]}
    assert ar["import-ap"]["href"].startswith("#") and ar["import-ap"]["href"][1:] in resources
    (result,) = ar["results"]
    # the checks that ran, and those of the suite that did not (one file of it ran): each is a
    # finding, the latter never satisfied
    report = json.loads((reports / compliance.REPORT_JSON).read_text())
    not_run = {c["check_id"] for c in report["checks"] if c["outcome"] == "not run"}
    assert not_run and not not_run & set(run.results)
    assert len(result["observations"]) == len(result["findings"]) == len(run.results) + len(not_run)
    assert len(run.results) >= 5
    assert {f["target"]["title"] for f in result["findings"]} == set(run.results) | not_run
    for check_id in not_run:
        finding = finding_for(doc, check_id)
        assert finding["target"]["status"] == {"state": "not-satisfied", "reason": "other"}, check_id
        assert props(finding, "outcome") == ["not run"]

    broken = finding_for(doc, BROKEN)
    assert run.outcomes()[BROKEN] == "failed"
    assert broken["target"]["status"] == {"state": "not-satisfied", "reason": "fail"}
    assert props(broken, "outcome") == ["failed"]
    clauses = props(broken, "clause")
    assert "ccpa:1798.105" in clauses or any(c.startswith("ccpa:1798.105(") for c in clauses), clauses
    assert clauses == [compliance.clause_id(c) for c in run.results[BROKEN]["clauses"]]
    observation = observation_for(doc, broken)
    assert observation["methods"] == ["TEST"]
    ids_referenced(doc)
    # the target and the store the soft-deleted rows are in are its subjects; the tool its origin
    components = {c["uuid"]: c["title"] for c in result["local-definitions"]["components"]}
    titles = [components[s["subject-uuid"]] for s in observation["subjects"]]
    assert titles[0] == report["run"]["target"]["name"] and "store app" in titles, titles
    places = [p["id"] for p in report["checks"][[c["check_id"] for c in report["checks"]].index(BROKEN)]["places"]]
    assert {p for s in observation["subjects"] for p in props(s, "place")} == set(places)
    (tool,) = result["local-definitions"]["assessment-assets"]["components"]
    assert observation["origins"] == broken["origins"] == [{"actors": [{"type": "tool", "actor-uuid": tool["uuid"]}]}]
    # parties: the assessor and the operator the run recorded
    metadata = ar["metadata"]
    parties = {p["uuid"]: p["name"] for p in metadata["parties"]}
    by_role = {rp["role-id"]: [parties[u] for u in rp["party-uuids"]] for rp in metadata["responsible-parties"]}
    assert by_role["assessor"] == ["privacy-checks"]
    assert by_role["operator"] == [report["run"]["operator"]["name"]] and report["run"]["operator"]["name"]
    # the controls: the checks, in the catalog written beside the results
    catalog = json.loads((reports / CATALOG_JSON).read_text())
    validated_catalog(catalog)
    assert {c["title"] for c in catalog["catalog"]["controls"]} == set(run.results) | not_run
    (selection,) = result["reviewed-controls"]["control-selections"]
    assert {c["control-id"] for c in selection["include-controls"]} == {c["id"] for c in catalog["catalog"]["controls"]}
    assert "risks" not in result  # no waiver, no accepted deviation
    assert "users" in observation["description"] and "Traceback" not in observation["description"]
    (evidence,) = observation["relevant-evidence"]
    assert evidence["href"] == f"evidence/{BROKEN}.json"
    assert props(evidence, "sha256") == [hashlib.sha256((reports / evidence["href"]).read_bytes()).hexdigest()]

    passed = [c for c, o in run.outcomes().items() if o == "passed"]
    assert passed
    for check_id in passed:
        finding = finding_for(doc, check_id)
        assert finding["target"]["status"]["state"] == "satisfied", check_id
        assert props(finding, "outcome") == ["passed"] and props(finding, "clause"), check_id
    for check_id, outcome in run.outcomes().items():
        if outcome != "passed":
            assert finding_for(doc, check_id)["target"]["status"]["state"] == "not-satisfied", check_id

    manifest = json.loads((reports / compliance.MANIFEST).read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed[compliance.OSCAL_JSON] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert listed[CATALOG_JSON] == hashlib.sha256((reports / CATALOG_JSON).read_bytes()).hexdigest()
    # Only what the sanitised compliance report holds: no password canary, no bearer token.
    data = path.read_bytes()
    assert not re.search(rb"Pw-" + re.escape(MARKER.encode()) + rb"[0-9a-z]+", data)
    assert not re.search(rb"(?i)\bbearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}", data)


def test_a_waived_check_is_an_accepted_risk_naming_its_justification_approver_and_expiry(tmp_path):
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(f"""
- check: {BROKEN}
  justification: Search rows are purged by the nightly reindex (PRIV-112)
  approver: Dana Whitfield, Privacy Counsel
  expires: 2099-12-31
""")
    reports = tmp_path / "reports"
    run = run_suites(tmp_path, DELETION, flaws=("soft_delete",),
                     args=("--privacy-check", BROKEN, "--privacy-waivers", str(waivers),
                           "--privacy-reports", str(reports)))
    assert run.outcomes()[BROKEN] == "waived", run.stdout[-3000:]
    doc = json.loads((reports / compliance.OSCAL_JSON).read_text())
    validated(doc)
    ids_referenced(doc)
    (result,) = doc["assessment-results"]["results"]
    (risk,) = result["risks"]
    finding = finding_for(doc, BROKEN)
    assert finding["related-risks"] == [{"risk-uuid": risk["uuid"]}]
    assert props(finding, "outcome") == ["waived"] and finding["target"]["status"]["state"] == "not-satisfied"
    assert risk["status"] == "deviation-approved"
    assert risk["description"] == "Search rows are purged by the nightly reindex (PRIV-112)"
    assert props(risk, "approver") == ["Dana Whitfield, Privacy Counsel"]
    assert props(risk, "expires") == ["2099-12-31"] and risk["deadline"] == "2099-12-31T23:59:59+00:00"
    assert "users" in risk["statement"]  # what is still broken, accepted
    places = next(c for c in json.loads((reports / compliance.REPORT_JSON).read_text())["checks"]
                  if c["check_id"] == BROKEN)["places"]
    assert props(risk, "place") == [p["id"] for p in places] and any("users" in p for p in props(risk, "place"))
    (entry,) = risk["risk-log"]["entries"]
    parties = {p["uuid"]: p for p in doc["assessment-results"]["metadata"]["parties"]}
    assert parties[entry["logged-by"][0]["party-uuid"]]["name"] == "Dana Whitfield, Privacy Counsel"
    assert entry["status-change"] == "deviation-approved"
    observation = observation_for(doc, finding)
    assert risk["related-observations"] == [{"observation-uuid": observation["uuid"]}]
    components = {c["uuid"]: c["title"] for c in result["local-definitions"]["components"]}
    assert "store app" in [components[s["subject-uuid"]] for s in observation["subjects"]]


def test_privacy_checks_report_rebuilds_the_same_oscal_document(deletion_run, monkeypatch, capsys):
    tmp, reports, _ = deletion_run
    path = reports / compliance.OSCAL_JSON
    before = path.read_bytes()
    path.unlink()
    monkeypatch.delenv(compliance.SIGNING_KEY_ENV, raising=False)
    code = build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(reports), "--no-allure-html"])
    assert code == 0
    assert f"OSCAL assessment results: {path}" in capsys.readouterr().out
    assert path.read_bytes() == before
    manifest = json.loads((reports / compliance.MANIFEST).read_text())
    assert compliance.OSCAL_JSON in {f["path"] for f in manifest["files"]}


def _check(check_id: str, outcome: str, message: str, clauses: list[str], evidence: bool = False) -> dict:
    entry = {"check_id": check_id, "outcome": outcome, "outcome_in_words": compliance.PLAIN[outcome],
             "message": message, "where": [], "clauses": clauses,
             "clause_ids": [compliance.clause_id(c) for c in clauses], "test": f"suites/x.py::test_{outcome[:3]}",
             "finished_at": "2026-03-01T12:00:05+00:00", "duration_s": 0.1, "evidence": None}
    if evidence:
        entry["evidence"] = {"file": f"evidence/{check_id}.json", "sha256": "ab" * 32, "stages": [], "findings": []}
    return entry


@pytest.fixture
def small_report() -> dict:
    """A compliance report as build_report makes it, by hand: every outcome but failed."""
    checks = [
        {**_check("syn.delete.ok", "passed", "", ["ccpa:1798.105(c)", "gdpr:Art. 17"], evidence=True),
         "test": "suites/ccpa/test_right_to_delete.py::test_deleted_subject_leaves_no_trace[sqlite]"},
        _check("syn.delete.unreachable", "error", "the target is unreachable: https://127.0.0.1:9", ["gdpr:Art.17(1)"]),
        _check("syn.correct.manual", "not verified", "the profile says the target cannot drive 'correct'",
               ["ccpa:1798.106"]),
        _check("syn.limit.none", "not applicable", "the target does not offer 'limit': no sensitive data",
               ["ccpa_regs:7026"]),
        {**_check("syn.optout.gap", "waived", "a known gap, accepted", ["ccpa_regs:7022(b)"]),
         "places": [{"id": "table:search/index_rows/body", "words": "search: table index_rows, column body",
                     "waived": {"by": ["waivers.yaml#1"], "clauses": ["ccpa_regs:7022(b)"], "whole": True}},
                    {"id": "recipient:analytics/POST /collect", "words": "analytics (processor) POST /collect"}],
         "waived": {"complete": True, "waivers": [
             {"check": "syn.optout.gap", "clause": None, "justification": "Reindexed nightly (PRIV-112)",
              "approver": "Dana Whitfield, Privacy Counsel", "expires": "2099-12-31", "source": "waivers.yaml#1",
              "places": [], "approved": "2026-02-01"}]}},
        _check("syn.gpc.header", "skipped", "", ["gpc:Sec-GPC"]),
        # A failed call and a failed teardown of the same check: two entries, two findings.
        _check("syn.delete.unreachable", "error", "teardown: the subject could not be removed", ["gdpr:Art. 17"]),
    ]
    return {
        "schema": compliance.SCHEMA, "generated_at": "2099-01-01T00:00:00+00:00", "framework": "privacy-checks 0.1.0",
        "run": {"started_at": "2026-03-01T12:00:00.123456+00:00", "finished_at": "2026-03-01T12:00:09+00:00",
                "target": {"name": "unit", "base_url": "https://127.0.0.1:1", "nonce": "abc123"},
                "results_file": "privacy-results.json", "results_sha256": "cd" * 32,
                "operator": {"name": "auditor-jo", "source": "--privacy-operator"}, "host": "ci-runner-7",
                "framework": {"version": "0.1.0", "commit": "f" * 40, "modified": False},
                "examined": {"stores": [{"name": "app", "kind": "sql"}, {"name": "search", "kind": "sql"}],
                             "recipients": [{"name": "analytics", "deliveries_read": 3}]}},
        "summary": {"verdict": "incomplete: some checks could not be made", "in_words": "This run checked 7 promises."},
        "outcomes_explained": compliance.EXPLAIN,
        "regulations": [{"family": "ccpa", "clauses": [{"clause": "1798.105"}, {"clause": "1798.106"}]},
                        {"family": "gdpr", "clauses": [{"clause": "17"}]}],
        "checks": checks,
    }


def test_only_a_passed_check_is_satisfied_and_the_real_outcome_is_kept(small_report):
    doc = oscal_assessment_results(small_report)
    validated(doc)
    (result,) = doc["assessment-results"]["results"]
    findings = result["findings"]
    assert len(findings) == len(result["observations"]) == 7
    assert len({f["uuid"] for f in findings} | {o["uuid"] for o in result["observations"]}) == 14
    by_outcome: dict[str, dict] = {}
    for finding in findings:
        by_outcome.setdefault(props(finding, "outcome")[0], finding)
    assert set(by_outcome) == {"passed", "error", "not verified", "not applicable", "waived", "skipped"}
    assert by_outcome["passed"]["target"]["status"] == {"state": "satisfied", "reason": "pass"}
    for outcome in ("error", "not verified", "not applicable", "waived", "skipped"):
        assert by_outcome[outcome]["target"]["status"] == {"state": "not-satisfied", "reason": "other"}, outcome
    assert by_outcome["not applicable"]["target"]["implementation-status"] == {"state": "not-applicable"}
    # Clauses by their stable ids, whatever spelling the marker used.
    assert props(by_outcome["passed"], "clause") == ["ccpa:1798.105(c)", "gdpr:Art. 17"]
    assert props(by_outcome["error"], "clause") == ["gdpr:Art. 17(1)"]
    assert props(findings[-1], "clause") == ["gdpr:Art. 17"] and findings[-1]["target"]["title"] == "syn.delete.unreachable"
    assert props(by_outcome["waived"], "clause") == ["ccpa_regs:7022(b)"]
    assert props(by_outcome["skipped"], "clause") == ["gpc:sec-gpc"]
    assert props(result["reviewed-controls"], "clause") == ["ccpa:1798.105", "ccpa:1798.106", "gdpr:Art. 17"]
    # the controls are the checks, in a catalog the results link to (not include-all alone)
    (selection,) = result["reviewed-controls"]["control-selections"]
    assert "include-all" not in selection
    assert [c["control-id"] for c in selection["include-controls"]] == [
        "syn.delete.ok", "syn.delete.unreachable", "syn.correct.manual", "syn.limit.none", "syn.optout.gap",
        "syn.gpc.header"]
    resources = {r["uuid"]: r for r in doc["assessment-results"]["back-matter"]["resources"]}
    (link,) = result["reviewed-controls"]["links"]
    assert resources[link["href"][1:]]["rlinks"][0]["href"] == CATALOG_JSON
    catalog = oscal_catalog(small_report)
    validated_catalog(catalog)
    controls = {c["id"]: c for c in catalog["catalog"]["controls"]}
    assert set(controls) == {c["control-id"] for c in selection["include-controls"]}
    objectives = {p["id"] for c in controls.values() for p in c["parts"] if p["name"] == "assessment-objective"}
    assert {f["target"]["target-id"] for f in findings} <= objectives
    assert by_outcome["passed"]["target"]["target-id"] == objective_id("syn.delete.ok") == "syn.delete.ok_obj"
    assert props(controls["syn.delete.ok"], "clause") == ["ccpa:1798.105(c)", "gdpr:Art. 17"]
    assert controls["syn.delete.ok"]["parts"][0]["prose"].startswith("Deleted subject leaves no trace. Cites ")
    error_obs = observation_for(doc, by_outcome["error"])
    assert error_obs["description"] == "the target is unreachable: https://127.0.0.1:9"
    assert "relevant-evidence" not in error_obs
    passed_obs = observation_for(doc, by_outcome["passed"])
    assert passed_obs["description"].startswith("syn.delete.ok: passed; the promise held")
    assert passed_obs["relevant-evidence"][0]["href"] == "evidence/syn.delete.ok.json"
    assert passed_obs["collected"] == "2026-03-01T12:00:05+00:00"
    assert (result["start"], result["end"]) == ("2026-03-01T12:00:00.123456+00:00", "2026-03-01T12:00:09+00:00")
    assert doc["assessment-results"]["metadata"]["last-modified"] == result["end"]


def test_parties_subjects_origins_and_the_waiver_as_an_accepted_risk(small_report):
    doc = oscal_assessment_results(small_report)
    validated(doc)
    ids_referenced(doc)
    ar = doc["assessment-results"]
    metadata = ar["metadata"]
    parties = {p["uuid"]: p for p in metadata["parties"]}
    by_role = {rp["role-id"]: [parties[u] for u in rp["party-uuids"]] for rp in metadata["responsible-parties"]}
    assert {r["id"] for r in metadata["roles"]} == set(by_role) == {"assessor", "operator", "waiver-approver"}
    (assessor,) = by_role["assessor"]
    assert assessor["type"] == "organization" and assessor["name"] == "privacy-checks"
    assert props(assessor, "host") == ["ci-runner-7"] and props(assessor, "commit") == ["f" * 40]
    (operator,) = by_role["operator"]
    assert (operator["type"], operator["name"], props(operator, "source")) == (
        "person", "auditor-jo", ["--privacy-operator"])
    (approver,) = by_role["waiver-approver"]
    assert approver["name"] == "Dana Whitfield, Privacy Counsel"

    (result,) = ar["results"]
    components = {c["uuid"]: c for c in result["local-definitions"]["components"]}
    assert {c["title"] for c in components.values()} == {"unit", "store app", "store search", "recipient analytics"}
    (tool,) = result["local-definitions"]["assessment-assets"]["components"]
    assert tool["type"] == "software" and tool["title"] == "privacy-checks 0.1.0"
    for observation in result["observations"]:
        assert observation["origins"] == [{"actors": [{"type": "tool", "actor-uuid": tool["uuid"]}]}]
        assert components[observation["subjects"][0]["subject-uuid"]]["title"] == "unit"
    waived = finding_for(doc, "syn.optout.gap")
    subjects = observation_for(doc, waived)["subjects"]
    assert [components[s["subject-uuid"]]["title"] for s in subjects] == ["unit", "store search", "recipient analytics"]
    assert props(subjects[1], "place") == ["table:search/index_rows/body"]
    assert [s["title"] for s in observation_for(doc, finding_for(doc, "syn.delete.ok"))["subjects"]] == ["unit"]

    (risk,) = result["risks"]
    assert waived["related-risks"] == [{"risk-uuid": risk["uuid"]}]
    assert risk["status"] == "deviation-approved"
    assert risk["description"] == "Reindexed nightly (PRIV-112)" and risk["statement"] == "a known gap, accepted"
    assert props(risk, "approver") == ["Dana Whitfield, Privacy Counsel"] and props(risk, "expires") == ["2099-12-31"]
    assert risk["deadline"] == "2099-12-31T23:59:59+00:00"  # the expiry date is the last day it holds
    (entry,) = risk["risk-log"]["entries"]
    assert entry["status-change"] == "deviation-approved" and entry["end"] == risk["deadline"]
    assert entry["start"] == "2026-02-01T00:00:00+00:00"  # the approval date the waiver gives
    assert props(risk, "place") == ["table:search/index_rows/body"]  # the place it covered, not the other
    assert entry["logged-by"] == [{"party-uuid": approver["uuid"], "role-id": "waiver-approver"}]
    assert risk["related-observations"] == [{"observation-uuid": waived["related-observations"][0]["observation-uuid"]}]
    # only the waived check is a risk; the others have none
    assert [f["target"]["title"] for f in result["findings"] if f.get("related-risks")] == ["syn.optout.gap"]


def test_the_same_report_gives_the_same_document(small_report):
    first = oscal_assessment_results(small_report)
    again = copy.deepcopy(small_report)
    again["generated_at"] = "2100-12-31T23:59:59+00:00"  # when the report was (re)built does not matter
    assert json.dumps(oscal_assessment_results(again)) == json.dumps(first)
    other_run = copy.deepcopy(small_report)
    other_run["run"]["started_at"] = "2026-03-02T12:00:00+00:00"
    other = oscal_assessment_results(other_run)
    assert other["assessment-results"]["uuid"] != first["assessment-results"]["uuid"]
    validated(other)


def test_an_odd_report_still_gives_a_valid_document(small_report):
    odd = copy.deepcopy(small_report)
    odd["run"] = {"started_at": "", "finished_at": "not a time", "target": {}}
    odd["summary"] = {}
    odd["regulations"] = []
    odd["checks"][0].update(check_id="1st.check", finished_at="2026-03-01T12:00:05", message="  ")
    del odd["checks"][1]["clause_ids"]  # a report built before clause ids: the display names
    doc = validated(oscal_assessment_results(odd))
    assert doc.results[0].findings[0].target.target_id.startswith("_")
    assert oscal_assessment_results({"checks": []})["assessment-results"]["results"][0].get("findings") is None
    validated(oscal_assessment_results({"checks": []}))


def test_write_reports_lists_the_oscal_file_in_the_manifest(tmp_path: Path):
    results = tmp_path / "reports" / "privacy-results.json"
    results.parent.mkdir()
    results.write_text(json.dumps({
        "started_at": "2026-03-01T12:00:00+00:00", "finished_at": "2026-03-01T12:00:09+00:00",
        "target": {"name": "unit"},
        "checks": [{"check_id": "syn.delete.ok", "nodeid": "x.py::t", "outcome": "passed", "message": "",
                    "clauses": ["ccpa:1798.105(c)"], "duration_s": 0.1, "finished_at": "1772366405.0"}]}))
    written = compliance.write_reports(results, results.parent)
    assert written.oscal_path == results.parent / compliance.OSCAL_JSON and not written.problems
    doc = json.loads(written.oscal_path.read_text())
    validated(doc)
    assert props(finding_for(doc, "syn.delete.ok"), "clause") == ["ccpa:1798.105(c)"]
    assert written.report["checks"][0]["clause_ids"] == ["ccpa:1798.105(c)"]
    files = {f["path"] for f in json.loads(written.manifest_path.read_text())["files"]}
    assert {compliance.OSCAL_JSON, compliance.OSCAL_CATALOG, compliance.REPORT_JSON, "privacy-results.json"} <= files
    (result,) = doc["assessment-results"]["results"]
    resources = doc["assessment-results"]["back-matter"]["resources"]
    (source,) = [r for r in resources if r["rlinks"][0]["href"] == "privacy-results.json"]
    # the catalog beside it, with the digest of the bytes written
    catalog_path = results.parent / CATALOG_JSON
    validated_catalog(json.loads(catalog_path.read_text()))
    catalogs = [r for r in resources if r["rlinks"][0]["href"] == CATALOG_JSON]
    assert catalogs and all(r["rlinks"][0]["hashes"][0]["value"] == hashlib.sha256(catalog_path.read_bytes()).hexdigest()
                            for r in catalogs)
    assert catalog_path.read_bytes() == oscal_documents(written.report)[CATALOG_JSON]
    assert source["rlinks"][0]["href"] == "privacy-results.json"
    assert source["rlinks"][0]["hashes"][0]["value"] == hashlib.sha256(results.read_bytes()).hexdigest()
    assert result["links"][0]["href"] == f"#{source['uuid']}"


def test_a_named_assessor_is_the_oscal_assessor_party_and_in_the_run_box(small_report):
    """--privacy-assessor: the organisation behind the assessment, not the tool, is the assessor."""
    import copy

    report = copy.deepcopy(small_report)
    report["run"]["assessor"] = {"name": "Acme Assurance LLP", "source": "--privacy-assessor"}
    doc = oscal_assessment_results(report)
    validated(doc)
    metadata = doc["assessment-results"]["metadata"]
    parties = {p["uuid"]: p for p in metadata["parties"]}
    (assessor,) = [parties[u] for rp in metadata["responsible-parties"] if rp["role-id"] == "assessor"
                   for u in rp["party-uuids"]]
    assert (assessor["type"], assessor["name"]) == ("organization", "Acme Assurance LLP")
    assert props(assessor, "host") == ["ci-runner-7"]  # where it ran is still recorded
    box = "\n".join(compliance._render_run_box(report["run"]))
    assert "<th>Assessor</th><td><code>Acme Assurance LLP</code>" in box
    # without it, the tool is named and the remark says no organisation was
    (plain,) = [p for p in oscal_assessment_results(small_report)["assessment-results"]["metadata"]["parties"]
                if p["name"] == "privacy-checks"]
    assert "No assessing organisation was named" in plain["remarks"]
