"""The sharing suites pass on the clean demo and fail — naming the recipient — with each flaw on."""

from datetime import UTC, datetime

import pytest
import yaml

from privacy_checks.checks import sharing
from privacy_checks.flows.sharing import CensusOutcome, ChoiceOutcome, Delivery
from privacy_checks.outcomes import PromiseBroken
from tests.conftest import ROOT, demo_with_recipient_record

SUITES = ("suites/ccpa/test_opt_out.py", "suites/ccpa/test_global_privacy_control.py",
          "suites/ccpa/test_right_to_limit.py", "suites/ccpa/test_no_sale.py",
          "suites/ccpa/test_non_discrimination.py", "suites/gdpr/test_right_to_object.py")
OPT_OUT = "ccpa.opt-out.sharing-stops"
NO_VERIFICATION = "ccpa.opt-out.no-verification"
GPC = "ccpa.gpc.sharing-stops"
GPC_JSON = "gpc.support-resource.valid"
LIMIT = "ccpa.limit.sensitive-not-disclosed"
NO_SALE = "ccpa.sale.nothing-sold"
UNDECLARED = "ccpa.share.no-undeclared-recipient"
EQUAL = "ccpa.non-discrimination.same-price-and-service"
OBJECT = "gdpr.object.marketing-stops"
WITHDRAW = "gdpr.consent.withdrawal-stops-marketing"
LEAD = "partner (third_party) POST /partner/leads"


def test_clean_demo_passes_every_sharing_check_under_xdist(suite_runner, tmp_path):
    from privacy_checks.ledger import Ledger

    # Two workers creating a fresh SQLite ledger's tables at once race ("table pc_runs already
    # exists"); the ledger is made first, as a CI job would keep one.
    Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}").close()
    # -n 2: the capture sink runs in the controller and both workers' deliveries land in it
    run = suite_runner(*SUITES, args=("-n", "2"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.results) == {OPT_OUT, NO_VERIFICATION, GPC, GPC_JSON, LIMIT, NO_SALE, UNDECLARED, EQUAL,
                                OBJECT, WITHDRAW}
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()


@pytest.mark.parametrize(("flaw", "expected", "where"), [
    ("ignore_opt_out", {OPT_OUT}, LEAD),
    ("ignore_gpc", {GPC}, LEAD),
    ("ignore_limit", {LIMIT}, "POST /partner/leads"),
    ("ignore_objection", {OBJECT, WITHDRAW}, LEAD),
    ("sells_data", {NO_SALE}, "databroker (sale) POST /databroker/purchase"),
    ("shares_with_undeclared", {UNDECLARED}, "UNDECLARED recipient POST /adtech/audience"),
    # mail, observed by the run's SMTP capture server
    ("mail_marketing_after_opt_out", {OPT_OUT}, "newsletter (third_party) SMTP mailto:subscribers@news.partner.example"),
    ("mail_undeclared_recipient", {UNDECLARED},
     "UNDECLARED recipient SMTP mailto:signups@archive.mediapro-backup.example"),
    ("discriminate", {EQUAL}, "price_cents: 6900 for the opted-out subject, 4900 for the control"),
    ("bad_gpc_json", {GPC_JSON}, "/.well-known/gpc.json"),
])
def test_each_sharing_flaw_fails_exactly_its_checks_naming_the_recipient(suite_runner, flaw, expected, where):
    run = suite_runner(*SUITES, flaws=(flaw,))
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failing() == expected, run.outcomes()
    for check in expected:
        assert run.results[check]["outcome"] == "failed"
        assert where in run.message(check), run.message(check)


def test_a_limit_flaw_names_the_sensitive_field_and_the_wait(suite_runner):
    run = suite_runner("suites/ccpa/test_right_to_limit.py", flaws=("ignore_limit",))
    message = run.message(LIMIT)
    assert "drivers_license (exact)" in message and "«" in message, message
    assert "had not taken effect" in message and "as 11 CCR §7026(f) sets for opt-out" in message, message
    assert "the profile's promise that the limit" in message or "the profile's promise" in message, message


def test_an_opt_out_behind_a_verification_code_fails_and_leaves_the_price_check_unmade(suite_runner):
    run = suite_runner(*SUITES[:1], SUITES[4], flaws=("opt_out_requires_verification",))
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.outcomes() == {OPT_OUT: "failed", NO_VERIFICATION: "failed", EQUAL: "error"}
    assert "'verifying'" in run.message(NO_VERIFICATION) or "verifying" in run.message(NO_VERIFICATION)
    # no opted-out subject exists to compare, which is neither a pass nor a fail
    assert "could be compared" in run.message(EQUAL)


def _census(**kwargs) -> CensusOutcome:
    return CensusOutcome(barrier=["crm", "partner"], **kwargs)


def test_without_a_declared_buyer_the_no_sale_check_relies_on_undeclared_recipients():
    sharing.no_sale(_census())
    line = "UNDECLARED recipient POST /adtech/audience at t: canary pcqzaaaaaaaaaa"
    with pytest.raises(PromiseBroken, match="declares no sale recipient, so this check relies on the "
                                            "undeclared-recipient rule"):
        sharing.no_sale(_census(undeclared=[line]))
    # with a buyer declared, an undeclared recipient is the other check's finding
    sharing.no_sale(_census(sale_declared=["databroker"], undeclared=[line]))


def test_an_opt_out_not_in_effect_is_broken_against_the_profiles_bound_and_names_the_legal_deadline():
    """Issue 20 point 4: a failure after the profile's 10 s wait is the profile's promise broken,
    not the law's 15 business days, which end later and are named with their date."""
    requested = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday; no California holiday before Dec 21
    late = Delivery("partner", "third_party", "POST", "/partner/leads", "t", 7, "email", "exact", "«x»")
    outcome = ChoiceOutcome(kind="opt_out", label="opt-out", requested_at=requested, propagation_s=10.0,
                            rounds=3, judged=["partner"], shared_after=[late])
    with pytest.raises(PromiseBroken) as info:
        sharing.sharing_stops(outcome)
    message = str(info.value)
    assert "the profile's promise that the opt-out takes effect within 10 s" in message, message
    assert "15 business days (11 CCR §7026(f)), runs until 2026-12-21 and is not judged by this run" in message
    # a choice the law wants honoured at once (GDPR Art. 21(3)) has no later legal deadline to name
    outcome.kind, outcome.label = "object", "objection"
    with pytest.raises(PromiseBroken, match=r"the law: at once") as info:
        sharing.sharing_stops(outcome)
    assert "runs until" not in str(info.value)


def test_a_choice_that_took_effect_states_the_delay_and_passes():
    outcome = ChoiceOutcome(kind="opt_out", label="opt-out", requested_at=datetime.now(UTC), delay_s=0.4,
                            rounds=1, judged=["partner"])
    sharing.sharing_stops(outcome)
    late = Delivery("partner", "third_party", "POST", "/partner/leads", "t", 7, "email", "exact", "«x»")
    outcome.shared_after = [late, Delivery(**{**late.__dict__, "field": "full_name"})]
    with pytest.raises(PromiseBroken, match=r"(?s)within 0\.4 s .*fields email \(exact\), full_name \(exact\)"):
        sharing.sharing_stops(outcome)


def test_a_restricted_recipient_that_never_received_the_subject_makes_sharing_checks_errors_not_passes(
        suite_runner, standalone_demo, tmp_path):
    """A third party the profile says receives every subject, but which the observer never sees
    receive this one, is a blind spot: data still reaching it after the opt-out would go unseen.
    The sharing checks must say they could not be made (as deletion's recipients control does),
    never pass on the recipients that were seen."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    data["sinks"].append({"name": "adnetwork", "path": "/adnetwork/", "role": "third_party",
                          "purpose": "marketing audiences"})
    # described through the store that records what the target sent, where the demo records nothing
    data["sinks"].append({"name": "audiences", "store": "cache", "key": "sent:audiences", "role": "third_party",
                          "purpose": "marketing audiences"})
    data["timeouts"]["propagation"] = 3
    profile = tmp_path / "demo-blind-recipient.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(*SUITES[:2], SUITES[3], SUITES[5], args=("--target", str(profile)), env=standalone_demo)
    assert run.returncode == 1, run.stdout[-3000:]
    # the census behind no-sale and undeclared-recipient waits for every expected recipient too
    for check in (OPT_OUT, GPC, OBJECT, WITHDRAW):
        assert run.results[check]["outcome"] == "error", run.outcomes()
        message = run.message(check)
        assert "positive control failed" in message and "adnetwork, audiences never received the subject" in message
        # the record was read, and why it showed nothing is said
        assert "read through its store: sink 'audiences': nothing matching sent:audiences in store 'cache'" \
            in message, message
    for check in (NO_SALE, UNDECLARED):
        assert run.results[check]["outcome"] == "error", run.outcomes()
        message = run.message(check)
        assert "positive control failed" in message and "adnetwork, audiences never received" in message, message
        assert "nothing matching sent:audiences in store 'cache'" in message, message
    # whether the request needed verification does not depend on what the recipients received
    assert run.results[NO_VERIFICATION]["outcome"] == "passed", run.outcomes()


@pytest.mark.parametrize("standalone_demo", [("mail_undeclared_recipient",)], indirect=True)
def test_a_restricted_recipient_fed_only_at_signup_is_seen_so_not_an_error_and_named_as_not_judged(
        suite_runner, standalone_demo, tmp_path):
    """The flaw mails every signup, and only signups, to an archive; declared here as a third
    party. The observer sees it receive the subject, so it is no blind spot, but the rounds repeat
    the activity, which never reaches it: the check passes on the recipients the activity reaches
    and says beside the verdict which one it could not judge."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    data["sinks"].append({"name": "archive", "mailbox": "*@archive.mediapro-backup.example",
                          "role": "third_party", "purpose": "archive of signups"})
    data["timeouts"]["propagation"] = 3
    profile = tmp_path / "demo-signup-feed.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(SUITES[0], args=("--target", str(profile)), env=standalone_demo)
    assert run.outcomes()[OPT_OUT] == "passed", run.outcomes()
    assert any("not judged: archive received the subject, but not its activity" in r
               for r in run.results[OPT_OUT]["remarks"]), run.results[OPT_OUT]


_PRICE_READ = {"method": "GET", "path": "/api/price", "auth": "subject", "headers": {"Sec-GPC": "1"}, "expect": [200]}


@pytest.mark.parametrize(("step", "said"), [
    # an operation that shares nothing whatever the signal: its silence proves nothing about GPC
    (_PRICE_READ, "from its gpc_activity without Sec-GPC"),
    # the activity without the signal: the target would be blamed for sharing it was never asked to stop
    ("unsignalled", "operation 'gpc_activity' did not send Sec-GPC: 1 on POST /api/users/"),
])
def test_a_gpc_activity_that_is_not_the_activity_with_the_signal_makes_the_gpc_check_an_error(
        suite_runner, standalone_demo, tmp_path, step, said):
    """The rounds judge `gpc_activity`; its positive control is the same operation without the
    signal, and every request it makes must carry the signal."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    if step == "unsignalled":
        step = {**data["operations"]["gpc_activity"]["steps"][0]}
        step["headers"] = {k: v for k, v in step["headers"].items() if k != "Sec-GPC"}
    data["operations"]["gpc_activity"] = {"steps": [step]}
    profile = tmp_path / "demo-gpc-variant.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(SUITES[1], args=("--target", str(profile)), env=standalone_demo)
    assert run.results[GPC]["outcome"] == "error", run.outcomes()
    assert said in run.message(GPC), run.message(GPC)


def test_a_price_operation_that_quotes_nothing_makes_the_equal_treatment_check_an_error(
        suite_runner, standalone_demo, tmp_path):
    """Two empty quotes are equal whatever the target charges: a `price` operation pointed at
    something that answers 200 with nothing in it (here an empty message list) passed the
    non-discrimination check before it had compared anything."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    data["operations"]["price"] = {"steps": [{"method": "GET", "path": "/api/outbox", "auth": "admin",
                                              "query": {"to": "nobody@example.invalid"}, "expect": [200]}]}
    profile = tmp_path / "demo-empty-quote.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner("suites/ccpa/test_non_discrimination.py", args=("--target", str(profile)),
                       env=standalone_demo)
    assert run.outcomes() == {EQUAL: "error"}, run.outcomes()
    assert "quoted nothing to compare" in run.message(EQUAL), run.message(EQUAL)


_BROKER_RECORD = {"name": "broker-record", "role": "sale", "purpose": "data sale, as the target records it",
                  "store": "app"}


@pytest.mark.parametrize(("sink", "outcome", "said"), [
    # the target's own record of a sale holds the subject: sold, named by store, table, column and row
    ({**_BROKER_RECORD, "table": "users"}, "failed", "broker-record (sale) via store app: table users, column email, row id="),
    # a record that holds nothing of anyone, and is not expected to: read, nothing sold
    ({**_BROKER_RECORD, "query": "SELECT 'no sale recorded' AS payload", "expect_subject": False}, "passed", ""),
    # expected to receive every subject, but its record never showed this one: blind, an error
    ({**_BROKER_RECORD, "query": "SELECT 'no sale recorded' AS payload"}, "error",
     "broker-record read through its store, which recorded nothing of the subject"),
])
def test_the_sale_census_reads_a_recipient_declared_through_a_store(suite_runner, standalone_demo, tmp_path,
                                                                   sink, outcome, said):
    """A target that cannot be pointed at the capture server is described by its own record of
    what went out (sinks[].store): the census behind no-sale reads it like a delivery."""
    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    data["sinks"] = [s for s in data["sinks"] if s["name"] != "databroker"] + [sink]
    data["timeouts"]["propagation"] = 5
    profile = tmp_path / "demo-store-sale.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    run = suite_runner(SUITES[3], args=("--target", str(profile)), env=standalone_demo)
    assert run.results[NO_SALE]["outcome"] == outcome, (run.outcomes(), run.message(NO_SALE))
    assert said in run.message(NO_SALE), run.message(NO_SALE)
    if outcome == "passed":
        assert run.results[NO_SALE]["examined"]["sinks read through their store"] == 1, run.results[NO_SALE]


def _partner_through_its_record(tmp_path):
    return demo_with_recipient_record(tmp_path, "partner")


RECORD = "partner-record (third_party) via store cache: db 0, key sent:partner (stream), entry "
_CHOICES = (SUITES[0], SUITES[1], SUITES[2], SUITES[5])


def test_a_recipient_seen_only_through_its_delivery_record_is_judged_by_every_choice(
        suite_runner, standalone_demo, tmp_path):
    """Opt-out, GPC, objection and withdrawal read a store-backed sink's record between rounds: an
    entry new since the round began is a delivery, the control's new entry the barrier."""
    run = suite_runner(*_CHOICES, args=("--target", str(_partner_through_its_record(tmp_path))),
                       env=standalone_demo)
    # the demo's record keeps a delivery as queued, without the sensitive values that pass through
    # in memory only: it cannot show a limit on them honoured, and says so rather than passing
    assert run.results[LIMIT]["outcome"] == "error", run.outcomes()
    limit = run.message(LIMIT)
    assert "positive control failed: no third-party or sale recipient (" in limit and "partner-record" in limit, limit
    for check in (OPT_OUT, GPC, OBJECT, WITHDRAW):
        assert run.results[check]["outcome"] == "passed", run.outcomes()
        examined = run.results[check]["examined"]
        assert examined["sinks read through their store"] == 1, run.results[check]
        # the record is judged, not only read: it is among the recipients behind the barrier
        assert examined["restricted recipients judged behind a barrier"] >= 1, run.results[check]


@pytest.mark.parametrize(("standalone_demo", "failing"), [
    (("ignore_opt_out",), {OPT_OUT}),
    (("ignore_objection",), {OBJECT, WITHDRAW}),
], indirect=["standalone_demo"])
def test_sharing_after_a_choice_is_found_in_the_targets_delivery_record_naming_the_entry(
        suite_runner, standalone_demo, tmp_path, failing):
    run = suite_runner(SUITES[0], SUITES[5], args=("--target", str(_partner_through_its_record(tmp_path))),
                       env=standalone_demo)
    assert run.returncode == 1, run.stdout[-3000:]
    assert run.failing() == failing, run.outcomes()
    for check in failing:
        message = run.message(check)
        assert RECORD in message and "field payload, first seen" in message, message


def test_a_recipient_declared_through_a_store_is_named_as_not_judged_by_the_https_check(
        suite_runner, standalone_demo, tmp_path):
    """A record says what was sent, not how it travelled: the https check judges the recipients at
    the capture servers and names the store-backed one beside its verdict (before, it was an error
    whatever the target did)."""
    https = "transport.recipients.https"
    run = suite_runner("suites/transport/test_encryption_in_transit.py", "-k", "recipients",
                       args=("--target", str(_partner_through_its_record(tmp_path))), env=standalone_demo)
    assert run.outcomes() == {https: "passed"}, (run.outcomes(), run.message(https))
    assert any("not judged: partner-record, declared through a store" in r for r in run.results[https]["remarks"]), \
        run.results[https]
    assert run.results[https]["examined"]["recipients that received the subject"] >= 1, run.results[https]


def test_a_recipient_declared_through_a_store_makes_the_deletion_notice_check_an_error_saying_why(
        suite_runner, standalone_demo, tmp_path):
    """A deletion notice is recognised by its request at the capture servers; a recipient known
    only through a store's record cannot be shown to have been told, so that check cannot be made
    — while the residual-data checks of the same run are still judged."""
    notified = "ccpa.delete.recipients-notified"
    run = suite_runner("suites/ccpa/test_right_to_delete.py",
                       args=("--target", str(_partner_through_its_record(tmp_path))), env=standalone_demo)
    assert run.results[notified]["outcome"] == "error", run.outcomes()
    message = run.message(notified)
    assert "partner-record is declared through a store (sinks[].store), which this check does not read" in message
    assert run.results["ccpa.delete.no-residual-data"]["outcome"] == "passed", run.outcomes()
