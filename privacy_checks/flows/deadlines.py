"""Response deadlines, tracked across runs: the ledger's requests and the target's own request log.

No run can wait 45 days, so the procedure works from memory and from the target's records:

1. control requests: a control subject files requests through the profile's ``file_request``
   operation, back-dated where the target allows it (``{{ params.received_at }}``, admin only on
   the demo), so an acknowledgement deadline has already passed when they are judged. They are
   recorded in the ledger with the receipt time *the target* reports.
2. re-poll: every request the ledger still holds open for this target and regime (this run's
   control requests, the deletion suites' requests, and those of earlier runs) is read again through
   ``read_request`` (``{{ params.request_id }}``), judged at "now" and updated in the ledger.
   Reading back this run's own control requests is the positive control of the re-poll. Pending
   requests keep their subjects in state ``awaiting_request`` (cleanup leaves them); once judged,
   those subjects are removed.
3. the target's own log: where the profile has ``list_requests`` (HTTP, following ``json.next``
   page by page, or a SQL step whose rows are the requests), every listed request — real users'
   too — is judged by the same rules. The listing must contain this run's control requests, with
   the same receipt time ``read_request`` gave (positive control and barrier: a request filed after
   the audit began is seen, through every page). Requests the framework did not file are reported
   by id, type and dates only — never identity or content.

Where acknowledgement is observed: ``read_acknowledgement``, when the profile has it, gives the time
a receipt message was sent for the framework's own requests — a SQL step on the target's outbox, or
(the demo) a ``mail`` step that finds the receipt mail the SMTP capture received at the subject's
own address and captures its ``acknowledged_at`` (the mail's Date). No such mail: not acknowledged.
Mail reaches only the run that was listening, so a request filed by an earlier run keeps what that
run observed. A record's ``acknowledged_at`` is only the target's claim; for real users' requests
the log's ``acknowledged_at`` is all there is.

Field names the operations return (JSON object, list items or SQL columns): ``id``, ``type``,
``status``, ``received_at``, ``acknowledged_at``, ``completed_at``, ``extended_until``,
``extension_notice_at``, ``extension_reason`` — times ISO 8601 with a zone. A listing is a JSON list,
or an object whose ``items`` (or ``requests``) is the list and whose ``next`` is the next page.

"Now" is the wall clock, or ``PRIVACY_CHECKS_NOW`` (an ISO 8601 date-time with a zone), so tests
can show one request pending on one day and overdue on a later one without sleeping.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

from ..deadlines import (
    REQUEST_TYPES,
    InvalidRequestDates,
    NoRule,
    RequestRecord,
    judge,
    judge_acknowledgement,
)
from ..errors import PrivacyChecksError, TargetError, UnexpectedStatus
from ..outcomes import CheckError, ControlFailed

ENV_NOW = "PRIVACY_CHECKS_NOW"
FIELDS = ("status", "received_at", "acknowledged_at", "completed_at", "extended_until", "extension_notice_at",
          "extension_reason")
# Control requests per regime: (type, days back-dated). 20 calendar days always hold more than
# 10 California business days, so the acknowledgement deadline has passed and is judged now,
# while the 45-day and one-month response deadlines are still ahead (pending, judged by later
# runs). An opt-out answered at once 7 days after receipt is inside 15 business days.
CONTROLS = {"ccpa": (("access", 20), ("opt_out", 7)), "gdpr": (("access", 20),)}
MAX_PAGES = 10_000
ACK_CHECK, RESPOND_CHECK, OPT_OUT_CHECK = "acknowledge", "respond", "opt_out"


@dataclass
class Verdict:
    source: str  # "ledger" (filed by the framework) | "log" (the target's log, not filed by us)
    request_id: str
    kind: str
    check: str
    outcome: str  # passed | failed | pending
    message: str
    days_late: int | None = None

    def line(self) -> str:
        where = "ledger request" if self.source == "ledger" else "target log request"
        return f"{where} {self.request_id} ({self.kind}): {self.message}"


@dataclass
class DeadlineOutcome:
    regime: str
    now: datetime | None = None
    error: str | None = None
    not_verified: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    log_pages: int = 0
    log_listed: int = 0
    # acknowledgements are read from mail, and none reached the capture for the control subject
    ack_blind: str | None = None
    ack_mails: int = 0  # messages to the control subject read as the mail's positive control

    def of(self, check: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.check == check]


def now_from_env(environ=os.environ) -> datetime:
    raw = environ.get(ENV_NOW, "").strip()
    if not raw:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise CheckError(f"{ENV_NOW}={raw!r} is not an ISO 8601 date-time (e.g. 2026-03-01T12:00:00+00:00)") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise CheckError(f"{ENV_NOW}={raw!r} has no time zone; add one, e.g. {raw}+00:00")
    return value.astimezone(UTC)


def subject_from_ledger(row: dict):
    """The Subject a ledger row describes, enough for ``RunContext.remove_subject`` (captured ids)."""
    from ..subjects import Subject

    return Subject(id=row["id"], test_id=row["test_id"] or "", canary=row["canary"] or "", fields=row["fields"],
                   strategies={}, role=row["role"] or "subject", captured=dict(row["captured"]))


def run_deadlines(run, *, regime: str, test_id: str, evidence) -> DeadlineOutcome:
    """Run the whole procedure; never raises for a broken promise (the outcome records it)."""
    out = DeadlineOutcome(regime)
    try:
        out.now = now_from_env()
        _Procedure(run, regime, test_id, evidence, out).run()
    except PrivacyChecksError as exc:
        out.error = str(exc)
    return out


class _Procedure:
    def __init__(self, run, regime: str, test_id: str, evidence, out: DeadlineOutcome) -> None:
        self.run_ctx, self.regime, self.test_id, self.evidence, self.out = run, regime, test_id, evidence, out
        self.now: datetime = out.now  # type: ignore[assignment]

    def run(self) -> None:
        run, out = self.run_ctx, self.out
        target, profile = run.target, run.profile
        self.target, self.profile = target, profile
        can_read, can_list = target.has_operation("read_request"), target.has_operation("list_requests")
        if not (can_read or can_list):
            out.not_verified = ("the profile gives no way to read privacy requests back (operations read_request "
                                "or list_requests), so response deadlines cannot be verified")
            return
        ledger = run.ledger  # a corrupt or newer ledger raises LedgerError here: one clear line
        self.ledger = ledger
        self.evidence.stage("clock", now=self.now.isoformat(), source=ENV_NOW if os.environ.get(ENV_NOW) else
                            "wall clock", zone="UTC")

        controls = self._file_controls() if can_read and target.has_operation("file_request") else {}
        if can_read:
            self._repoll(controls)
        if can_list:
            self._audit_log(controls)

    # -- 1. control requests ----------------------------------------------------------------------
    def _file_controls(self) -> dict[str, datetime]:
        """File this run's control requests; returns request id -> the receipt time we asked for."""
        subject = self.run_ctx.create_subject(self.test_id, role="control")
        filed: dict[str, datetime] = {}
        for kind, days in CONTROLS[self.regime]:
            asked = self.now - timedelta(days=days)
            res = self.target.run("file_request", subject, dict(subject.captured),
                                  params={"type": kind, "received_at": asked.isoformat(timespec="seconds")})
            rid = str(res.captured.get("request_id") or "")
            if not rid:
                raise ControlFailed("operation 'file_request' captured no request_id, so the control request "
                                    "cannot be followed")
            reported = _record_fields(res.last)
            self.ledger.record_request(
                run_id=self.run_ctx.run_id, subject_id=subject.id, target=self.profile.name, regime=self.regime,
                kind=kind, request_id=rid, received_at=_instant(reported.get("received_at")) or asked,
                status=str(reported.get("status") or "open"),
                extra={"control": True, "base_url": self.profile.base_url, "asked_received_at": asked.isoformat()})
            filed[rid] = asked
        self.evidence.stage("control requests filed", subject=subject.canary,
                            requests={rid: f"received_at asked {at.isoformat()}" for rid, at in filed.items()})
        if self.target.has_operation("read_acknowledgement") and self._ack_by_mail():
            self.out.ack_blind = self._mail_blind(subject)
        return filed

    def _mail_blind(self, subject) -> str | None:
        """Positive control of acknowledgements read from mail: the control subject's requests got
        some mail to its address (a code, a receipt, a completion), so the capture is not blind and a
        missing receipt is the target's. Returns why it is blind, or None."""
        from ..observe.sinks import wait_for

        address = str(subject.fields.get("email") or "")
        timeout = float(self.profile.timeouts.get("propagation", 30))
        mails = wait_for(lambda: self.run_ctx.mail_to(address), timeout=timeout, interval=0.3) if address else []
        if not mails:
            return (f"positive control failed: no mail at all to the control subject {subject.canary} reached the "
                    f"SMTP capture ({self.run_ctx.smtp_url}) within {timeout:.0f} s of its requests, so a missing "
                    "acknowledgement mail would prove nothing (does the target send its mail there?)")
        self.out.ack_mails = len(mails)
        self.evidence.stage("positive control: mail", messages_to_the_control=len(mails),
                            subjects=[m.headers.get("Subject", "") for m in mails[:5]])
        return None

    # -- 2. re-poll the ledger --------------------------------------------------------------------
    def _repoll(self, controls: dict[str, datetime]) -> None:
        # Another run that is still live (a parallel worker, a concurrent pipeline) owns its
        # open requests: judging or settling them here could remove a subject it still uses.
        rows = [r for r in self.ledger.open_requests(self.profile.name) if (r["regime"] or "ccpa") == self.regime
                and (r["run_id"] == self.run_ctx.run_id or not self.ledger.lease_live(r["run_id"]))]
        touched: set[str] = set()
        lines: list[str] = []
        for row in rows:
            rid = str(row["request_id"])
            fresh, gone = self._read(rid, controls)
            record = dict(row)
            note = ack_note = ""
            if fresh is not None:
                if self.target.has_operation("read_acknowledgement"):
                    observed = self._acknowledged(row)
                    if observed is not None or row["run_id"] == self.run_ctx.run_id or not self._ack_by_mail():
                        fresh["acknowledged_at"] = observed
                        if self._ack_by_mail():
                            ack_note = (f"; receipt mail dated {observed} reached the SMTP capture" if observed else
                                        "; no receipt mail to the subject reached the SMTP capture")
                    else:
                        # mail sent in an earlier run reached that run's capture, not this one: what that
                        # run recorded stands, else the target's own claim
                        fresh["acknowledged_at"] = row.get("acknowledged_at") or fresh.get("acknowledged_at")
                record.update({k: v for k, v in fresh.items() if k in FIELDS and (v is not None or k != "received_at")})
            elif gone:
                if _recorded_base_url(row) not in (None, self.profile.base_url):
                    # A demo relaunched on a new port: the instance that knew the request is gone.
                    self.ledger.update_request(row["id"], judgement="abandoned")
                    self._set_subject(row, "orphaned")
                    self.out.unjudged.append(f"ledger request {rid} ({row['kind']}): filed with "
                                             f"{_recorded_base_url(row)}, which no longer answers for it; abandoned")
                    continue
                note = "; the target no longer knows this request (404), judged from the ledger's last record"
                if row["status"] == "completed" and not row["completed_at"]:
                    # Recorded right after completion: the record's own time bounds the completion.
                    record["completed_at"] = row["created_at"]
            else:
                continue  # unreadable now: stays open, the reason is in `unjudged`
            verdicts = self._judge(record, "ledger", note, ack_note)
            self.out.verdicts += verdicts
            lines += [v.line() for v in verdicts]
            updates = {k: record.get(k) for k in FIELDS if record.get(k) != row.get(k)}
            final = _final(verdicts)
            if final:
                updates["judgement"] = final
            if updates:
                self.ledger.update_request(row["id"], **updates)
            if row["subject_id"]:
                touched.add(row["subject_id"])
        self.evidence.stage("ledger requests re-polled", judged=lines, unjudged=self.out.unjudged)
        self._settle_subjects(touched)

    def _read(self, rid: str, controls: dict[str, datetime]) -> tuple[dict | None, bool]:
        try:
            res = self.target.run("read_request", None, {}, params={"request_id": rid})
        except TargetError as exc:
            if rid in controls:
                raise ControlFailed(f"the control request {rid} filed by this run cannot be read back through "
                                    f"'read_request': {exc}") from None
            self.out.unjudged.append(f"ledger request {rid}: could not be re-polled ({exc}); it stays open")
            return None, False
        if res.last.status == 404 or (res.last.method == "SQL" and not res.last.rows):
            if rid in controls:
                raise ControlFailed(f"the control request {rid} filed by this run is unknown to 'read_request' "
                                    f"(status {res.last.status}); the observer cannot see requests")
            return None, True
        fields = _record_fields(res.last)
        if rid in controls:
            self.out.controls.append(f"control request {rid} read back: received_at {fields.get('received_at')}")
        return fields, False

    def _acknowledged(self, row: dict) -> str | None:
        """When the receipt message for the ledger request `row` was sent, as `read_acknowledgement`
        observes it (a SQL row, or a mail step capturing acknowledged_at), or None."""
        rid = str(row["request_id"])
        subject = None
        if row.get("subject_id") and (found := self.ledger.subject(row["subject_id"])) is not None:
            subject = subject_from_ledger(found)  # a mail step looks in the subject's own mailbox
        try:
            res = self.target.run("read_acknowledgement", subject, {}, params={"request_id": rid})
        except TargetError as exc:
            if self._ack_by_mail():
                raise CheckError(f"operation 'read_acknowledgement' for request {rid}: {exc}") from None
            raise
        value = res.captured.get("acknowledged_at") or _record_fields(res.last).get("acknowledged_at")
        return str(value) if value else None

    def _ack_by_mail(self) -> bool:
        op = self.profile.operation("read_acknowledgement") or {}
        return any("mail" in step for step in op.get("steps", []))

    def _settle_subjects(self, subject_ids: set[str]) -> None:
        still_open = {r["subject_id"] for r in self.ledger.open_requests(self.profile.name)}
        for sid in sorted(subject_ids):
            row = self.ledger.subject(sid)
            if row is None or row["state"] in ("cleaned", "orphaned"):
                continue
            if sid in still_open:
                if row["state"] in ("created", "intended"):
                    self.ledger.update_subject(sid, state="awaiting_request")
            elif row["state"] == "awaiting_request":
                # Judged at last: the subject may go. remove_subject leaves awaiting subjects alone,
                # so the state is released first.
                self.ledger.update_subject(sid, state="created")
                try:
                    self.run_ctx.remove_subject(subject_from_ledger(row))
                except PrivacyChecksError as exc:
                    self.ledger.update_subject(sid, state="orphaned")
                    self.out.unjudged.append(f"subject {row['canary']}: judged, but could not be removed ({exc}); "
                                             "left for `privacy-checks cleanup`")

    def _set_subject(self, row: dict, state: str) -> None:
        if row["subject_id"] and self.ledger.subject(row["subject_id"]) is not None:
            self.ledger.update_subject(row["subject_id"], state=state)

    # -- 3. the target's own request log -----------------------------------------------------------
    def _audit_log(self, controls: dict[str, datetime]) -> None:
        items = self._list()
        by_id: dict[str, dict] = {}
        for index, item in enumerate(items, start=1):
            if not isinstance(item, dict) or item.get("id") in (None, ""):
                self.out.unjudged.append(f"target log entry {index}: no request id, cannot be judged")
                continue
            by_id[str(item["id"])] = item
        self.out.log_listed = len(by_id)
        # Positive control and barrier: requests filed during this run are listed, with the receipt
        # time read_request gave, so the listing is current, complete across pages, and read right.
        mine = self._ledger_request_ids()
        ours_now = [rid for rid in mine if rid in controls] or [rid for rid, run_id in mine.items()
                                                                if run_id == self.run_ctx.run_id]
        if not ours_now:
            raise ControlFailed("no request filed by this run to look for in the target's request log "
                                "(the profile has no 'file_request' operation), so the listing's completeness "
                                "is unproven")
        missing = [rid for rid in ours_now if rid not in by_id]
        if missing:
            raise ControlFailed(f"the target's request log (operation 'list_requests', {self.out.log_pages} "
                                f"page(s)) does not list request(s) {', '.join(missing)} filed by this run, so "
                                "the absence of late requests there would prove nothing")
        for rid in ours_now:
            if rid in controls:
                listed = _instant(by_id[rid].get("received_at"))
                read = self._ledger_received(rid)
                if listed is None or read is None or listed != read:
                    raise ControlFailed(f"request {rid}: the log lists received_at {by_id[rid].get('received_at')!r} "
                                        f"but read_request gave {read.isoformat() if read else None!r}; the two "
                                        "observers disagree, so dates cannot be trusted")
        self.out.controls.append(f"the log lists {len(by_id)} request(s) over {self.out.log_pages} page(s), "
                                 f"including this run's {len(ours_now)} request(s)")
        lines = []
        for rid, item in by_id.items():
            if rid in mine:
                continue  # filed by the framework: judged, with more detail, from the ledger
            # Only id, type and dates of a real user's request are kept, never who or what.
            record = {"request_id": rid, "kind": item.get("type") or item.get("kind"),
                      **{k: item.get(k) for k in FIELDS}}
            verdicts = self._judge(record, "log", "")
            self.out.verdicts += verdicts
            lines += [f"{v.request_id} ({v.kind}) {v.check}: {v.outcome}, {v.message}" for v in verdicts]
        self.evidence.stage("target request log audited", listed=len(by_id), pages=self.out.log_pages,
                            controls=self.out.controls, judged=lines)

    def _list(self) -> list:
        op = self.profile.operation("list_requests") or {}
        res = self.target.run("list_requests", None, {})
        page, items, seen = res.last, [], set()
        auth = ((op.get("steps") or [{}])[-1]).get("auth")
        self.out.log_pages = 1
        while True:
            items += _page_items(page)
            nxt = page.json.get("next") if isinstance(page.json, dict) else None
            if not nxt:
                return items
            url = urljoin(page.url or self.target.base_url, str(nxt))
            if url in seen or self.out.log_pages >= MAX_PAGES:
                raise CheckError(f"operation 'list_requests': pagination does not end (next page {url} "
                                 f"after {self.out.log_pages} pages)")
            seen.add(url)
            where = f"operation 'list_requests' page {self.out.log_pages + 1}"
            headers = self.target.auth_headers(auth, None, {}, where) if auth else {}
            page = self.target.request("GET", url, headers=headers, where=where)
            if page.status != 200:
                raise UnexpectedStatus(f"{where} (GET {url}): expected status [200], got {page.status}", page.status)
            self.out.log_pages += 1

    def _ledger_request_ids(self) -> dict[str, str]:
        """Every request id the framework ever filed with this target -> the run that filed it."""
        t = self.ledger.requests
        with self.ledger.engine.connect() as conn:
            rows = conn.execute(t.select().with_only_columns(t.c.request_id, t.c.run_id)
                                .where(t.c.target == self.profile.name)).all()
        return {str(r[0]): r[1] for r in rows}

    def _ledger_received(self, rid: str) -> datetime | None:
        t = self.ledger.requests
        with self.ledger.engine.connect() as conn:
            row = conn.execute(t.select().with_only_columns(t.c.received_at)
                               .where(t.c.target == self.profile.name).where(t.c.request_id == rid)).first()
        return _instant(row[0]) if row else None

    # -- judging ----------------------------------------------------------------------------------
    def _judge(self, record: dict, source: str, note: str, ack_note: str = "") -> list[Verdict]:
        rid, kind = str(record.get("request_id")), str(record.get("kind"))
        if kind not in REQUEST_TYPES:
            self.out.unjudged.append(f"{source} request {rid}: type {kind!r} is not one the rules know "
                                     f"({', '.join(REQUEST_TYPES)})")
            return []
        check = OPT_OUT_CHECK if self.regime == "ccpa" and kind in ("opt_out", "limit") else RESPOND_CHECK
        try:
            request = RequestRecord.from_row(record)
        except InvalidRequestDates as exc:
            return [Verdict(source, rid, kind, check, "failed", f"impossible record: {_tail(exc, rid)}")]
        out: list[Verdict] = []
        try:
            j = judge(request, self.now, self.regime)
            out.append(Verdict(source, rid, kind, check, j.outcome, f"{j.message} [{j.rule.clause}]{note}",
                               j.days_late))
        except NoRule:
            pass
        except InvalidRequestDates as exc:
            return [Verdict(source, rid, kind, check, "failed", f"impossible record: {_tail(exc, rid)}")]
        if self.regime == "ccpa" and kind in ("access", "delete", "correct"):
            a = judge_acknowledgement(request, self.now)
            out.append(Verdict(source, rid, kind, ACK_CHECK, a.outcome,
                               f"{a.message} [{a.rule.clause}]{note}{ack_note}", a.days_late))
        return out


def _final(verdicts: list[Verdict]) -> str | None:
    outcomes = {v.outcome for v in verdicts}
    if not outcomes or "pending" in outcomes:
        return None
    return "failed" if "failed" in outcomes else "passed"


def _record_fields(step) -> dict:
    data = step.json if isinstance(step.json, dict) else (step.rows[0] if step.rows else {})
    out = {k: data.get(k) for k in FIELDS if k in data}
    if "type" in data or "kind" in data:
        out["type"] = data.get("type") or data.get("kind")
    return out


def _page_items(step) -> list:
    if step.method == "SQL":
        return list(step.rows)
    data = step.json
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("items", "requests"):
            if isinstance(data.get(key), list):
                return data[key]
    raise CheckError(f"operation 'list_requests' ({step.method} {step.url}): expected a JSON list of requests, or an "
                     f"object with 'items' and 'next'; got {type(data).__name__}")


def _instant(value) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def _recorded_base_url(row: dict) -> str | None:
    try:
        history = json.loads(row.get("history_json") or "[]")
    except ValueError:
        return None
    return next((h.get("base_url") for h in history if isinstance(h, dict) and h.get("base_url")), None)


def _tail(exc: Exception, rid: str) -> str:
    text = str(exc)
    prefix = f"request {rid}: "
    return text[len(prefix):] if text.startswith(prefix) else text
