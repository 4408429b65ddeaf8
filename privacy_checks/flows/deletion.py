"""The deletion procedure shared by the CCPA and GDPR suites.

Order matters and is the point of the module:
1. the subject and a control act, so data reaches stores and recipients;
2. positive control: the sweep finds the subject in every store that must hold it, and the
   recipients' captures show its deliveries (otherwise an absence would prove nothing);
3. the deletion is requested through the target's own interface and polled to completion;
4. the account probes (read the subject, log in as it) run next: they may write (a login
   throttle keeps the name tried), and everything they write must be in front of the sweep;
5. barrier: a new subject, created after the deletion, acts; we wait until its data is
   visible in every store and at every recipient where the deleted subject was seen, so a
   pipeline that has not caught up cannot pass for one that forgot;
6. sweep again and judge: residual data, the recipients, the control.
Each suite test then judges one promise from the recorded outcome. Each depends only on the
stages whose evidence it judges (``STAGES``): a stage that fails is recorded in
``failed_stages`` and shown, and voids only the checks that need it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import PollTimeout, PrivacyChecksError, UnexpectedStatus
from ..findings import WEAK, file_roots, locate
from ..observe import sinks as sink_obs
from ..observe.stores import kind_of, sql_links, sqlite_residue, sweep
from ..observe.stores.base import corroborated
from ..operations import shared_fields
from ..outcomes import settle, stage
from ..retention import exceptions_from_profile, split_allowed
from ..runtime import store_specs

# The stages whose failure can void a check, besides creating the subjects and the request
# itself (which every check needs): stores (control, barrier, final sweep), recipients
# (control, barrier, notices), account (the probes), isolation (the control subject).
STAGES = ("stores", "recipients", "account", "isolation")


@dataclass
class StoreVerdict:
    store: str
    seen_before: list[str] = field(default_factory=list)
    barrier_seen: bool | None = None
    verdict: str = "passed"  # passed | failed | error | no subject data
    message: str = ""


@dataclass
class DeletionOutcome:
    regime: str = "ccpa"
    error: str | None = None
    request_id: str | None = None
    requested_at: datetime | None = None
    completed_at: datetime | None = None
    completion_failure: str | None = None
    stores: dict[str, StoreVerdict] = field(default_factory=dict)
    residual: list = field(default_factory=list)
    weak_residual: list = field(default_factory=list)
    allowed: list = field(default_factory=list)
    unswept: list = field(default_factory=list)
    account_problems: list[str] = field(default_factory=list)
    recipients_before: dict[str, str] = field(default_factory=dict)  # sink -> role
    notices: dict[str, str] = field(default_factory=dict)  # sink -> capture summary
    missing_notices: list[str] = field(default_factory=list)
    shared_after: list[str] = field(default_factory=list)
    isolation_problems: list[str] = field(default_factory=list)
    shared_before: list[str] = field(default_factory=list)  # where the control's contributions were
    shared_unseen: str | None = None  # the control's contributions were never seen: others-intact cannot judge them
    log: list[str] = field(default_factory=list)
    skip: Exception | None = None
    failed_stages: dict[str, str] = field(default_factory=dict)  # stage -> why it could not be completed
    held: list[str] = field(default_factory=list)  # stores seen holding the subject before the request
    swept: dict[str, int] = field(default_factory=dict)  # what the final sweep read (swept_counts)
    sinks_declared: int = 0
    lacks_recipients: str | None = None  # the profile's lacks.recipients reason
    account_probes: list[str] = field(default_factory=list)  # what was tried on the deleted account
    isolation_checked: list[str] = field(default_factory=list)  # what was looked at for the control
    # rows linked to a subject through its ids (observe/stores/sql_links.py), per subject id
    links: dict[str, sql_links.LinkPlan] = field(default_factory=dict)
    linked_before: list[str] = field(default_factory=list)  # where the subject's linked rows were
    control_linked_before: list[str] = field(default_factory=list)
    file_roots: dict[str, list[str]] = field(default_factory=dict)  # what findings name files relative to
    # storage residue (observe/stores/sqlite_residue.py): the deleted subject's canaries in SQLite
    # files that SQL no longer returns; `residue_failing` those of stores set to storage_residue: fail
    residue: list = field(default_factory=list)
    residue_failing: list = field(default_factory=list)
    residue_problems: list[str] = field(default_factory=list)  # fail-mode stores the scan could not judge
    residue_notes: list[str] = field(default_factory=list)  # what the scan saw or could not see, in words
    residue_files: int = 0  # files read by the scan


def _locations(hits) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for h in hits:
        out.setdefault(h.store, []).append(f"{h.table_or_path}.{h.column_or_line}")
    return out


def swept_counts(result) -> dict[str, int]:
    """What a sweep read: stores, and tables or files within them (from its timings)."""
    return {"stores swept": len({t.store for t in result.timings if t.where is None}),
            "tables and files read": len({(t.store, t.where) for t in result.timings if t.where is not None})}


def describe_hit(hit) -> str:
    weak = f", {WEAK}" if hit.weak else ""
    return f"{hit.place()}: field {hit.field} ({hit.form}{weak}) {hit.excerpt}"


def run_deletion(run, *, test_id: str, evidence, subject=None, control=None,
                 regime: str = "ccpa") -> DeletionOutcome:
    """Run the whole procedure; never raises for a broken promise (the outcome records it).

    `regime` ("ccpa" or "gdpr") is the law whose deadline later runs judge the request by."""
    out = DeletionOutcome(regime=regime)
    return settle(out, _run, out, run, test_id, evidence, subject, control)


def _run(out: DeletionOutcome, run, test_id: str, evidence, subject, control) -> None:
    target, profile = run.target, run.profile
    out.file_roots = file_roots(profile.stores)
    propagation = float(profile.timeouts.get("propagation", 30))
    specs = store_specs(profile)
    must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}
    exceptions = exceptions_from_profile(profile)
    capture = run.capture
    sinks = profile.sinks
    out.sinks_declared = len(sinks)
    out.lacks_recipients = profile.lacks.get("recipients")

    subject = subject or run.create_subject(test_id, role="subject")
    control = control or run.create_subject(test_id, role="control")
    for s in (subject, control):
        if target.has_operation("activity"):
            target.run("activity", s)
    shared = shared_fields(profile, subject.strategies)
    if target.has_operation("interact"):
        # the subject shares a space with the control (the decoy of `interact`); each writes into it
        target.run("interact", subject, others={"decoy": control, "control": control})
    evidence.stage("subjects created", subject=subject.canary, control=control.canary, interacted=shared)

    # -- 2. positive control ------------------------------------------------------------------
    with stage(out, "stores"):
        _stores_control(specs, must_hold, subject, control, shared, propagation, out, evidence,
                        profile.identifiers)

    def recipients(needles, since=0):
        caps = capture.captures(since)
        return {h.sink: h.role for h in sink_obs.find_in_captures(caps, needles, sinks)}

    if sinks:
        with stage(out, "recipients"):
            _recipients_control(run, sinks, subject, control, recipients, propagation, out, evidence)

    # -- 3. the deletion request --------------------------------------------------------------
    seq_before = capture.last_seq()
    out.requested_at = datetime.now(UTC)
    try:
        result = target.run("delete", subject)
        out.completed_at = datetime.now(UTC)
    except PollTimeout as exc:
        # Never completing is a broken promise, not an inability to check.
        out.completion_failure = str(exc)
        out.request_id = subject.captured.get("request_id")
        _record_request(run, subject, out, status=f"open (last status {exc.last_status})")
        run.ledger.update_subject(subject.id, state="awaiting_request")
        return
    out.request_id = subject.captured.get("request_id")
    _record_request(run, subject, out, status="completed")
    run.ledger.update_subject(subject.id, state="deleted")
    evidence.stage("deletion requested", request_id=out.request_id, operation_seconds=round(result.elapsed, 2))

    # -- 4. the account probes: before the barrier and the final sweep, which see what they wrote
    with stage(out, "account"):
        _judge_account(target, subject, out)

    # -- 5. barrier ---------------------------------------------------------------------------
    barrier = None
    try:
        barrier = run.create_subject(test_id, role="control")
        if target.has_operation("activity"):
            target.run("activity", barrier)
    except PrivacyChecksError as exc:
        for name in ("stores", "recipients"):
            out.failed_stages.setdefault(name, f"barrier failed: the barrier subject could not be created: {exc}")

    # -- 6. judge -----------------------------------------------------------------------------
    if barrier is not None and "stores" not in out.failed_stages:
        with stage(out, "stores"):
            _store_barrier(specs, barrier, propagation, out, evidence)
            final = _final_sweep(run, specs, subject, control, exceptions, out, evidence)
            _storage_residue(specs, subject, control, barrier, final, out, evidence)
    if barrier is not None and sinks and "recipients" not in out.failed_stages:
        with stage(out, "recipients"):
            if out.recipients_before:
                got = sink_obs.wait_for(
                    lambda: set(out.recipients_before) <= set(recipients(barrier.needles(barrier.strong_fields()),
                                                                         seq_before)),
                    timeout=propagation)
                if not got:
                    late = sorted(set(out.recipients_before) - set(recipients(barrier.needles(), seq_before)))
                    raise _control_failed(f"barrier failed: recipient(s) {', '.join(late)} never received a "
                                          "delivery made after the deletion (observer blind: the control was never "
                                          "delivered)")
                evidence.stage("barrier seen: recipients", recipients=sorted(out.recipients_before))
            _judge_recipients(run, subject, out, seq_before, propagation, evidence)
    with stage(out, "isolation"):
        _judge_isolation(target, specs, control, out)
    if out.failed_stages:
        evidence.stage("stages that could not be completed (each voids only the checks that need it)",
                       **out.failed_stages)


def _stores_control(specs, must_hold, subject, control, shared: list[str], propagation, out: DeletionOutcome,
                    evidence, identifiers: list[dict] = ()) -> None:
    def seen():
        res = sweep(specs, subject.needles(subject.strong_fields()) + control.needles(control.strong_fields()))
        # proof only: a weak match (a birth date, an instant to the second that a log line's own
        # timestamp happens to equal) shows nothing, and a store 'held' on it would then demand a
        # barrier and the control there, which can never come
        mine = _locations([h for h in res.hits if h.subject_id == subject.id and not h.weak])
        missing = sorted(must_hold - set(mine))
        theirs = {h.field for h in res.hits if h.subject_id == control.id and h.field in shared}
        return res, mine, missing, sorted(set(shared) - theirs)

    deadline = time.monotonic() + propagation
    res, mine, missing, unseen_shared = seen()
    while (missing or unseen_shared) and time.monotonic() < deadline:
        time.sleep(0.5)
        res, mine, missing, unseen_shared = seen()
    # the control's contributions to the shared space: what others-intact later looks for
    out.shared_before = sorted({_where(h) for h in res.hits if h.subject_id == control.id and h.field in shared})
    if unseen_shared:
        out.shared_unseen = (f"positive control failed: the control {control.canary}'s contributions to the space it "
                             f"shares with the subject ({', '.join(unseen_shared)}) were never seen in the stores "
                             f"within {propagation:.0f} s, so their surviving the deletion would prove nothing "
                             "(does 'interact' write them?)")
    if missing:
        why = "; ".join(f"{u.store}: {u.where}: {u.reason}" for u in res.unswept if u.store in missing)
        raise _control_failed(f"positive control failed: the subject {subject.canary} was never seen in store(s) "
                              f"{', '.join(missing)} within {propagation:.0f} s, so an absence there would prove "
                              "nothing (is the store declared correctly, and does create/activity reach it?)"
                              + (f"; the sweep could not read: {why}" if why else ""))
    _links_control(identifiers, specs, subject, control, res.hits, out)
    for name in sorted({s.name for s in specs}):
        out.stores[name] = StoreVerdict(name, seen_before=sorted(set(mine.get(name, []))))
    out.held = sorted(name for name, v in out.stores.items() if v.seen_before)
    evidence.stage("positive control: stores", seen={k: sorted(set(v)) for k, v in mine.items()},
                   control_contributions=out.shared_before, linked_rows=out.linked_before,
                   control_linked_rows=out.control_linked_before)


def _link_places(hits) -> list[str]:
    return sorted({f"{h.store}: {h.table_or_path}.{h.column_or_line}" for h in hits})


def _links_control(identifiers, specs, subject, control, hits_before, out: DeletionOutcome) -> None:
    """Positive control of the linked rows: the columns that can link a row to a subject, and the
    rows that link the subject (and the control) before the request."""
    columns = sql_links.link_columns(specs, identifiers)
    if not columns:
        return
    for s in (subject, control):
        out.links[s.id] = sql_links.plan_for(s, columns, hits_before)
    mine, _ = sql_links.linked_rows(specs, out.links[subject.id])
    theirs, _ = sql_links.linked_rows(specs, out.links[control.id])
    out.linked_before = _link_places(mine)
    out.control_linked_before = _link_places(theirs)
    for i, ident in enumerate(identifiers):
        if not any(h.field == ident["captured"] for h in mine):
            raise _control_failed(
                f"positive control failed: identifiers[{i}] declares columns {', '.join(ident['columns'])} holding "
                f"{ident['captured']!r}, yet no row held the subject {subject.canary}'s "
                f"{ident['captured']} ({subject.captured.get(ident['captured'])!r}) before the deletion, so no row "
                "still holding it afterwards would prove nothing")


def _recipients_control(run, sinks, subject, control, recipients, propagation, out: DeletionOutcome,
                        evidence) -> None:
    """Every recipient expected to receive each subject did receive this one, before the request."""
    expected = sorted(s["name"] for s in sinks if s.get("expect_subject", True))

    def caught_up():
        mine_r = recipients(subject.needles(subject.strong_fields()))
        ctrl_r = recipients(control.needles(control.strong_fields()))
        return mine_r if mine_r and set(ctrl_r) <= set(mine_r) and set(expected) <= set(mine_r) else None

    out.recipients_before = sink_obs.wait_for(caught_up, timeout=propagation) or recipients(
        subject.needles(subject.strong_fields()))
    evidence.stage("positive control: recipients", expected=expected, received=out.recipients_before)
    missing = [name for name in expected if name not in out.recipients_before]
    if missing:
        raise _control_failed(
            f"positive control failed: declared recipient(s) {', '.join(missing)} never received the subject "
            f"{subject.canary} within {propagation:.0f} s, so whether they are told to delete it cannot be judged; "
            f"{run.capture_where()} — is the target configured to deliver there? (a recipient that does not "
            "receive every subject is declared with expect_subject: false)" + sink_obs.store_backed_note(sinks, missing))


def _store_barrier(specs, barrier, propagation, out: DeletionOutcome, evidence) -> None:
    held = set(out.held)

    def barrier_visible():
        res = sweep(specs, barrier.needles(barrier.strong_fields()))
        return set(_locations([h for h in res.hits if not h.weak]))

    deadline = time.monotonic() + propagation
    visible = barrier_visible()
    while not held <= visible and time.monotonic() < deadline:
        time.sleep(0.5)
        visible = barrier_visible()
    for name, verdict in out.stores.items():
        if name in held:
            verdict.barrier_seen = name in visible
    blind = sorted(held - visible)
    if blind:
        raise _control_failed(f"barrier failed: a write made after the deletion never became visible in store(s) "
                              f"{', '.join(blind)} within {propagation:.0f} s; their absence verdict cannot be made")
    evidence.stage("barrier seen: stores", stores=sorted(held))


def _final_sweep(run, specs, subject, control, exceptions, out: DeletionOutcome, evidence) -> None:
    final = sweep(specs, subject.needles() + control.needles(control.strong_fields()))
    out.swept = swept_counts(final)
    out.unswept = [f"{u.store}: {u.where}: {u.reason}" for u in final.unswept]
    gone_hits = [h for h in final.hits if h.subject_id == subject.id]
    if subject.id in out.links:
        linked, read = sql_links.linked_rows(specs, out.links[subject.id])
        gone_hits = linked + gone_hits  # values last: a long message keeps its tail
        out.swept["columns read for rows linked to the subject"] = read
    bad, out.allowed = split_allowed(gone_hits, exceptions)
    # A weak value (a fictional phone number) proves nothing alone; in a row or file a canary
    # already proves to hold the subject, it is one more of the subject's values kept there.
    beside = corroborated(bad)
    out.residual = [h for h in bad if not h.weak or h in beside]
    out.weak_residual = [h for h in bad if h.weak and h not in beside]
    for h in out.residual:
        v = out.stores.setdefault(h.store, StoreVerdict(h.store))
        v.verdict = "failed"
    for v in out.stores.values():
        if v.verdict != "failed" and not v.seen_before:
            v.verdict = "no subject data"
            v.message = "the subject was never seen here, before or after the deletion"
    evidence.stage("sweep after deletion", swept=out.swept, residual=[describe_hit(h) for h in out.residual],
                   weak=[describe_hit(h) for h in out.weak_residual],
                   allowed=[f"{describe_hit(h)} — allowed: {e.describe()}" for h, e in out.allowed],
                   unswept=out.unswept, queries=final.shown_queries())
    for h in out.residual:
        place, where, _ = locate(h, out.file_roots)
        evidence.finding(kind="residual data", place=place, where=where, store=h.store, location=h.table_or_path,
                         column=h.column_or_line, row=h.row_key, field=h.field, form=h.form, weak=h.weak,
                         excerpt=h.excerpt)
    _record_holds(run, subject, out)
    return final


def _storage_residue(specs, subject, control, barrier, final, out: DeletionOutcome, evidence) -> None:
    """Scan each SQLite store's files for the deleted subject's canaries that SQL no longer returns.

    Positive control: in the same read, the canary of a live subject (the control, or the barrier)
    that SQL returned from that store must be found too, or the scan proves nothing (an encrypted
    or compressed file, a different file than the one SQL reads). A value of the subject that SQL
    still returns from the store (kept under a retention exception, or residual) is live data, not
    residue: a raw copy of it cannot be told from a deleted one, so it is left to the SQL verdict.
    """
    live_in = {h.store for h in final.hits if h.subject_id == control.id}
    barrier_in = {name for name, v in out.stores.items() if v.barrier_seen}
    returned = {(h.store, h.field) for h in final.hits if h.subject_id == subject.id}
    needles = (subject.needles(subject.strong_fields()) + control.needles(control.strong_fields())
               + barrier.needles(barrier.strong_fields()))
    names = {subject.id: "the deleted subject", control.id: "the control", barrier.id: "the barrier"}
    scanned: dict[str, dict] = {}
    for spec in specs:
        if kind_of(spec) != "sql":
            continue
        mode = sqlite_residue.mode_of(spec)
        if mode == "off":
            out.residue_notes.append(f"{spec.name}: storage residue not scanned (storage_residue: off)")
            continue
        scan = sqlite_residue.scan(spec, needles)
        if scan.not_scanned:
            note = f"{spec.name}: storage residue not scanned: {scan.not_scanned}"
            out.residue_notes.append(note)
            if mode == "fail":
                out.residue_problems.append(note)
            continue
        out.residue_files += len(scan.files)
        live = ({control.id} if spec.name in live_in else set()) | ({barrier.id} if spec.name in barrier_in else set())
        seen_live = scan.subjects() & live
        scanned[spec.name] = {"mode": mode, "files": [f"{part} {path} ({size} bytes)" for part, path, size in scan.files],
                              "seconds": round(scan.seconds, 3), "canaries of other subjects": scan.others,
                              "live subjects SQL returns here": sorted(names[i] for i in live),
                              "of them seen in the files": sorted(names[i] for i in seen_live)}
        if not seen_live:
            why = ("no live subject that SQL returns from this store (control or barrier) was seen in its files, so "
                   "an absence there proves nothing (an encrypted or compressed file?)") if live else \
                  ("no live subject is held by this store (neither the control nor the barrier), so the scan could "
                   "not be shown to see anything")
            note = f"{spec.name}: storage residue not verified: {why}"
            out.residue_notes.append(note)
            if mode == "fail":
                out.residue_problems.append(note)
            continue
        found = [r for r in scan.found if r.subject_id == subject.id and (spec.name, r.field) not in returned]
        out.residue += found
        if mode == "fail":
            out.residue_failing += found
        out.residue_notes += residue_lines(found)
    evidence.stage("storage residue (raw scan of SQLite files)", scanned=scanned,
                   residue=[f"{r.place()}: field {r.field} ({r.form}) {r.excerpt}" for r in out.residue],
                   notes=out.residue_notes)
    for r in out.residue:
        evidence.finding(kind="storage residue", place=f"residue:{r.store}/{os.path.basename(r.path)}",
                         where=f"{r.store}: file {r.path}", store=r.store, location=r.path, column=r.part,
                         row=f"byte {r.offset} in {r.where}", field=r.field, form=r.form, excerpt=r.excerpt)


def residue_lines(found) -> list[str]:
    """Storage residue in words, one line per file: what it holds and where the first copy is."""
    by_file: dict[tuple[str, str, str], list] = {}
    for r in found:
        by_file.setdefault((r.store, r.path, r.part), []).append(r)
    lines = []
    for (store, path, part), items in by_file.items():
        fields = ", ".join(dict.fromkeys(f"{r.field} ({r.form})" for r in items))
        first = items[0]
        lines.append(f"{store}: residue in storage until overwritten or vacuumed: file {path} ({part}) holds the "
                     f"deleted subject's {fields}, {len(items)} cop{'ies' if len(items) > 1 else 'y'}, the first at byte "
                     f"{first.offset} in {first.where}")
    return lines


def _record_holds(run, subject, out: DeletionOutcome) -> None:
    """Time-limited retention: remember each allowed hit so a later run can check it was purged."""
    now = run.ledger.now()
    for hit, exc in out.allowed:
        if exc.purge_within is not None:
            run.ledger.record_hold(target=run.profile.name, subject_id=subject.id, canary=subject.canary,
                                   location=hit_location(hit), field=hit.field, form=hit.form,
                                   exception=exc.describe(), purge_by=now + exc.purge_within)


def hit_location(hit) -> str:
    return f"{hit.store}:{hit.table_or_path}:{'*' if hit.location_kind == 'file' else hit.column_or_line}"


def overdue_retention(run) -> tuple[list[str], list[str]]:
    """Holds whose period has ended: (still held — broken, purged — resolved now)."""
    from ..observe.forms import Needle

    still, purged = [], []
    specs = store_specs(run.profile)
    for hold in run.ledger.due_holds(run.profile.name):
        row = run.ledger.subject(hold["subject_id"])
        value = (row or {}).get("fields", {}).get(hold["field"])
        if not value:
            raise _control_failed(f"retention hold #{hold['id']}: the ledger no longer has the value of field "
                                  f"{hold['field']!r} of subject {hold['canary']}, so its purge cannot be checked")
        hits = [h for h in sweep(specs, [Needle(hold["subject_id"], hold["field"], value)]).hits
                if hit_location(h) == hold["location"] and h.form == hold["form"]]
        if hits:
            still.append(f"{describe_hit(hits[0])} — allowed only until {hold['purge_by']} "
                         f"({hold['exception']})")
        else:
            run.ledger.resolve_hold(hold["id"])
            purged.append(hold["location"])
    return still, purged


def _control_failed(message: str):
    from ..outcomes import ControlFailed

    return ControlFailed(message)


def _record_request(run, subject, out: DeletionOutcome, status: str) -> None:
    if not out.request_id:
        return
    run.ledger.record_request(run_id=run.run_id, subject_id=subject.id, target=run.profile.name, regime=out.regime,
                              kind="delete", request_id=str(out.request_id), received_at=out.requested_at,
                              status=status)


def _judge_account(target, subject, out: DeletionOutcome) -> None:
    # The subject's captured values (its id, its last token) stay available to every probe.
    op = target.profile.operation("read_subject")
    if op is not None:
        cond = op.get("gone_when")
        try:
            res = target.run("read_subject", subject, dict(subject.captured))
            if cond:
                out.account_probes.append(f"read_subject answered {res.last.status}, judged by gone_when ({cond})")
            if cond and not target.condition("read_subject", cond, res.last):
                out.account_problems.append(f"reading the deleted subject: {res.last.describe()}, which does not "
                                            f"satisfy gone_when ({cond})")
        except UnexpectedStatus as exc:
            out.account_probes.append(f"read_subject answered {exc.status}")
            out.account_problems.append(f"reading the deleted subject gave an unexpected answer: {exc}")
    if target.has_operation("login"):
        try:
            target.run("login", subject, dict(subject.captured))
            out.account_problems.append("logging in as the deleted subject still succeeds")
        except UnexpectedStatus as exc:  # refused, as it should be
            out.account_probes.append(f"login as the deleted subject refused ({exc.status})")


def _judge_recipients(run, subject, out: DeletionOutcome, seq_before: int, propagation: float, evidence) -> None:
    from ..conditions import compile_condition

    sinks = {s["name"]: s for s in run.profile.sinks}
    needles = subject.needles(subject.strong_fields())
    conditions = {}
    for name in sorted(out.recipients_before):
        cond = sinks[name].get("deletion_notice") if name in sinks else None
        if not cond:
            out.missing_notices.append(f"{name}: the profile declares no deletion_notice condition for this "
                                       "recipient, so its notice cannot be recognised")
        else:
            conditions[name] = compile_condition(cond)

    def notices():
        found = {}
        for cap in run.capture.captures(seq_before):
            sink = sink_obs.classify(cap.path, run.profile.sinks)
            name = sink["name"] if sink else None
            if name in conditions and name not in found and conditions[name].evaluate(cap.context()) and (
                    sink_obs.find_in_captures([cap], needles, run.profile.sinks) or _mentions_ids(cap, subject)):
                found[name] = cap
        return found

    # One wait for all recipients: a missing notice costs one propagation window, not one each.
    found = notices()
    deadline = time.monotonic() + propagation
    while set(found) != set(conditions) and time.monotonic() < deadline:
        time.sleep(0.3)
        found = notices()
    for name in sorted(conditions):
        cap = found.get(name)
        if cap is None:
            out.missing_notices.append(f"{name} ({out.recipients_before[name]}) received the subject's data but no "
                                       f"deletion notice within {propagation:.0f} s")
        else:
            out.notices[name] = f"{cap.method} {cap.path} at {cap.received_at}"
    # Anything but a notice that still carries the subject after the request is sharing it on.
    for cap in run.capture.captures(seq_before):
        sink = sink_obs.classify(cap.path, run.profile.sinks)
        cond = (sink or {}).get("deletion_notice")
        if cond and compile_condition(cond).evaluate(cap.context()):
            continue
        for hit in sink_obs.find_in_captures([cap], needles, run.profile.sinks):
            out.shared_after.append(f"{hit.where()}: field {hit.field} ({hit.form})")
    evidence.stage("recipients told", notices=out.notices, missing=out.missing_notices, shared_after=out.shared_after)


def _mentions_ids(cap, subject) -> bool:
    ids = [str(v) for k, v in subject.captured.items() if k.endswith("id") and v is not None]
    text = cap.body + " " + cap.path
    return any(f'"{i}"' in text or f": {i}" in text or f"/{i}" in text for i in ids)


def _where(hit) -> str:
    return f"{hit.store}: {hit.table_or_path}, {hit.column_or_line} ({hit.field})"


def _judge_isolation(target, specs, control, out: DeletionOutcome) -> None:
    op = target.profile.operation("read_subject")
    if op is not None:
        try:
            res = target.run("read_subject", control, dict(control.captured))
            out.isolation_checked.append(f"read_subject of the control answered {res.last.status}")
            cond = op.get("gone_when")
            if cond and target.condition("read_subject", cond, res.last):
                out.isolation_problems.append(f"the control subject {control.canary} is gone too "
                                              f"(read_subject: {res.last.describe()})")
        except UnexpectedStatus as exc:  # an answer, but not the control's record; no answer is an error
            out.isolation_problems.append(f"the control subject {control.canary} cannot be read: {exc}")
    hits = sweep(specs, control.needles(control.strong_fields())).hits
    seen = {h.store for h in hits if not h.weak}
    if control.id in out.links and out.control_linked_before:
        still = set(_link_places(sql_links.linked_rows(specs, out.links[control.id])[0]))
        for where in out.control_linked_before:
            out.isolation_checked.append(f"the control's linked rows at {where}")
            if where not in still:
                out.isolation_problems.append(f"the control subject {control.canary}'s rows linked by its id are "
                                              f"gone from {where}")
    for name, verdict in out.stores.items():
        if verdict.seen_before:
            out.isolation_checked.append(f"store {name} swept for the control")
            if name not in seen:
                out.isolation_problems.append(f"the control subject {control.canary} vanished from store {name}")
    # what the control wrote into the space it shared with the deleted subject is the control's
    still = {_where(h) for h in hits}
    for where in out.shared_before:
        out.isolation_checked.append(f"the control's contribution at {where}")
        if where not in still:
            out.isolation_problems.append(f"the control's contribution to the space it shared with the deleted "
                                          f"subject is gone from {where}")
    if out.shared_unseen and not out.isolation_problems:
        raise _control_failed(out.shared_unseen)
