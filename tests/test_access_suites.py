"""The know/access/portability and correction suites pass on the clean demo and fail — naming
where — with each flaw on."""

import pytest
import yaml

from privacy_checks.checks.access import UNDISTINGUISHED
from tests.conftest import ROOT, demo_with_recipient_record

ACCESS = ("suites/ccpa/test_right_to_know.py", "suites/gdpr/test_right_of_access.py",
          "suites/gdpr/test_right_to_portability.py")
KNOW = ACCESS[:1]  # flaws whose checks only the CCPA module makes
CORRECTION = ("suites/ccpa/test_right_to_correct.py", "suites/gdpr/test_right_to_rectification.py")
COMPLETE = {"ccpa.know.specific-pieces-complete", "gdpr.access.copy-complete"}
READABLE = {"ccpa.know.machine-readable", "gdpr.portability.machine-readable"}
OTHERS = {"ccpa.know.only-the-requesters-data", "gdpr.access.others-not-disclosed"}
REPLACED = {"ccpa.correct.old-value-replaced-everywhere", "gdpr.rectification.old-value-replaced-everywhere"}
TOLD = {"ccpa.correct.recipients-notified", "gdpr.rectification.recipients-notified"}


def test_clean_demo_passes_every_access_and_correction_check(suite_runner):
    run = suite_runner(*ACCESS, *CORRECTION)
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(run.results) == 14
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()
    # the demo's cache, search index and lake hold only values the account holds too: the pass
    # says how many places were judged by field only, and the evidence names them
    complete = run.results["ccpa.know.specific-pieces-complete"]
    undistinguished = complete["examined"][UNDISTINGUISHED]
    stage = next(s for s in run.evidence("ccpa.know.specific-pieces-complete")["evidence"]["stages"]
                 if s["stage"] == "export judged by place")
    assert undistinguished == len(stage["cannot_tell_apart"]) > 0, (complete["examined"], stage)
    assert any(p.startswith("cache: keys profile:*") for p in stage["cannot_tell_apart"]), stage


@pytest.mark.parametrize(("flaw", "suites", "expected", "where"), [
    ("export_incomplete", ACCESS, COMPLETE, "fields the target holds for the subject: "
                                            "postal_address, chat_username"),
    ("export_html_only", ACCESS, READABLE, "(text/html; found html)"),
    ("export_other_subject", ACCESS, OTHERS, "the decoy's custom_field in https://"),
    ("export_includes_shared_space", ACCESS, OTHERS, "the export discloses another person's messages:\n  the decoy's "
                                                     "message at "),
    ("export_skips_tickets", ACCESS, COMPLETE, "held in 1 place(s): app: table tickets (shown by support_ticket, "
                                               "which only that place holds)"),
    ("export_skips_own_messages", ACCESS, COMPLETE, "held in 1 place(s): app: table messages (shown by message, "
                                                    "which only that place holds)"),
    ("export_includes_password", KNOW, {"ccpa.know.nothing-forbidden-disclosed"}, "key user.password_hash"),
    ("export_categories_incomplete", KNOW, {"ccpa.know.categories-disclosed"},
     "category B (held as card_number, company, department, full_name"),
    ("skip_verification", KNOW, {"ccpa.know.verified-requester-only"}, "was accepted"),
    ("refuse_second_access", KNOW, {"ccpa.know.second-request-honoured"}, "(status denied) delivered no export"),
    ("partial_correction", CORRECTION, REPLACED, "old value still held at search: table documents, column title"),
    ("no_correction_notice", CORRECTION, TOLD, "crm received the old email, full_name but not the corrected value"),
])
def test_each_access_or_correction_flaw_fails_exactly_its_checks_naming_where(suite_runner, flaw, suites, expected,
                                                                              where):
    run = suite_runner(*suites, flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:]
    # an HTML-only export has no categories to read: that check cannot be made, which is an error, not a pass
    could_not_judge = {"ccpa.know.categories-disclosed"} if flaw == "export_html_only" else set()
    assert run.failing() == expected | could_not_judge, run.outcomes()
    for check in expected:
        assert run.results[check]["outcome"] == "failed"
        assert where in run.message(check), run.message(check)
    for check in could_not_judge:
        assert run.results[check]["outcome"] == "error", run.message(check)
        assert "no list of categories at 'categories'" in run.message(check)


def test_a_store_never_seen_holding_the_subject_makes_the_correction_checks_errors_not_passes(
        suite_runner, standalone_demo, tmp_path):
    """A declared store that never shows the subject is a blind observer: an old value reaching it
    after the correction would go unseen. The correction checks must then say they could not be
    made (as deletion does), never pass on the stores that did show it."""
    blind = tmp_path / "blind"
    blind.mkdir()
    (blind / "app.log").write_text("a log the target never writes to\n")
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    data["stores"].append({"name": "blind", "files": [str(blind / "*.log")]})
    data["timeouts"]["propagation"] = 3
    profile = tmp_path / "demo-blind-store.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(*CORRECTION, args=("--target", str(profile)), env=standalone_demo)
    assert run.returncode == 1, run.stdout[-3000:]
    assert {run.results[c]["outcome"] for c in REPLACED} == {"error"}, run.outcomes()
    for check in REPLACED:
        message = run.message(check)
        assert "positive control failed" in message and "never seen in store(s) blind within 3 s" in message, message


def test_with_no_store_showing_the_subject_completeness_is_an_error_not_a_pass(suite_runner, standalone_demo,
                                                                               tmp_path):
    """What the export owes is what the stores were seen holding. A profile whose stores show
    none of the subject's values (here: none declared) gives nothing to compare the export
    with, so completeness cannot be judged: an error saying so, never a pass over 0 fields."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    for key in ("stores", "identifiers", "retention_exceptions"):
        data.pop(key, None)
    profile = tmp_path / "demo-no-stores.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(ACCESS[1], args=("--target", str(profile)), env=standalone_demo)
    complete = "gdpr.access.copy-complete"
    assert run.results[complete]["outcome"] == "error", run.outcomes()
    assert "no store was seen holding any of the subject's values" in run.message(complete), run.message(complete)


@pytest.mark.parametrize(("standalone_demo", "outcome"), [((), "passed"), (("no_correction_notice",), "failed")],
                         indirect=["standalone_demo"])
def test_a_recipient_seen_only_through_its_delivery_record_is_judged_on_the_corrected_value(
        suite_runner, standalone_demo, tmp_path, outcome):
    """The crm described only by the target's record of what it sent there (the demo's Redis
    stream sent:crm): the old values found in the record are what it received, the corrected one
    appearing there is the correction passed on."""
    profile = demo_with_recipient_record(tmp_path, "crm")
    run = suite_runner(CORRECTION[0], args=("--target", str(profile)), env=standalone_demo)
    check = "ccpa.correct.recipients-notified"
    assert run.results[check]["outcome"] == outcome, (run.outcomes(), run.message(check))
    if outcome == "failed":
        assert "crm-record received the old email, full_name but not the corrected value" in run.message(check)
    else:
        told = next(s for s in run.evidence(check)["evidence"]["stages"] if s["stage"] == "recipients told")
        assert "crm-record" in str(told), told
