"""What changed since the last run, findings grouped by place, and Allure that reads like the law —
from real runs of the CCPA deletion suite against the demo sharing one ledger:
clean -> soft_delete -> clean (newly broken, then fixed), then --privacy-fail-on new against the
flawed run's results (a known gap passes the gate; the same gap that now also reaches the logs,
a new place, does not)."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from conftest import run_suites
from privacy_checks.findings import MAX_PLACES

DELETION = "suites/ccpa/test_right_to_delete.py"
RESIDUAL = "ccpa.delete.no-residual-data"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("changes")
    reports = tmp / "reports"
    out = {}

    def run(name, flaws=(), args=()):
        out[name] = run_suites(tmp, DELETION, flaws=flaws, args=("--privacy-exit-codes", *args))
        shutil.copy(tmp / "privacy-results.json", tmp / f"{name}.json")
        shutil.copy(reports / "compliance-report.json", tmp / f"{name}-report.json")
        shutil.copy(reports / "compliance-report.html", tmp / f"{name}-report.html")
        return out[name]

    run("clean-1")
    run("flawed", ("soft_delete",), (f"--junitxml={reports / 'junit.xml'}",))
    shutil.copytree(reports / "allure-results", tmp / "allure-flawed")
    shutil.copy(reports / "junit.xml", tmp / "junit-flawed.xml")
    run("clean-2")
    run("new-place", ("soft_delete", "pii_in_logs"),
        ("--privacy-baseline", str(tmp / "flawed.json"), "--privacy-fail-on", "new"))
    run("known-gap", ("soft_delete",), ("--privacy-baseline", str(tmp / "flawed.json"), "--privacy-fail-on", "new"))
    return tmp, out


def section(stdout: str) -> str:
    """The 'what changed' section of the terminal summary."""
    return stdout.split("what changed since the last run", 1)[1].split("privacy-checks reports", 1)[0]


def test_clean_then_flaw_then_clean_shows_newly_broken_then_fixed(runs):
    tmp, out = runs
    assert out["clean-1"].returncode == 0
    assert "the ledger holds no earlier run of target 'demo'" in section(out["clean-1"].stdout)
    flawed = out["flawed"]
    assert flawed.returncode == 1, flawed.stdout[-3000:]
    assert f"newly broken (1):\n  {RESIDUAL}\n" in section(flawed.stdout), section(flawed.stdout)
    changes = json.loads((tmp / "flawed-report.json").read_text())["changes"]
    assert changes["newly_broken"] == [RESIDUAL] and changes["fixed"] == []
    clean = out["clean-2"]
    assert clean.returncode == 0
    assert f"fixed (1):\n  {RESIDUAL}\n" in section(clean.stdout), section(clean.stdout)
    assert json.loads((tmp / "clean-2-report.json").read_text())["changes"]["fixed"] == [RESIDUAL]


def test_fail_on_new_passes_a_known_gap_and_fails_a_new_place(runs):
    _, out = runs
    known = out["known-gap"]
    assert known.returncode == 0, known.stdout[-3000:]
    assert known.results[RESIDUAL]["outcome"] == "failed"
    last = known.stdout.strip().splitlines()[-1]
    assert "1 broken (0 new)" in last and "exit 0: 1 known broken promise(s), none new" in last, last
    assert f"still broken (1):\n  {RESIDUAL}" in section(known.stdout)
    new = out["new-place"]
    assert new.returncode == 1, new.stdout[-3000:]
    text = section(new.stdout)
    assert re.search(rf"new place \(1\):\n  {re.escape(RESIDUAL)}\n    logs: file \S+/app\.log\n", text), text
    assert "exit 1: 1 promise(s) newly broken" in new.stdout.strip().splitlines()[-1]


def test_findings_are_grouped_by_place_with_fields_rows_and_a_limit(runs):
    tmp, out = runs
    result = out["flawed"].results[RESIDUAL]
    places = result["places"]
    assert places and "table:app/users/email" in [p["id"] for p in places], places
    email = next(p for p in places if p["id"] == "table:app/users/email")
    assert email["words"] == "app: table users, column email" and "email" in email["fields"]
    assert email["rows"] and all(r.startswith("id=") for r in email["rows"]) and email["count"] >= 1
    message = result["message"]
    lines = [line for line in message.splitlines() if line.startswith("  ")]
    assert len(lines) == min(len(places), MAX_PLACES) + (len(places) > MAX_PLACES), message
    if len(places) > MAX_PLACES:
        assert f"… and {len(places) - MAX_PLACES} more place(s) (see the evidence)" in message
    # the message shows the first places whole, in the report's order (the subject's own values
    # before weak values and linked rows)
    assert all(p["line"] in message for p in places[:MAX_PLACES]), message
    assert not all(f.startswith("linked row") for f in places[0]["forms"]), places[0]
    # JUnit: a one-line message a CI UI shows whole; the element's text keeps every line.
    failure = next(case.find("failure") for case in ET.parse(tmp / "junit-flawed.xml").getroot().iter("testcase")
                   if case.find("failure") is not None)
    assert "\n" not in failure.get("message") and places[0]["words"] in failure.get("message")
    assert f"\n  {places[0]['words']}" in failure.text
    # The compliance report lists the places, not one line per match.
    check = next(c for c in json.loads((tmp / "flawed-report.json").read_text())["checks"]
                 if c["check_id"] == RESIDUAL)
    assert [p["id"] for p in check["places"]] == [p["id"] for p in places]


def allure_results(tmp):
    return {r["name"]: r for r in (json.loads(p.read_text()) for p in (tmp / "allure-flawed").glob("*-result.json"))}


def test_allure_titles_descriptions_parameters_and_categories_read_like_the_law(runs):
    tmp, _ = runs
    results = allure_results(tmp)
    broken = results["Deleted subject leaves no trace in any store"]
    assert broken["status"] == "failed"
    assert broken["statusDetails"]["message"].startswith("[failed] the deleted subject's data is still held in")
    description = broken["description"]
    assert f"`{RESIDUAL}`" in description
    assert "we will delete (and direct our service providers to" in description  # the policy's words
    assert "[Cal. Civ. Code §1798.105(c)(1)](https://leginfo.legislature.ca.gov/" in description
    params = {p["name"]: p for p in broken["parameters"]}
    assert params["target"]["value"] == "'demo'" or params["target"]["value"] == "demo"
    assert "soft_delete" in params["demo flaws"]["value"] and params["demo flaws"].get("excluded") is True
    assert any(a["name"] == "where the promise broke, by place" for a in broken["attachments"])
    categories = json.loads((tmp / "allure-flawed" / "categories.json").read_text())
    assert [c["name"] for c in categories] == ["not verified", "promise broken", "could not be checked", "waived",
                                               "not applicable"]

    def category(result):
        return next((c["name"] for c in categories if result["status"] in c["matchedStatuses"]
                     and re.fullmatch(c["messageRegex"].replace("(?s)", ""), result.get("statusDetails", {})
                                      .get("message", ""), re.S)), None)

    assert category(broken) == "promise broken"
    na = results["Data kept for a limited time is gone when the period ends"]
    assert na["status"] == "skipped" and category(na) == "not applicable"
    assert category(results["Deletion request is carried out"]) is None  # passed


def test_allure_steps_carry_the_stages_real_times_and_the_check_its_verdicts_time(runs):
    tmp, _ = runs
    for name in ("Deleted subject leaves no trace in any store", "Deletion request is carried out"):
        result = allure_results(tmp)[name]
        (procedure,) = [s for s in result["steps"] if s["name"].startswith("evidence of the procedure")]
        stages = procedure["steps"]
        assert [s["name"] for s in stages][:2] == ["subjects created", "positive control: stores"]
        assert "sweep after deletion" in [s["name"] for s in stages]
        for before, after in zip(stages, stages[1:], strict=False):
            assert before["start"] <= before["stop"] <= after["start"] + 1
        assert stages[-1]["stop"] > stages[0]["start"]
        # The check's own time covers the procedure its verdict rests on (not the 0 s of judging).
        assert result["start"] <= procedure["start"] and result["stop"] >= stages[-1]["stop"]


def test_the_html_report_opens_with_what_changed_and_shows_where_by_place(runs):
    tmp, _ = runs
    flawed = (tmp / "flawed-report.html").read_text()
    changes = flawed.split('id="changes"', 1)[1].split("</section>", 1)[0]
    assert "Newly broken</strong> (1)" in changes and f"<code>{RESIDUAL}</code>" in changes, changes
    # it comes before the summary, as the terminal shows it first
    assert flawed.index('id="changes"') < flawed.index('id="summary"')
    # the broken check's places, one row each, with fields and first rows
    check = flawed.split(f'id="check-{RESIDUAL}"', 1)[1].split('<div class="check"', 1)[0]
    assert "Where, by place:" in check and "<code>app: table users" in check, check[:2000]
    new_place = (tmp / "new-place-report.html").read_text().split('id="changes"', 1)[1].split("</section>", 1)[0]
    assert "Broken in a new place</strong> (1)" in new_place and "app.log" in new_place, new_place
    fixed = (tmp / "clean-2-report.html").read_text().split('id="changes"', 1)[1].split("</section>", 1)[0]
    assert "Fixed</strong> (1)" in fixed, fixed
