"""The compliance report states the run's scope and conditions (issue 20, points 2, 3 and 8):
the profile file and its SHA-256, every store, table or file set and recipient examined,
exclusions, the framework build, host, operator, the ledger's run id and any clock override,
with a legend for how values are masked. Real runs of the demo, kept short with --privacy-check.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from datetime import datetime

import pytest

from conftest import run_suites
from privacy_checks.ledger import Ledger
from privacy_checks.observe.forms import CANARY_RE, excerpt
from privacy_checks.report import compliance
from privacy_checks.runtime import demo_profile_path

DELETE = "suites/ccpa/test_right_to_delete.py"
DEADLINES = "suites/ccpa/test_response_deadlines.py"
SWEEP_CHECK = "ccpa.delete.no-residual-data"
RETENTION_CHECK = "ccpa.delete.time-limited-retention-purged"
OPERATOR = "Ada Lovelace (internal audit)"


def _run_box(page: str) -> str:
    found = re.search(r'<section class="box" id="run">.*?</section>', page, re.DOTALL)
    assert found, "the report has no run box"
    return found.group(0)


def _row(box: str, label: str) -> str | None:
    found = re.search(rf"<tr><th>{re.escape(label)}</th><td><code>(.*?)</code></td></tr>", box, re.DOTALL)
    return html.unescape(found.group(1)) if found else None


def _check_div(page: str, check_id: str) -> str:
    found = re.search(rf'<div class="check" id="check-{re.escape(check_id)}">.*?</div>', page, re.DOTALL)
    assert found, f"{check_id} is not in the report"
    return html.unescape(found.group(0))


@pytest.fixture(scope="module")
def delete_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run-box")
    run = run_suites(tmp, DELETE, args=("--privacy-check", SWEEP_CHECK, "--privacy-check", RETENTION_CHECK,
                                        "--privacy-operator", OPERATOR))
    assert run.results[SWEEP_CHECK]["outcome"] == "passed", run.stdout[-3000:]
    report = json.loads((run.reports / compliance.REPORT_JSON).read_text())
    page = (run.reports / compliance.REPORT_HTML).read_text()
    return tmp, run, report, page


def test_run_box_names_the_profile_file_and_its_sha256(delete_run):
    _, _, report, page = delete_run
    box = _run_box(page)
    profile = demo_profile_path()
    digest = hashlib.sha256(profile.read_bytes()).hexdigest()
    assert _row(box, "Profile SHA-256") == digest
    assert _row(box, "Profile") == str(profile.resolve())
    assert report["run"]["profile"]["sha256"] == digest


def test_run_box_counts_every_store_table_and_recipient_examined_as_the_json_lists_them(delete_run):
    _, _, report, page = delete_run
    examined = report["run"]["examined"]
    stores, recipients = examined["stores"], examined["recipients"]
    # the sweep read every store the demo declares, and tables or files in each
    assert {s["name"] for s in stores} == set(report["run"]["profile"]["declared"]["stores"])
    assert all(s["locations"] for s in stores), stores
    app = next(s for s in stores if s["name"] == "app")
    assert any(loc.endswith("users") for loc in app["locations"]), app["locations"]
    declared = [r for r in recipients if r["name"] != "UNDECLARED"]
    assert {r["name"] for r in declared} == set(report["run"]["profile"]["declared"]["recipients"])
    line = html.unescape(re.search(r'<p id="run-examined">(.*?)</p>', _run_box(page), re.DOTALL).group(1))
    counts = re.search(r"(\d+) stores swept .*; (\d+) tables, files, databases or objects read in them; "
                       r"(\d+) declared recipients watched \((\d+) deliveries read", line)
    assert counts, line
    n_stores, n_places, n_recipients, n_deliveries = map(int, counts.groups())
    assert n_stores == len(stores) > 0
    assert n_places == sum(len(s["locations"]) for s in stores) > 0
    assert n_recipients == len(declared) > 0
    assert n_deliveries == sum(r["deliveries_read"] for r in declared) > 0
    for store in stores:
        assert f"<td><code>{store['name']}</code></td>" in page


def test_run_box_states_exclusions_and_what_is_never_examined(delete_run):
    _, _, report, page = delete_run
    exclusions = report["run"]["exclusions"]
    assert exclusions["never_examined"] == list(compliance_never_examined())
    box = html.unescape(_run_box(page))
    assert "Never examined by this framework" in box
    for line in exclusions["never_examined"]:
        assert line in box
    assert "backups" in box and "recipients' own systems" in box


def compliance_never_examined():
    from privacy_checks.report.conditions import NOT_EXAMINED

    return NOT_EXAMINED


def test_run_box_names_operator_host_build_and_the_ledgers_run_id(delete_run):
    tmp, _, report, page = delete_run
    box = _run_box(page)
    assert _row(box, "Operator") == f"{OPERATOR} (--privacy-operator)"
    assert report["run"]["operator"] == {"name": OPERATOR, "source": "--privacy-operator"}
    assert _row(box, "Host")
    framework = report["run"]["framework"]
    assert framework["version"] and _row(box, "Framework").startswith(f"privacy-checks {framework['version']}")
    if framework["commit"]:  # run from this checkout
        assert re.fullmatch(r"[0-9a-f]{40}", framework["commit"]) and framework["commit"] in _row(box, "Framework")
    # the run id is the ledger's, for the run that made this report's canaries
    run_ids = report["run"]["run_ids"]
    assert run_ids and _row(box, "Run id") == ", ".join(run_ids)
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.sqlite'}")
    try:
        rows = [ledger.run(r) for r in run_ids]
    finally:
        ledger.close()
    assert all(rows), run_ids
    assert report["run"]["target"]["nonce"] in {row["nonce"] for row in rows}


def test_legend_explains_the_masking(delete_run):
    _, _, report, page = delete_run
    legend = re.search(r'<section class="box legend">(.*?)</section>', page, re.DOTALL)
    assert legend, "the report has no legend"
    text = html.unescape(legend.group(1))
    assert "«…»" in text and "•" in text and "synthetic subject this run created" in text
    assert "JSON keys" in text
    assert report["legend"]


def test_json_keys_stay_readable_in_a_masked_context():
    canary = "q0nd44444kx7pqa2mzt"
    assert CANARY_RE.fullmatch(canary)
    row = '{"user_id": 4711, "email": "jane.doe@mail.example", "Jane Doe": 1, "note": "' + canary + ' ok"}'
    start = row.index(" ok") + 1
    shown = excerpt(row, start, start + 2, width=200)
    assert '"user_id": ••••' in shown and '"email": "••••.•••@••••.•••••••"' in shown
    assert '"note": "' + canary in shown
    # a key that is not a field name (a person's name as a map key) is masked like a value
    assert "Jane" not in shown and '"•••• •••": •' in shown


def test_not_applicable_and_evidence_free_checks_claim_nothing_they_do_not_bear_out(delete_run):
    tmp, run, report, page = delete_run
    assert run.results[RETENTION_CHECK]["outcome"] == "not applicable"
    retention = _check_div(page, RETENTION_CHECK)
    assert "retention" in retention and "lawfully lacks" not in retention
    # the same results rebuilt after the passing check's evidence file is gone: its evidence is null
    (run.reports / "evidence" / f"{SWEEP_CHECK}.json").unlink()
    written = compliance.write_reports(tmp / "privacy-results.json", run.reports)
    entry = next(c for c in written.report["checks"] if c["check_id"] == SWEEP_CHECK)
    assert entry["outcome"] == "passed" and entry["evidence"] is None
    passed = _check_div(written.html_path.read_text(), SWEEP_CHECK)
    assert "evidence shows how" not in passed and "no evidence file was recorded" in passed


def test_clock_override_is_stated_as_of_that_instant(tmp_path):
    as_of = "2027-01-15T09:30:00+00:00"
    run = run_suites(tmp_path, DEADLINES, args=("--privacy-check", "ccpa.deadlines.respond-45-days"),
                     env={"PRIVACY_CHECKS_NOW": as_of})
    assert run.results, run.stdout[-3000:]
    report = json.loads((run.reports / compliance.REPORT_JSON).read_text())
    page = (run.reports / compliance.REPORT_HTML).read_text()
    sentence = report["summary"]["in_words"]
    assert f"as of {as_of}" in sentence and "PRIVACY_CHECKS_NOW" in sentence
    today = datetime.fromisoformat(report["run"]["started_at"]).date().isoformat()
    assert f" on {today}" not in sentence and not re.search(r"\bon \d{4}-\d\d-\d\d", sentence)
    assert report["run"]["clock"]["as_of"] == as_of
    box = _run_box(page)
    assert _row(box, "Judged as of").startswith(as_of)
    assert html.escape(sentence, quote=True) in page or sentence in html.unescape(page)


def test_run_box_lists_the_profiles_exclusions(tmp_path):
    from privacy_checks.profile import load_profile
    from privacy_checks.report.conditions import of_run, profile_scope

    path = tmp_path / "staging.yaml"
    path.write_text("""\
name: staging
base_url: https://api.example.com
allowed_hosts: [api.example.com]
operations:
  create_subject:
    steps:
      - {method: POST, path: /users, json: {email: "{{ subject.email }}"}}
stores:
  - name: app
    url: sqlite:///app.sqlite
    exclude_tables: [schema_migrations, "audit_*"]
    exclude_columns: [users.password_hash]
not_offered:
  limit: no sensitive personal information is used beyond what the law allows
""", encoding="utf-8")
    scope = profile_scope(load_profile(path, {}))
    assert scope["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    results = {"target": {"name": "staging"}, "checks": [],
               "scope": of_run(target={"profile": scope}, operator_option=None, ledger_runs=[],
                               examined={"stores": [], "recipients": []})}
    report = compliance.build_report(results, out_dir=tmp_path)
    assert report["run"]["exclusions"]["stores"] == [
        {"store": "app", "exclude_tables": ["schema_migrations", "audit_*"], "exclude_columns": ["users.password_hash"]}]
    box = html.unescape(_run_box(compliance.render_html(report)))
    assert "store app: exclude_tables schema_migrations, audit_*; exclude_columns users.password_hash" in box
    assert "right not offered: limit (no sensitive personal information" in box
    # nothing examined is said as such, and the declared store is named as not examined
    assert "0 stores swept" in box and "not examined by this run's checks: store app" in box
