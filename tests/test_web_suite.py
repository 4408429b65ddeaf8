"""suites/web passes on the clean demo and fails — naming page, request, domain and field — with
each web flaw on; its evidence (request timeline, screenshot) reaches Allure and the compliance
report; what cannot be checked is an error, never a pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from privacy_checks.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
GPC = "web.gpc.tags-honour-gpc"
OPT_OUT = "web.opt-out.tags-stop"
FORMS = "web.form-data-not-leaked"
CONSENT = "web.consent.nothing-before-consent"
COOKIES = "web.cookies.disclosed"
ALL = {GPC, OPT_OUT, FORMS, CONSENT, COOKIES}
PIXEL = r"POST https://pixel\.adpartner\.test:\d+/adpartner/collect to adpartner\.test \(adpartner, third_party\)"


def _allure_results(reports: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (reports / "allure-results").glob("*-result.json")]


def _attachments(result: dict) -> list[dict]:
    found = list(result.get("attachments", []))
    stack = list(result.get("steps", []))
    while stack:
        step = stack.pop()
        found += step.get("attachments", [])
        stack += step.get("steps", [])
    return found


def test_clean_demo_passes_every_web_check_and_removes_its_subjects(suite_runner, tmp_path):
    run = suite_runner("suites/web")
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.results) == ALL
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()
    # every visitor was a subject made through the site's own signup, and is gone again
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    try:
        with ledger.engine.connect() as conn:
            states = [r.state for r in conn.execute(ledger.subjects.select())]
    finally:
        ledger.close()
    assert len(states) >= 4 and set(states) == {"cleaned"}, states
    # a pass shows what it examined: the request timelines are in the evidence
    evidence = json.loads((tmp_path / "reports" / "evidence" / f"{GPC}.json").read_text())["evidence"]
    timelines = {a["name"]: a for a in evidence["attachments"] if a["media_type"] == "application/json"}
    subject = timelines["request timeline: subject (GPC)"]["content"]
    assert subject["gpc"] is True and subject["requests"]
    assert all(r["headers"].get("sec-gpc") == "1" for r in subject["requests"])
    assert not any(r["role"] in ("third_party", "sale", "undeclared") for r in subject["requests"])
    reference = timelines["request timeline: reference visitor"]["content"]
    assert any(r["domain"] == "adpartner.test" for r in reference["requests"])
    # the run's scope names the parties the browser watched, with what it read of each
    report = json.loads((tmp_path / "reports" / "compliance-report.json").read_text())
    parties = {b["name"]: b for b in report["run"]["examined"]["browser_parties"]}
    assert {"adpartner", "replaytrack"} <= set(parties), parties
    assert parties["adpartner"]["role"] == "third_party" and parties["adpartner"]["requests"] > 0, parties
    page = (tmp_path / "reports" / "compliance-report.html").read_text()
    assert "in the browser, 2 declared parties watched and " in page, page[:3000]


@pytest.mark.parametrize(("flaw", "check", "where"), [
    ("pixel_ignores_gpc", GPC,
     [r"page https://127\.0\.0\.1:\d+/web/", PIXEL, r"cookie _adp_uid \(\.adpartner\.test\) \(exact, in cookie header\)",
      r"cookie _adp_uid on \.adpartner\.test: adpartner\.test \(adpartner, third_party\)"]),
    ("pixel_after_opt_out", OPT_OUT,
     [r"page https://127\.0\.0\.1:\d+/web/", PIXEL, r"cookie _adp_uid \(\.adpartner\.test\) \(exact, in "]),
    ("pixel_advanced_matching", FORMS, [r"page https://127\.0\.0\.1:\d+/web/", PIXEL, r"email \(sha256, in body\)"]),
    ("session_recorder_keylogs", FORMS,
     [r"page https://127\.0\.0\.1:\d+/web/signup \(step 'fill #\w+'\)",
      r"POST https://rec\.replaytrack\.test:\d+/replaytrack/events to replaytrack\.test \(replaytrack, third_party\)",
      r"before the form was submitted: \w+ \(exact, in body\)"]),
    ("tracker_before_consent", CONSENT,
     [r"page https://127\.0\.0\.1:\d+/web/signup", r"GET https://tags\.adpartner\.test:\d+/adpartner/pixel\.js "
      r"to adpartner\.test \(adpartner, third_party\) at [^,]+, before the visitor chose in the consent banner; "
      r"sent: none of the visitor's identifiers \(no body, Referer https://127\.0\.0\.1:\d+/\)"]),
    ("tracker_after_reject", CONSENT,
     [r"page https://127\.0\.0\.1:\d+/web/ \(step 'consent: reject'\): GET https://tags\.adpartner\.test:\d+/adpartner/"
      r"pixel\.js to adpartner\.test \(adpartner, third_party\) at [^,]+, after the visitor rejected",
      r"page https://127\.0\.0\.1:\d+/web/\S* \(step '[^']+'\): " + PIXEL + r" at [^,]+, after the visitor rejected; "
      r"sent: the visitor's [^\n]*cookie _adp_uid \(\.adpartner\.test\) \(exact, in body\)",
      r"cookie _adp_uid on \.adpartner\.test: adpartner\.test \(adpartner, third_party\)"]),
    ("undeclared_cookie", COOKIES,
     [r"cookie cm_id on \.cookiematch\.test: cookiematch\.test \(UNDECLARED third party\), set by "
      r"https://sync\.cookiematch\.test:\d+/cookiematch/sync"]),
])
def test_each_web_flaw_fails_exactly_its_check_naming_page_request_domain_and_field(suite_runner, flaw, check, where):
    run = suite_runner("suites/web", flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failing() == {check}, run.outcomes()
    assert run.results[check]["outcome"] == "failed"
    message = run.message(check)
    for pattern in where:
        assert re.search(pattern, message), (pattern, message)
    if flaw == "tracker_after_reject":
        # the banner is obeyed until the visitor answers: only the rejection half is broken
        assert "before the visitor chose" not in message, message


def test_a_failing_web_check_shows_its_screenshot_and_timeline_in_allure_and_the_report(suite_runner, tmp_path):
    run = suite_runner("suites/web/test_form_data.py", flaws=("session_recorder_keylogs",))
    assert run.outcomes() == {FORMS: "failed"}, run.stdout[-3000:]
    reports = tmp_path / "reports"
    result = next(r for r in _allure_results(reports) if r["status"] == "failed")
    attachments = _attachments(result)
    shots = [a for a in attachments if a["type"] == "image/png"]
    timelines = [a for a in attachments if a["name"].startswith("request timeline")]
    assert shots and timelines, [a["name"] for a in attachments]
    assert all((reports / "allure-results" / a["source"]).read_bytes().startswith(b"\x89PNG") for a in shots)
    timeline = json.loads((reports / "allure-results" / timelines[0]["source"]).read_text())
    assert any("/replaytrack/events" in r["url"] for r in timeline["requests"])
    # the compliance report links the screenshot, which is where the link says
    report = json.loads((reports / "compliance-report.json").read_text())
    check = next(c for c in report["checks"] if c["check_id"] == FORMS)
    png = [a for a in check["evidence"]["attachments"] if a["media_type"] == "image/png"]
    assert png and (reports / png[0]["file"]).read_bytes().startswith(b"\x89PNG")
    assert f'href="{png[0]["file"]}"' in (reports / "compliance-report.html").read_text()
    manifest = json.loads((reports / "manifest.json").read_text())
    assert png[0]["file"] in {f["path"] for f in manifest["files"]}


def test_without_chromium_every_web_check_is_an_error_saying_how_to_install_it(suite_runner, tmp_path):
    run = suite_runner("suites/web", env={"PRIVACY_CHECKS_CHROMIUM": str(tmp_path / "no-chromium")})
    assert run.returncode == 1
    assert run.outcomes() == {c: "error" for c in ALL}, run.outcomes()
    for check in ALL:
        assert "install Debian's 'chromium' package (apt-get install chromium)" in run.message(check)
    assert "Traceback" not in run.stdout


def test_a_consent_banner_the_page_lacks_is_an_error_never_a_pass(suite_runner, standalone_demo, tmp_path):
    profile = (ROOT / "fixtures" / "targets" / "demo.yaml").read_text().replace(
        'banner: "#consent-banner"', 'banner: "#cookie-notice"')
    path = tmp_path / "demo-no-banner.yaml"
    path.write_text(profile)
    run = suite_runner("suites/web/test_consent.py", args=("--target", str(path)), env=standalone_demo)
    assert run.outcomes() == {CONSENT: "error"}, run.stdout[-3000:]
    message = run.message(CONSENT)
    assert "browser.consent.banner '#cookie-notice'" in message and "/web/signup" in message, message
    evidence = json.loads((tmp_path / "reports" / "evidence" / f"{CONSENT}.json").read_text())["evidence"]
    assert any(a["media_type"] == "image/png" for a in evidence["attachments"])


def test_consent_check_errors_when_the_browsed_pages_never_call_a_third_party(suite_runner, standalone_demo, tmp_path):
    """The rejection half's positive control: the pages a subject loads after rejecting (the browse
    journey and the barrier page) must be seen calling third parties in the reference visit, or
    their silence after a rejection proves nothing."""
    profile = (ROOT / "fixtures" / "targets" / "demo.yaml").read_text()
    browse = """    browse:
      - visit: /web/
      - visit: /web/account
      - wait_for: "#user-id:not(:empty)"
"""
    assert browse in profile
    path = tmp_path / "demo-quiet-browse.yaml"
    # the barrier page is loaded after the rejection too, so it must be quiet as well
    quiet = profile.replace(browse, "    browse:\n      - visit: /privacy-policy\n").replace(
        "  journeys:\n    signup:", "  barrier: /privacy-policy\n  journeys:\n    signup:")
    assert quiet.count("barrier: /privacy-policy") == 1
    path.write_text(quiet)
    run = suite_runner("suites/web/test_consent.py", args=("--target", str(path)), env=standalone_demo)
    assert run.outcomes() == {CONSENT: "error"}, run.stdout[-3000:]
    message = run.message(CONSENT)
    assert "positive control failed" in message and "browser.journeys.browse and the barrier page made no third-party request" in message
