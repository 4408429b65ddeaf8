"""The policy as data: the shipped MediaPRO file, the loader's errors, the policy's own
contradictions, and the verdict each promise gets from a run's results."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from privacy_checks.flows.promises import parse_date, visible_text
from privacy_checks.policy import (
    PolicyError,
    default_policy_path,
    field_categories,
    lint_policy,
    load_policy,
    months_between,
    policy_findings,
    promise_verdicts,
)

MEDIAPRO = ROOT / "fixtures" / "policies" / "mediapro-2019.yaml"
SHARED_TEXT = Path("/work/shared/policy/mediapro-privacy-policy-2019.txt")
TODAY = date(2026, 11, 29)


def _suite_check_ids() -> set[str]:
    ids = set()
    for path in (ROOT / "suites").rglob("*.py"):
        ids |= set(re.findall(r"""(?:mark\.check|security)\(\s*["']([a-z0-9][a-z0-9.-]*)["']""", path.read_text()))
    return ids


def _write(tmp_path, data, name="p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True))
    return path


def _mediapro() -> dict:
    return yaml.safe_load(MEDIAPRO.read_text())


# -- the shipped policy ------------------------------------------------------------------------

def test_the_mediapro_policy_loads_and_the_fixture_is_the_shipped_file():
    policy = load_policy(MEDIAPRO)
    assert policy.id == "mediapro-2019" and len(policy.promises) >= 25
    assert MEDIAPRO.resolve() == default_policy_path().resolve()
    assert policy.collected("A") is True and policy.collected("G") is False and policy.collected("L") is None


def test_every_check_id_the_policy_names_exists_in_the_suites():
    missing = load_policy(MEDIAPRO).check_ids() - _suite_check_ids()
    assert not missing, f"the policy names checks no suite defines: {sorted(missing)}"


def test_every_promise_either_names_checks_or_says_why_it_is_manual():
    for promise in load_policy(MEDIAPRO).promises:
        assert bool(promise.get("checks")) != bool(promise.get("manual")), promise["id"]


@pytest.mark.skipif(not SHARED_TEXT.exists(), reason="the shared copy of the MediaPRO policy text is not here")
def test_every_quote_is_verbatim_from_the_published_policy():
    text = re.sub(r"\s+", " ", SHARED_TEXT.read_text())
    data = _mediapro()
    quotes = [p["quote"] for p in data["promises"]]
    quotes += [lst["quote"] for lst in data["field_lists"]] + [f["quote"] for lst in data["field_lists"]
                                                                for f in lst["fields"]]
    quotes += [a["quote"] for a in data["automatic_collection"]]
    quotes += [data["california"][k]["quote"] for k in ("disclosed_for_business_purpose", "sold")]
    quotes += [data["california"]["categories_quote"], data["last_modified_quote"]]
    quotes += [row["title"] for row in data["california"]["categories"].values()]
    missing = [q for q in quotes if re.sub(r"\s+", " ", q) not in text]
    assert not missing, missing


def test_the_disclosure_table_is_the_addendum_s_yes_and_no():
    policy = load_policy(MEDIAPRO)
    assert {c for c in "ABCDEFGHIJK" if policy.collected(c)} == {"A", "B", "C", "F"}
    assert policy.california["disclosed_for_business_purpose"]["categories"] == ["A", "B", "D", "F"]
    assert policy.california["sold"]["categories"] == []
    assert set(policy.listed_fields()) == {"full_name", "email", "username", "password", "company", "department",
                                           "ip_address", "phone", "postal_address", "chat_username", "custom_field",
                                           "moment", "card_number"}


def test_a_sensitive_field_is_also_category_l():
    assert field_categories("geolocation") == ["G", "L"]
    assert field_categories("password") == ["A", "L"]
    assert field_categories("email") == ["A"]


def test_a_driver_s_licence_number_is_b_sensitive_and_never_disclosed():
    from privacy_checks.flows.access import never_disclose

    assert field_categories("drivers_license") == ["B", "L"] and never_disclose("drivers_license")


def _received(*fields):
    from privacy_checks.flows.sharing import CensusOutcome, Delivery

    return CensusOutcome(subject="pcqzexample000", received=[
        Delivery("partner", "third_party", "POST", "/leads", "2026-11-29T00:00:00Z", i, f, "exact", "…")
        for i, f in enumerate(fields)])


def test_recipients_are_held_to_the_categories_disclosed_for_a_business_purpose(tmp_path):
    from privacy_checks.checks.policy import recipients_get_disclosed_categories_only as judge
    from privacy_checks.outcomes import NotApplicable, PromiseBroken

    policy = load_policy(MEDIAPRO)
    # B and A are listed; the L of a sensitive field is the right-to-limit checks' business
    judge(_received("email", "drivers_license", "custom_field"), policy)
    with pytest.raises(PromiseBroken, match=r"category G \(Geolocation data, marked not collected\): partner"):
        judge(_received("email", "geolocation"), policy)
    data = _mediapro()
    del data["california"]["disclosed_for_business_purpose"]
    with pytest.raises(NotApplicable, match="states no categories disclosed"):
        judge(_received("geolocation"), load_policy(_write(tmp_path, data)))


def test_what_the_stores_hold_is_not_judged_complete_over_parts_the_sweep_could_not_read():
    """The disclosure checks claim an absence (no category the policy denies, none it does not
    disclose, no field outside its lists): a place the sweep could not read may hold exactly
    that, so the checks are errors naming it, never passes; what was found still fails."""
    from privacy_checks.checks import policy as judge
    from privacy_checks.flows.disclosure import DisclosureOutcome, Held
    from privacy_checks.outcomes import CheckError, PromiseBroken

    policy = load_policy(MEDIAPRO)
    unread = "uploads: s3://b/scans/big.bin: 5000 bytes, larger than max_object_bytes (4000)"

    def outcome(*held):
        return DisclosureOutcome(subject="pcqzexample000", unswept=[unread],
                                 held=[Held(c, f, "app: table users, column " + f, "exact") for c, f in held],
                                 fields_held={f: ["app: table users, column " + f] for _, f in held})

    for check in (judge.no_undisclosed_category, judge.categories_collected_disclosed, judge.fields_in_policy_lists):
        with pytest.raises(CheckError, match=re.escape(unread)):
            check(outcome(("A", "email")), policy)
    with pytest.raises(PromiseBroken, match="marks G"):
        judge.no_undisclosed_category(outcome(("A", "email"), ("G", "geolocation")), policy)


# -- the policy's own contradictions -------------------------------------------------------------

def test_mediapro_s_own_contradictions_are_findings_about_the_policy():
    findings = {f["id"]: f for f in policy_findings(load_policy(MEDIAPRO), TODAY)}
    d = findings["disclosed-but-not-collected-d"]
    assert "category D" in d["message"] and "marked NO" in d["message"]
    assert "Company has disclosed the following categories" in d["quotes"][1]
    stale = findings["not-updated-in-12-months"]
    assert "§1798.130(a)(5)" in stale["message"] and "2019-12-31" in stale["message"]
    assert stale["quotes"] == ["Last modified: December 2019"] and stale["clauses"] == ["ccpa:1798.130(a)(5)"]
    assert "geolocation data" in findings["collected-automatically-but-marked-no-g"]["quotes"][0]
    assert "Password" in findings["category-not-addressed-l"]["message"]


def test_a_consistent_recent_policy_has_no_such_findings(tmp_path):
    data = _mediapro()
    data["california"]["categories"]["D"]["collected"] = True
    data["last_modified"] = "2026-06-01"
    data["california"]["last_reviewed"] = "2026-06-01"
    ids = {f["id"] for f in policy_findings(load_policy(_write(tmp_path, data)), TODAY)}
    assert "disclosed-but-not-collected-d" not in ids and "not-updated-in-12-months" not in ids


def test_twelve_months_are_counted_by_calendar_month():
    assert months_between(date(2025, 11, 30), TODAY) == 11
    assert months_between(date(2025, 11, 29), TODAY) == 12


# -- loader errors: one message naming the file and the path -----------------------------------

@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["promises"][0].pop("quote"), "promises[0]: 'quote' is a required property"),
    (lambda d: d["promises"][2].update(checks=["Not An Id"]), "promises[2].checks[0]: 'Not An Id' does not match"),
    (lambda d: d["promises"][0].update(manual="because"), "promises[0]: a promise names the checks that verify it "
                                                           "or says why it is manual"),
    (lambda d: d["california"]["categories"].update(M={"collected": True}), "california.categories: 'M' is not"),
    (lambda d: d.update(last_modified="December 2019"), "last_modified: 'December 2019' does not match"),
    (lambda d: d["promises"][0].update(clauses=["ccpa:1798.999"]),
     "promises[0].clauses[0]: unknown CCPA section '1798.999' in this policy"),
    (lambda d: d["field_lists"][0]["fields"][0].update(subject_field="shoe_size"),
     "field_lists[0].fields[0].subject_field: 'shoe_size' is not in the field-to-category table"),
    (lambda d: d["promises"][1].update(id=d["promises"][0]["id"]), "promises[1].id: 'collected-categories' is also "
                                                                   "promises[0]"),
    (lambda d: d.update(colour="blue"), "(root): Additional properties are not allowed ('colour' was unexpected)"),
])
def test_an_invalid_policy_is_refused_naming_file_and_path(tmp_path, mutate, expected):
    data = _mediapro()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(PolicyError) as exc:
        load_policy(path)
    assert str(path) in str(exc.value) and expected in str(exc.value), str(exc.value)


def test_unreadable_and_malformed_files_are_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert lint_policy(missing) == [f"{missing}: cannot read the policy: No such file or directory"]
    bad = _write(tmp_path, "id: x\npromises: [\n", "bad.yaml")
    [message] = lint_policy(bad)
    assert message.startswith(f"{bad}: line 3, column 1: not valid YAML")
    assert lint_policy(_write(tmp_path, "- a list\n", "list.yaml"))[0].endswith("found a list")


def test_a_bad_policy_option_is_one_usage_error_without_a_traceback(tmp_path):
    data = _mediapro()
    data["promises"][3]["checks"] = []
    path = _write(tmp_path, data)
    # the message names the option as it was typed: the short alias, or the full name
    for flag in ("--policy", "--privacy-policy"):
        proc = subprocess.run([sys.executable, "-m", "pytest", "suites/policy", "--collect-only", "-q",
                               flag, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        assert f"{flag}: {path}: promises[3].checks: [] should be non-empty" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


# -- verdicts for the compliance report -------------------------------------------------------

def test_each_promise_gets_verified_broken_manual_or_not_checked():
    policy = load_policy(MEDIAPRO)
    ids = {p["id"]: p for p in policy.promises}
    results = {"checks": [
        {"check_id": "ccpa.sale.nothing-sold", "outcome": "passed", "message": ""},
        {"check_id": "ccpa.delete.account-gone", "outcome": "passed", "message": ""},
        {"check_id": "gdpr.erasure.account-gone", "outcome": "failed", "message": "login still works"},
        {"check_id": "policy.page.last-revised-date-shown", "outcome": "passed", "message": ""},
        {"check_id": "policy.page.new-text-new-date", "outcome": "not applicable", "message": "first observation"},
    ]}
    verdicts = {v["id"]: v for v in promise_verdicts(policy, results)}
    assert set(verdicts) == set(ids)
    assert verdicts["no-sale"]["verdict"] == "verified"
    assert verdicts["no-sale"]["quote"].startswith("MediaPRO does not sell your data")
    assert verdicts["delete-means-account"]["verdict"] == "broken"
    assert "gdpr.erasure.account-gone: failed" in verdicts["delete-means-account"]["reason"]
    assert verdicts["third-parties-confidential"]["verdict"] == "manual"
    # a check that did not run, or could not judge, never verifies a promise
    assert verdicts["last-revised-date"]["verdict"] == "not checked"
    assert verdicts["non-discrimination"]["verdict"] == "not checked"
    assert verdicts["non-discrimination"]["checks"] == [
        {"check_id": "ccpa.non-discrimination.same-price-and-service", "outcome": "not run", "message": ""}]


def test_verdicts_accept_a_mapping_of_check_ids_to_outcomes():
    policy = load_policy(MEDIAPRO)
    verdicts = {v["id"]: v["verdict"] for v in promise_verdicts(policy, {"ccpa.sale.nothing-sold": "waived"})}
    assert verdicts["no-sale"] == "broken"


# -- reading the policy page -------------------------------------------------------------------

def test_the_page_text_skips_markup_and_dates_are_read_in_their_common_forms():
    text = visible_text("<html><head><title>T</title><style>p{}</style></head><body><h1>Policy</h1>"
                        "<p>Last modified: <b>December 2019</b></p><script>var x=1</script></body></html>")
    assert text == "Policy Last modified: December 2019"
    assert parse_date("December 2019") == date(2019, 12, 31)
    assert parse_date("January 1, 2020") == date(2020, 1, 1)
    assert parse_date("2026-01-01") == date(2026, 1, 1)
    assert parse_date("soon") is None
