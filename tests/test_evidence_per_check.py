"""Each check's evidence file is its own: the findings at its own places, and the HTTP exchanges
its procedure made, redacted (issue 20 point 7: `account-gone`'s evidence once listed sixteen
residual-data findings of another check, and every file had `"exchanges": []`)."""

from __future__ import annotations

import json

from conftest import run_suites

DELETE = "suites/ccpa/test_right_to_delete.py"
RESIDUAL = "ccpa.delete.no-residual-data"
ACCOUNT = "ccpa.delete.account-gone"


def test_a_shared_procedures_findings_go_only_to_the_check_they_belong_to(tmp_path):
    run = run_suites(tmp_path, DELETE, flaws=("soft_delete",))
    assert run.results[RESIDUAL]["outcome"] == "failed", run.outcomes()
    residual = run.evidence(RESIDUAL)
    own = {p["id"] for p in run.results[RESIDUAL]["places"]}
    findings = residual["evidence"]["findings"]
    assert findings and {f["place"] for f in findings} <= own, (findings[:3], own)
    assert residual["recorded_by"].startswith("fixture deletion_procedure")

    account = run.evidence(ACCOUNT)
    assert account["evidence"]["findings"] == [] and account["evidence"]["findings_of_other_checks"] == len(findings)
    # the report links each place to the evidence file whose findings carry the same place id
    page = (run.reports / "compliance-report.html").read_text()
    first = run.results[RESIDUAL]["places"][0]["id"]
    link = f'<a href="evidence/{RESIDUAL}.json">findings</a> with place <code>'
    assert link in page and first in page.split(link, 1)[1][:300], first
    # the procedure's stages stay in every file that judges it
    assert [s["stage"] for s in account["evidence"]["stages"]] == [s["stage"] for s in residual["evidence"]["stages"]]


def test_evidence_records_the_procedures_http_exchanges_redacted(tmp_path):
    run = run_suites(tmp_path, DELETE, args=("--privacy-check", "ccpa.delete.request-completes"))
    assert run.outcomes() == {"ccpa.delete.request-completes": "passed"}
    evidence = run.evidence("ccpa.delete.request-completes")["evidence"]
    exchanges = evidence["exchanges"]
    shown = len(exchanges) + evidence.get("exchanges_left_out", 0)
    assert 0 < len(exchanges) <= 40 and shown >= len(exchanges)
    deletion = [e for e in exchanges if e["method"] == "POST" and "privacy-requests" in e["url"]]
    assert deletion, [f"{e['method']} {e['url']}" for e in exchanges]
    text = json.dumps(exchanges)
    # no bearer token reaches the file
    assert "Bearer ey" not in text
    auth = [e["request_headers"].get("Authorization") for e in exchanges if e["request_headers"].get("Authorization")]
    assert auth and all("REDACTED" in a for a in auth), auth[:3]


def test_the_sweeps_statements_are_in_the_evidence_without_the_values_searched_for(tmp_path):
    run = run_suites(tmp_path, DELETE, args=("--privacy-check", RESIDUAL))
    assert run.outcomes() == {RESIDUAL: "passed"}, run.outcomes()
    evidence = run.evidence(RESIDUAL)["evidence"]
    stage = next(s for s in evidence["stages"] if s["stage"] == "sweep after deletion")
    queries = stage["queries"]
    assert any(q.startswith("app: SELECT") and "users" in q for q in queries), queries[:3]
    # one statement per table read, as the counts say
    assert len([q for q in queries if q.startswith("app: ")]) >= 5
    # the canaries searched for are never in them (the plan's values stay placeholders)
    created = next(s for s in evidence["stages"] if s["stage"] == "subjects created")
    canaries = [created["subject"], created["control"]]
    assert all(isinstance(c, str) and len(c) > 6 for c in canaries), canaries
    assert not any(c in q for c in canaries for q in queries)
    # every kind of store says how it was searched: files, Redis, object storage, the data lake
    shown = {q.split(":", 1)[0]: q for q in queries}
    assert "every line of the" in shown["logs"], shown["logs"]
    assert "SCAN MATCH * COUNT" in shown["cache"] and "PTTL" in shown["cache"], shown["cache"]
    assert "ListObjectVersions Bucket=privacy-checks-demo Prefix=avatars/" in shown["uploads"], shown["uploads"]
    assert "read_parquet(" in shown["lake"] and " WHERE " in shown["lake"], shown["lake"]
    # the lake's statement compares typed columns with the subjects' values: those stay placeholders
    # typed values as a count of placeholders; a birth date (weak) is read back with a candidate
    # row, never compared alone (docs/profile.md, "Typed values")
    assert "?, …" in shown["lake"] and "datetime values" in shown["lake"], shown["lake"]
    assert '"birth_date"' in shown["lake"] and "date values)" not in shown["lake"].replace("datetime values)", ""), shown["lake"]
    import re

    assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b", shown["lake"]), shown["lake"]  # no birth date or instant
    assert "${" not in json.dumps(queries) and "redis://" not in json.dumps(queries)  # no URL, no password
