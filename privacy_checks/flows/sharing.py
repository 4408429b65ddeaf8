"""Procedures behind the sharing suites: opt-out, GPC, limit, objection, sale, non-discrimination.

The order is the point, as in flows/deletion.py:
1. the subject and a control act, so their data reaches the recipients;
2. positive control: a restricted recipient (third party, sale, marketing) received the
   subject's data, and a *later* delivery for the control arrived at the same recipient
   (otherwise an absence after the request would prove nothing);
3. the subject exercises the right through the target's own operation (or, for GPC, only
   sends `Sec-GPC: 1` on its requests);
4. rounds: the subject acts again, then the control; each round is judged only once the
   control's later delivery has reached every recipient judged (the barrier). Rounds go on
   until one is clean or the profile's `timeouts.propagation` runs out, so the evidence
   states the delay observed — 11 CCR §7026(f) allows at most 15 business days, the profile
   bounds how long a run waits;
5. judge: what a restricted recipient received for the subject after the choice took effect.
Procedures never raise for a broken promise; checks/sharing.py judges the recorded outcome.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..errors import PollTimeout, UnexpectedStatus
from ..findings import from_deliveries
from ..observe import sinks as sink_obs
from ..observe.forms import CANARY_RE, excerpt
from ..observe.store_sink import NothingRecorded, StoreSinkLog, store_sink_hits
from ..outcomes import ControlFailed, NotVerified, not_offered, recipients_declared, settle, stage

LEGAL_MAXIMUM = "15 business days (11 CCR §7026(f))"
# how soon each choice must take effect, as the evidence states it next to the delay observed
DEADLINES = {
    "opt_out": LEGAL_MAXIMUM, "gpc": LEGAL_MAXIMUM,
    # the period 11 CCR §7026(f) sets for opt-out, by analogy: deadlines.CCPA_LIMIT says why
    "limit": "15 business days (as 11 CCR §7026(f) sets for opt-out, applied by analogy)",
    "object": "at once: the data shall no longer be processed for direct marketing (GDPR Art. 21(3))",
    "withdraw_consent": "from the withdrawal on (GDPR Art. 7(3))",
}
BARRIER_TIMEOUT = 15.0


@dataclass(frozen=True)
class Choice:
    """One right that must stop data from reaching some recipients."""

    kind: str
    right: str  # the key of the profile's not_offered
    operation: str | None  # None: the signal rides on the subject's own requests (GPC)
    activity: str
    label: str
    recipients: str  # how the restricted recipients are described
    restricted: Callable[[dict], bool]
    sensitive_only: bool = False


def _third_party_or_sale(sink: dict) -> bool:
    return sink.get("role") in ("third_party", "sale")


def _marketing(sink: dict) -> bool:
    return "marketing" in str(sink.get("purpose", "")).lower()


CHOICES = {
    "opt_out": Choice("opt_out", "opt_out", "opt_out", "activity", "opt-out of sale/sharing",
                      "third-party or sale", _third_party_or_sale),
    "gpc": Choice("gpc", "gpc", None, "gpc_activity", "Global Privacy Control signal (Sec-GPC: 1)",
                  "third-party or sale", _third_party_or_sale),
    "limit": Choice("limit", "limit", "limit", "activity", "limit on sensitive personal information",
                    "third-party or sale", _third_party_or_sale, sensitive_only=True),
    "object": Choice("object", "object", "object", "activity", "objection to direct marketing",
                     "marketing", _marketing),
    "withdraw_consent": Choice("withdraw_consent", "object", "withdraw_consent", "activity",
                               "withdrawal of consent to marketing", "marketing", _marketing),
}


@dataclass
class Delivery:
    """One thing a recipient received for a subject."""

    sink: str
    role: str
    method: str
    path: str
    received_at: str
    seq: int
    field: str
    form: str
    excerpt: str
    subject_id: str = ""

    def head(self) -> str:
        """Recipient, request (or the store entry that records it) and when it arrived or was seen."""
        when = f", {self.received_at}" if self.method == "via store" else f" at {self.received_at}"
        return f"{self.sink} ({self.role}) {self.method} {self.path}{when}"

    def describe(self) -> str:
        return f"{self.head()}: field {self.field} ({self.form}) {self.excerpt}"


@dataclass
class ChoiceOutcome:
    kind: str
    label: str = ""
    error: str | None = None
    skip: Exception | None = None
    request_id: str | None = None
    request_failure: str | None = None
    requested_at: datetime | None = None
    effective_by: datetime | None = None
    delay_s: float | None = None
    propagation_s: float = 0.0
    rounds: int = 0
    fields: list[str] = field(default_factory=list)
    recipients_before: dict[str, str] = field(default_factory=dict)
    judged: list[str] = field(default_factory=list)
    not_reached_by_activity: list[str] = field(default_factory=list)  # restricted, seen only before the activity
    control_action: str = "activity"  # what the subject did in the positive control's round
    shared_after: list[Delivery] = field(default_factory=list)
    failed_stages: dict[str, str] = field(default_factory=dict)  # "recipients" -> why it failed
    store_sinks_read: list[str] = field(default_factory=list)  # sinks read through their store
    evidence: Any = None


def _deliveries(captures, needles, sinks: list[dict]) -> list[Delivery]:
    """Every needle (in any canary form) each capture carried, with the recipient it went to."""
    from .. import coverage
    from ..evidence import redact_text
    from ..observe.forms import match_text

    captures = list(captures)
    coverage.note_deliveries(captures, sinks)
    out = []
    owners = sink_obs.mail_owners(needles)
    for cap in captures:
        sink = sink_obs.classify(cap.path, sinks)
        name, role = (sink["name"], sink["role"]) if sink else ("UNDECLARED", "undeclared")
        text = "\n".join([cap.path, cap.query, json.dumps(cap.headers), cap.body])
        own = sink_obs.owner_of(cap, owners)  # mail to a subject's own address is not a disclosure of its data
        for m in match_text(text, needles):
            if own is not None and m.needle.subject_id == own:
                continue
            out.append(Delivery(name, role, cap.method, cap.path, cap.received_at, cap.seq, m.needle.field,
                                m.form, redact_text(excerpt(text, m.start, m.end)), m.needle.subject_id))
    return out


class Recipients:
    """What the declared recipients received since a mark: the capture servers' deliveries, and
    the entries that appeared in the records of sinks declared through a store (sinks[].store),
    read again on every look (observe/store_sink.StoreSinkLog says how their order is known)."""

    def __init__(self, run, sinks: list[dict], needles, order: list[str]) -> None:
        self.capture = run.capture
        self.sinks = sinks
        stored = [s for s in sinks if s.get("store")]
        timeout = float(run.profile.timeouts.get("request", 30))
        self.log = StoreSinkLog(run.profile, stored, needles, order, timeout_s=timeout) if stored else None

    def mark(self) -> tuple[int, int]:
        """Everything received so far: a later `since` returns only what came after."""
        return self.capture.last_seq(), self.log.poll() if self.log else 0

    def since(self, mark: tuple[int, int], needles) -> list[Delivery]:
        from ..evidence import redact_text

        out = _deliveries(self.capture.captures(mark[0]), needles, self.sinks)
        if self.log:
            self.log.poll()
            for r in self.log.since(mark[1], needles):
                h = r.hit
                out.append(Delivery(h.sink, h.role, "via store", f"{h.store}: {h.container}",
                                    f"{h.entry}, first seen {r.seen_at}", r.seq, h.field, h.form,
                                    redact_text(h.excerpt), h.subject_id))
        return out

    def why_unread(self, names) -> str:
        """Said beside recipients never seen: what their store held when last read."""
        if not self.log:
            return ""
        said = [self.log.empty[n] for n in names if n in self.log.empty]
        return f"; read through its store: {'; '.join(said)}" if said else ""

    def read_through_stores(self) -> list[str]:
        return sorted(self.log.read) if self.log else []


def group(deliveries: list[Delivery]) -> list[str]:
    """One line per delivery received: recipient, request, time, every field it carried, one excerpt."""
    by_seq: dict[int, list[Delivery]] = {}
    for d in deliveries:
        by_seq.setdefault(d.seq, []).append(d)
    out = []
    for items in by_seq.values():
        d = items[0]
        fields = ", ".join(dict.fromkeys(f"{i.field} ({i.form})" for i in items))
        out.append(f"{d.head()}: fields {fields}; {d.excerpt}")
    return out


def _latest(deliveries: list[Delivery]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in deliveries:
        out[d.sink] = max(out.get(d.sink, 0), d.seq)
    return out


def _skip_or_missing(profile, target, choice: Choice) -> None:
    not_offered(profile, choice.right)
    if choice.kind == "gpc" and profile.gpc_supported is False:
        raise ControlFailed("the profile says gpc.supported: false but gives no not_offered.gpc reason; "
                            "a business that sells or shares must honour the signal (11 CCR §7025(b))")
    for op in filter(None, (choice.operation, choice.activity)):
        if not target.has_operation(op):
            # the profile is silent about a right: not verified, never an error or a pass
            raise NotVerified(f"the profile declares no operation {op!r}, so the {choice.label} cannot be "
                              f"exercised; declare it, or give the reason the target lacks this right in "
                              f"not_offered.{choice.right}")
    recipients_declared(len(profile.sinks), profile.lacks.get("recipients"),
                        f"kept from receiving the subject's data after the {choice.label}")


def run_choice(run, *, test_id: str, evidence, kind: str) -> ChoiceOutcome:
    """Run the whole procedure for one choice; never raises for a broken promise."""
    choice = CHOICES[kind]
    out = ChoiceOutcome(kind=kind, label=choice.label, evidence=evidence)
    return settle(out, _run_choice, run, test_id, evidence, out, choice)


def _run_choice(run, test_id: str, evidence, out: ChoiceOutcome, choice: Choice) -> None:
    target, profile, capture = run.target, run.profile, run.capture
    _skip_or_missing(profile, target, choice)
    sinks = profile.sinks
    restricted = {s["name"]: s for s in sinks if choice.restricted(s)}
    out.propagation_s = propagation = float(profile.timeouts.get("propagation", 60))

    seq0 = capture.last_seq()
    subject = run.create_subject(test_id, role="subject")
    control = run.create_subject(test_id, role="control")
    fields = [f for f in subject.strong_fields() if not choice.sensitive_only or subject.is_sensitive(f)]
    out.fields = fields
    mine = subject.needles(fields)
    ctrl = control.needles(control.strong_fields())
    evidence.stage("subjects created", subject=subject.canary, control=control.canary, fields=fields)
    rec = Recipients(run, sinks, subject.needles(subject.strong_fields()) + ctrl, [subject.id, control.id])
    # What the recipients receive is one stage (positive control, rounds behind a barrier); the
    # request is another: whether a request needs verification is judged even when the
    # recipients could not be observed.
    with stage(out, "recipients"):
        _recipients_before(run, rec, choice, restricted, fields, ctrl, (seq0, 0), propagation, out, evidence,
                           subject, control)

    # -- 3. the request ---------------------------------------------------------------------
    out.requested_at = datetime.now(UTC)
    t_request = time.monotonic()
    if choice.operation:
        try:
            result = target.run(choice.operation, subject)
            evidence.stage(f"{choice.label} requested", operation_seconds=round(result.elapsed, 2))
        except (PollTimeout, UnexpectedStatus) as exc:
            # The consumer asked; whether sharing stops is still judged below.
            out.request_failure = str(exc)
            evidence.stage(f"{choice.label} requested, not carried out", failure=str(exc))
        out.request_id = next((str(v) for k, v in subject.captured.items()
                               if k.endswith("request_id") and k.startswith(choice.operation)), None)
    if "recipients" not in out.failed_stages:
        with stage(out, "recipients"):
            _rounds(target, rec, choice, restricted, mine, ctrl, t_request, propagation, out, evidence, subject,
                    control)
    out.store_sinks_read = rec.read_through_stores()
    if out.failed_stages:
        evidence.stage("stages that could not be completed (each voids only the checks that need it)",
                       **out.failed_stages)


def _recipients_before(run, rec: Recipients, choice: Choice, restricted: dict, fields, ctrl, start: tuple[int, int],
                       propagation: float, out: ChoiceOutcome, evidence, subject, control) -> None:
    target = run.target
    if not restricted:
        raise ControlFailed(f"the profile declares no {choice.recipients} recipient (sinks), so there is nothing "
                            f"the {choice.label} could be shown to stop")
    if not fields:
        raise ControlFailed("the subject has no sensitive field (per privacy_checks/data/field_categories.yaml) "
                            "to follow; add one (e.g. geolocation) to the profile's subject.fields")
    # A restricted recipient expected to receive every subject must be seen receiving this one
    # (any of its values proves the observer sees it there): one never seen is a blind spot where
    # data still arriving after the choice would go unnoticed, not a recipient to leave unjudged.
    expected = sorted(n for n, s in restricted.items() if s.get("expect_subject", True))
    every = subject.needles(subject.strong_fields())

    def since(mark) -> set[str]:
        return {d.sink for d in rec.since(mark, every)}

    # -- 2. positive control -----------------------------------------------------------------
    def later(mark):
        return _later(rec, every, ctrl, mark)

    # Signups settle first (the control's delivery follows the subject's wherever the subject
    # went), so a late signup delivery cannot pass for the activity round below.
    if sink_obs.wait_for(lambda: later(start), timeout=propagation) is None:
        raise ControlFailed(f"observer blind: within {propagation:.0f} s no declared recipient received the "
                            "subject's data followed by a later delivery for the control")
    round_mark = rec.mark()
    if choice.operation is None and _recipe(target, choice.activity):
        # A signal riding on the subject's own requests: its positive control is those very
        # requests without it, so that what the signalled ones do not share is the signal's doing
        # (an operation that shares nothing anyway would otherwise pass).
        target.run(choice.activity, subject, extra_headers={"Sec-GPC": None})
        out.control_action = f"{choice.activity} without Sec-GPC"
    else:
        target.run("activity", subject)
    target.run("activity", control)
    seen: list[Delivery] = []

    def restricted_round():
        seen[:] = [d for d in later(round_mark) or [] if d is not None and d.sink in restricted]
        carrying = any(d.field in fields for d in seen)
        return seen if carrying and set(expected) <= {d.sink for d in seen} else None

    sink_obs.wait_for(restricted_round, timeout=propagation)
    before = [d for d in seen if d.field in fields]
    in_round = {d.sink for d in seen}
    blind = [name for name in expected if name not in in_round and name not in since(start)]
    if blind:
        raise ControlFailed(f"positive control failed: {choice.recipients} recipient(s) {', '.join(blind)} never "
                            f"received the subject {subject.canary} within {propagation:.0f} s, so data still "
                            f"reaching them after the {choice.label} would go unseen; {run.capture_where()} — is "
                            "the target configured to deliver there? (a recipient that does not receive every "
                            "subject is declared with expect_subject: false)" + rec.why_unread(blind))
    if not before:
        raise ControlFailed(f"positive control failed: no {choice.recipients} recipient "
                            f"({', '.join(sorted(restricted))}) received the subject's {', '.join(fields)} from "
                            f"its {out.control_action}, followed by a later delivery for the control, within "
                            f"{propagation:.0f} s, so an absence after the {choice.label} would prove nothing")
    # Every restricted recipient the activity reached is judged behind the barrier, including one
    # that received none of the fields followed (a limit's sensitive ones): it must stay so. One
    # that received the subject but not its activity (a signup feed) cannot be exercised by the
    # rounds, and is named beside the verdict.
    out.recipients_before = {d.sink: d.role for d in seen}
    out.judged = sorted(out.recipients_before)
    out.not_reached_by_activity = [name for name in expected if name not in in_round]
    evidence.stage("positive control: recipients", subject_did=out.control_action, expected=expected,
                   received=[d.describe() for d in before[:10]], judged=out.judged,
                   received_the_subject_but_not_its_activity=out.not_reached_by_activity)


def _recipe(target, name: str) -> bool:
    """An operation the profile's steps make (an adapter's own method takes no header changes)."""
    adapter = getattr(target, "adapter", None)
    return target.profile.operation(name) is not None and (
        adapter is None or type(adapter).__dict__.get(name) is None)


def _signalled(choice: Choice, acted) -> None:
    """Every request of the signalled operation carried Sec-GPC: 1 (a profile that forgot the
    header would blame the target for sharing it was never asked to stop)."""
    bare = [f"{e.method} {urlsplit(e.url).path}" for e in getattr(acted, "exchanges", None) or []
            if {k.lower(): v for k, v in e.request_headers.items()}.get("sec-gpc") != "1"]
    if bare:
        raise ControlFailed(f"operation {choice.activity!r} did not send Sec-GPC: 1 on {', '.join(bare)}, so the "
                            "target was never given the signal; add the header to its steps")


def _later(rec: Recipients, mine, ctrl, mark: tuple[int, int], targets=None):
    """The subject's deliveries since `mark`, once the control's latest follows them everywhere."""
    ids = {n.subject_id for n in mine}
    everything = rec.since(mark, mine + ctrl)
    subj = [d for d in everything if d.subject_id in ids]
    last_subj, last_ctrl = _latest(subj), _latest([d for d in everything if d.subject_id not in ids])
    wanted = set(targets) if targets is not None else {s for s in last_subj if s != "UNDECLARED"}
    if not wanted or any(last_ctrl.get(s, 0) <= last_subj.get(s, 0) for s in wanted):
        return None
    return subj or [None]


def _rounds(target, rec: Recipients, choice: Choice, restricted: dict, mine, ctrl, t_request: float,
            propagation: float, out: ChoiceOutcome, evidence, subject, control) -> None:
    judged = out.judged

    def later(mark, targets=None):
        return _later(rec, mine, ctrl, mark, targets)

    # -- 4. rounds behind a barrier ---------------------------------------------------------
    deadline = t_request + propagation
    dirty: list[Delivery] = []
    while True:
        round_mark = rec.mark()
        round_started = datetime.now(UTC)
        out.rounds += 1
        acted = target.run(choice.activity, subject)
        if choice.operation is None and out.rounds == 1:
            _signalled(choice, acted)
        target.run("activity", control)
        if sink_obs.wait_for(lambda mark=round_mark: later(mark, judged), timeout=BARRIER_TIMEOUT) is None:
            raise ControlFailed(f"barrier failed (observer blind: the control was never delivered): the control's "
                                f"activity after the {choice.label} never reached {', '.join(judged)} within "
                                f"{BARRIER_TIMEOUT:.0f} s, so an absence there cannot be judged")
        dirty = [d for d in rec.since(round_mark, mine) if d.sink in restricted]
        if not dirty:
            out.effective_by = round_started
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    if out.effective_by is not None:
        out.delay_s = round((out.effective_by - out.requested_at).total_seconds(), 2)
        # anything that still reached a restricted recipient since the clean round began
        out.shared_after = [d for d in rec.since(round_mark, mine) if d.sink in restricted]
    else:
        out.shared_after = dirty
    evidence.stage("propagation", requested_at=out.requested_at.isoformat(),
                   effective_by=out.effective_by.isoformat() if out.effective_by else None,
                   observed_delay_s=out.delay_s, rounds=out.rounds, waited_at_most_s=propagation,
                   legal_maximum=DEADLINES[choice.kind], judged_recipients=judged)
    for d in out.shared_after:
        place = from_deliveries([d])[0]
        evidence.finding(kind=f"shared after the {choice.label}", place=place.id, where=place.words,
                         recipient=d.sink, role=d.role, location=f"{d.method} {d.path}", row=d.received_at,
                         field=d.field, form=d.form, excerpt=d.excerpt)


# -- what every recipient ever received -------------------------------------------------------

@dataclass
class CensusOutcome:
    error: str | None = None
    skip: Exception | None = None
    deliveries_read: int = 0  # every capture of this run, each read for canaries
    store_sinks_read: list[str] = field(default_factory=list)  # sinks read through their store
    sale_declared: list[str] = field(default_factory=list)
    sold: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    barrier: list[str] = field(default_factory=list)
    # the subject's own deliveries to declared service providers and third parties (not buyers,
    # not undeclared recipients: those are the sale and undeclared-recipient checks' findings)
    received: list[Delivery] = field(default_factory=list)
    subject: str = ""
    evidence: Any = None


def _canary_finding(cap, role_name: str, own: list[Delivery]) -> str | None:
    from ..evidence import redact_text

    text = "\n".join([cap.path, cap.query, json.dumps(cap.headers), cap.body])
    # mail to a synthetic subject's own address carries that subject's canary as a matter of course
    mine = sink_obs.addressee_token(cap)
    found = [m for m in CANARY_RE.finditer(text.lower()) if m.group() != mine]
    forms = [f"{d.field} ({d.form})" for d in own if d.form not in ("exact", "casefold")]
    if not found and not forms:
        return None
    what = [f"canary {c}" for c in dict.fromkeys(m.group() for m in found)] + forms
    shown = redact_text(excerpt(text, found[0].start(), found[0].end())) if found else own[0].excerpt
    return f"{role_name} {cap.method} {cap.path} at {cap.received_at}: {', '.join(what)}; {shown}"


def run_census(run, *, test_id: str, evidence) -> CensusOutcome:
    """Make a subject and a control act, wait for the control behind the subject, then read
    everything every recipient received in this run (any subject's canary, in any form)."""
    out = CensusOutcome(evidence=evidence)
    return settle(out, _run_census, run, test_id, evidence, out)


def _run_census(run, test_id: str, evidence, out: CensusOutcome) -> None:
    target, profile, capture = run.target, run.profile, run.capture
    sinks = profile.sinks
    recipients_declared(len(sinks), profile.lacks.get("recipients"), "sent only what the policy allows")
    propagation = float(profile.timeouts.get("propagation", 60))
    out.sale_declared = sorted(s["name"] for s in sinks if s.get("role") == "sale")
    seq0 = capture.last_seq()
    subject = run.create_subject(test_id, role="subject")
    control = run.create_subject(test_id, role="control")
    for s in (subject, control):
        if target.has_operation("activity"):
            target.run("activity", s)
    mine = subject.needles(subject.strong_fields())
    ctrl = control.needles(control.strong_fields())

    # every recipient expected to receive each subject must be seen receiving this one: where the
    # observer is blind, what else the target sends cannot be judged either
    expected = sorted(s["name"] for s in sinks if s.get("expect_subject", True))
    seen: set[str] = set()
    # Sinks declared through a store (the target's own record of what went out): read whole on
    # each poll. Rows carry no delivery order, so the barrier there is the control's data being
    # recorded too (it acted after the subject).
    stored = [s for s in sinks if s.get("store")]
    store_hits: dict[str, list] = {}
    empty: dict[str, str] = {}
    timeout = float(profile.timeouts.get("request", 30))

    def read_stores() -> dict[str, tuple[bool, bool]]:
        found = {}
        for sink in stored:
            try:
                hits = store_sink_hits(profile, sink, mine + ctrl, timeout_s=timeout)
            except NothingRecorded as e:  # a stream or a log may appear only with the first delivery
                empty[sink["name"]] = str(e)
                hits = []
            else:
                empty.pop(sink["name"], None)
            store_hits[sink["name"]] = hits
            ids = {h.subject_id for h in hits}
            found[sink["name"]] = (subject.id in ids, control.id in ids)
        return found

    def caught_up():
        caps = capture.captures(seq0)
        last_subj = _latest([d for d in _deliveries(caps, mine, sinks) if d.role != "undeclared"])
        last_ctrl = _latest(_deliveries(caps, ctrl, sinks))
        in_stores = read_stores()
        seen.clear()
        seen.update(last_subj)
        seen.update(name for name, (subj, _) in in_stores.items() if subj)
        if not seen or any(last_ctrl.get(s, 0) <= n for s, n in last_subj.items()) \
                or any(subj and not ctl for subj, ctl in in_stores.values()) or not set(expected) <= seen:
            return None
        return sorted(seen)

    barrier = sink_obs.wait_for(caught_up, timeout=propagation)
    blind = [name for name in expected if name not in seen]
    read_blind = [name for name in blind if name in store_hits]  # read through its store, never showing the subject
    if seen and blind:
        raise ControlFailed(f"positive control failed: declared recipient(s) {', '.join(blind)} never received the "
                            f"subject {subject.canary} within {propagation:.0f} s, so what the target sends "
                            f"beyond the recipients seen cannot be judged; {run.capture_where()} — is the target "
                            "configured to deliver there? (a recipient that does not receive every subject is "
                            "declared with expect_subject: false)"
                            + (f"; {', '.join(read_blind)} read through its store, which recorded nothing of "
                               "the subject" if read_blind else "")
                            + "".join(f" ({why})" for name, why in empty.items() if name in read_blind))
    if not barrier:
        raise ControlFailed(f"observer blind: within {propagation:.0f} s no declared recipient received the "
                            "subject's data followed by a later delivery for the control, so what recipients "
                            "did not receive cannot be judged")
    out.barrier = barrier
    out.subject = subject.canary
    evidence.stage("barrier seen", recipients=barrier)
    out.received = [d for d in _deliveries(capture.captures(seq0), mine, sinks)
                    if d.role not in ("sale", "undeclared")]
    needles = mine + ctrl
    everything = capture.captures(0)
    out.deliveries_read = len(everything)
    for cap in everything:
        if sink_obs.browser_delivery(cap, profile):
            continue
        sink = sink_obs.classify(cap.path, sinks)
        role = sink["role"] if sink else "undeclared"
        if role not in ("sale", "undeclared"):
            continue
        name = f"{sink['name']} (sale)" if sink else "UNDECLARED recipient"
        # hashed or encoded forms carry no marker: this procedure's own subjects are looked for too
        found = _canary_finding(cap, name, _deliveries([cap], needles, sinks))
        if found:
            (out.sold if sink else out.undeclared).append(found)
    read_stores()  # once more: what a store recorded since the barrier counts too
    out.store_sinks_read = sorted(store_hits)
    for sink in stored:
        if sink.get("role") != "sale":
            continue
        for hit in store_hits[sink["name"]]:
            out.sold.append(f"{sink['name']} (sale) via store {hit.store}: {hit.location}: {hit.field} "
                            f"({hit.form}); {hit.excerpt}")
    evidence.stage("recipients read", sale_recipients=out.sale_declared, sold=out.sold[:20],
                   undeclared=out.undeclared[:20], received=group(out.received)[:20])


# -- non-discrimination -------------------------------------------------------------------------

@dataclass
class QuoteOutcome:
    error: str | None = None
    skip: Exception | None = None
    differences: list[str] = field(default_factory=list)
    subject_quote: Any = None
    control_quote: Any = None
    where: str = ""
    evidence: Any = None


def _quote(target, subject) -> tuple[Any, str]:
    result = target.run("price", subject)
    last = result.last
    return (last.json if last.json is not None else last.text), f"{last.method} {last.url}"


def _own_values(subject) -> set[str]:
    return {str(v) for v in list(subject.captured.values()) + list(subject.fields.values()) if v is not None}


def _comparable(quote: Any, own: set[str]) -> bool:
    """Whether a quote holds any value to compare: one that is not empty and not only the
    subject's own (an id, an email). Two empty quotes are equal whatever the target charges."""
    if isinstance(quote, dict):
        return any(_comparable(v, own) for v in quote.values())
    if isinstance(quote, list):
        return any(_comparable(v, own) for v in quote)
    return quote is not None and str(quote).strip() != "" and str(quote) not in own


def _differences(a: Any, b: Any, ignore_a: set[str], ignore_b: set[str], path: str = "") -> list[str]:
    """Where two quotes differ, leaving out values that only identify their own subject."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), ignore_a, ignore_b, f"{path}.{key}" if path else key)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, ignore_a, ignore_b, f"{path}[{i}]")]
    if a == b or (str(a) in ignore_a and str(b) in ignore_b):
        return []
    return [f"{path or 'body'}: {json.dumps(a)} for the opted-out subject, {json.dumps(b)} for the control"]


def run_non_discrimination(run, *, test_id: str, evidence) -> QuoteOutcome:
    out = QuoteOutcome(evidence=evidence)
    return settle(out, _run_non_discrimination, run, test_id, evidence, out)


def _run_non_discrimination(run, test_id: str, evidence, out: QuoteOutcome) -> None:
    target, profile = run.target, run.profile
    if not target.has_operation("price"):
        raise NotVerified("the profile declares no 'price' operation (price or service level quoted to a subject), "
                          "so equal treatment after an opt-out cannot be compared; every business owes it "
                          "(Cal. Civ. Code §1798.125)")
    not_offered(profile, "opt_out")
    if not target.has_operation("opt_out"):
        raise NotVerified("the profile declares no operation 'opt_out' to exercise before comparing quotes; "
                          "declare it, or give the reason the target lacks it in not_offered.opt_out")
    subject = run.create_subject(test_id, role="subject")
    control = run.create_subject(test_id, role="control")
    mine, theirs = _own_values(subject), _own_values(control)
    before_s, out.where = _quote(target, subject)
    before_c, _ = _quote(target, control)
    # a quote with nothing in it is equal to every other: the comparison would pass on nothing
    if not (_comparable(before_s, mine) and _comparable(before_c, theirs)):
        raise ControlFailed(f"positive control failed: {out.where} quoted nothing to compare ({before_s!r} and "
                            f"{before_c!r}: empty, or only the subject's own identifiers), so equal treatment "
                            "after an opt-out cannot be judged; point the 'price' operation at what the target "
                            "quotes a subject (a price, a plan, a service level)")
    # positive control: identical people get identical quotes before anyone exercises a right
    if _differences(before_s, before_c, mine, theirs):
        raise ControlFailed(f"positive control failed: {out.where} quotes two subjects differently before either "
                            f"exercised a right ({before_s!r} vs {before_c!r}); a difference after an opt-out could "
                            "not be attributed to it")
    try:
        target.run("opt_out", subject)
    except (PollTimeout, UnexpectedStatus) as exc:
        raise ControlFailed(f"the subject's opt-out was not carried out ({exc}), so no opted-out subject could be "
                            "compared") from None
    out.subject_quote, _ = _quote(target, subject)
    out.control_quote, _ = _quote(target, control)
    out.differences = _differences(out.subject_quote, out.control_quote, mine, theirs)
    evidence.stage("quotes compared", where=out.where, before={"subject": before_s, "control": before_c},
                   after={"subject": out.subject_quote, "control": out.control_quote}, differences=out.differences)


def procedure(run, request, runner, **kwargs):
    """Body of a module-scoped fixture: run `runner` once, yield its outcome, remove its subjects."""
    yield from run.procedure(request, runner, **kwargs)
