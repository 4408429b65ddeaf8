"""Findings grouped by place, the comparison with a baseline, and the exit status they lead to —
the rules themselves, on hits and results built here (the end-to-end runs are in test_changes.py
and test_gate.py)."""

from __future__ import annotations

import pytest

from privacy_checks.findings import MAX_PLACES, file_roots, from_findings, from_hits, listing, summary
from privacy_checks.observe.forms import MARKER
from privacy_checks.observe.stores.base import Hit
from privacy_checks.report import gate
from privacy_checks.report.changes import compare


def hit(store="synapse", kind="table", where="event_json", at="json", row=None, field="email", form="exact"):
    return Hit(store, kind, where, at, row, "s1", field, form, False, "…")


def test_fourteen_matches_in_one_column_are_one_place_with_fields_forms_rows_and_count():
    hits = [hit(row={"event_id": i}, field="email" if i % 2 else "full_name") for i in range(14)]
    hits.append(hit(row={"event_id": 3}, field="email", form="sha256"))
    (place,) = from_hits(hits)
    assert place.id == "table:synapse/event_json/json" and place.count == 15
    assert place.fields == {"full_name": ["exact"], "email": ["exact", "sha256"]}
    assert place.rows == ["event_id=0", "event_id=1", "event_id=2"]
    assert place.line() == ("synapse: table event_json, column json, rows event_id=0, event_id=1, event_id=2 …: "
                            "fields full_name (exact), email (exact, sha256) (15 matches)")
    assert summary([place]) == "1 place(s), 15 matches"


def test_a_listing_stops_at_the_limit_and_says_how_many_more():
    places = from_hits([hit(where=f"t{i}") for i in range(MAX_PLACES + 3)])
    text = listing(places)
    assert text.count("\n  synapse: table t") == MAX_PLACES
    assert text.endswith("\n  … and 3 more place(s) (see the evidence)")


def test_place_ids_do_not_change_with_temporary_directories_numbers_or_canaries():
    roots = file_roots([{"name": "logs", "files": ["/tmp/run-1/logs/*.log*"]}])
    a = from_hits([hit("logs", "file", "/tmp/run-1/logs/app.log", 7)], roots)[0]
    roots2 = file_roots([{"name": "logs", "files": ["/tmp/run-2/logs/*.log*"]}])
    b = from_hits([hit("logs", "file", "/tmp/run-2/logs/app.log", 90)], roots2)[0]
    assert a.id == b.id == "file:logs/app.log" and a.words != b.words
    k1 = from_hits([hit("cache", "key", f"session:{MARKER}ab12cd", "value", {"db": 0, "type": "string"})])[0]
    k2 = from_hits([hit("cache", "key", f"session:{MARKER}zz99yy", "value", {"db": 0, "type": "string"})])[0]
    assert k1.id == k2.id == "key:cache/db0/session:<canary>"
    o = from_hits([hit("s3", "object", "exports/4711/data.json", "", {"version_id": "v2", "latest": True})])[0]
    assert o.id == "object:s3/exports/#/data.json"


def test_evidence_findings_recorded_before_places_existed_still_group():
    findings = [{"kind": "residual data", "store": "synapse", "location": "event_json", "column": "json",
                 "field": "email", "form": "exact", "row": {"event_id": i}} for i in range(14)]
    (place,) = from_findings(findings)
    assert place.count == 14 and place.words == "residual data: synapse / event_json / json"


def result(check, outcome, *places):
    return {"check_id": check, "outcome": outcome, "places": [{"id": p, "words": p} for p in places]}


def test_compare_names_newly_broken_fixed_still_broken_new_place_and_place_gone():
    before = [result("a.b.fixed", "failed", "p1"), result("a.b.still", "failed", "p1", "p2"),
              result("a.b.held", "passed"), result("a.b.blind", "failed", "p1"), result("a.b.waived", "waived", "p1")]
    now = [result("a.b.fixed", "passed"), result("a.b.still", "failed", "p2", "p3"), result("a.b.held", "failed", "p9"),
           result("a.b.blind", "error"), result("a.b.new", "failed", "p1"), result("a.b.waived", "failed", "p1")]
    c = compare(before, now, baseline="x")
    assert c.newly_broken == ["a.b.held", "a.b.new"]
    assert c.fixed == ["a.b.fixed"]
    assert c.still_broken == ["a.b.still", "a.b.waived"]
    assert [p["id"] for p in c.new_places["a.b.still"]] == ["p3"]
    assert [p["id"] for p in c.places_gone["a.b.still"]] == ["p1"]
    assert c.not_checked_now == ["a.b.blind"]  # never "fixed" by being impossible to check
    assert c.new == ["a.b.held", "a.b.new", "a.b.still"]


@pytest.mark.parametrize("outcomes, kwargs, code", [
    (["passed", "not applicable", "waived"], {}, 0),
    (["passed", "failed", "error"], {}, 1),
    (["passed", "error"], {}, 3),
    (["passed", "not verified"], {}, 0),
    (["passed", "not verified"], {"fail_not_verified": True}, 6),
    (["error", "not verified"], {"fail_not_verified": True}, 3),
    (["passed"], {"other_failures": 1}, 1),
    (["failed"], {"fail_on_new": True, "new_broken": 0}, 0),
    (["failed", "error"], {"fail_on_new": True, "new_broken": 0}, 3),
    (["failed"], {"fail_on_new": True, "new_broken": 1}, 1),
])
def test_exit_status_per_outcome_mix(outcomes, kwargs, code):
    args = {"exit_codes": True, "fail_not_verified": False, "fail_on_new": False, "new_broken": 0,
            "other_failures": 0, **kwargs}
    pytest_status = 1 if {"failed", "error"} & set(outcomes) or args["other_failures"] else 0
    assert gate.decide(gate.count(outcomes), pytest_status=pytest_status, **args).code == code


def test_pytest_statuses_other_than_pass_and_fail_stand():
    for status in (2, 4, 5):
        verdict = gate.decide(gate.count(["failed"]), pytest_status=status, exit_codes=True, fail_not_verified=False,
                              fail_on_new=False, new_broken=1, other_failures=0)
        assert verdict.code == status and not verdict.overridden


def test_without_history_every_broken_check_is_new():
    c = compare([], [result("a.b.c", "failed", "p1"), result("a.b.d", "passed")], baseline="nothing")
    assert c.newly_broken == ["a.b.c"] and c.new == ["a.b.c"] and c.compared == 0
