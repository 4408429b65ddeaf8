"""The traffic procedure the transport suites judge: one subject acts, everything it caused is kept.

1. nothing is sent if the target has no https: the framework itself must not carry personal
   data in cleartext, and every in-transit check then fails with that one reason;
2. a subject is created and acts (activity, login, read back), recording the exchanges, the
   cookies its login set, and what recipients received;
3. barrier: a control subject created afterwards acts, and we wait until its data has
   reached every recipient and every store the subject reached, and until the log files have
   grown past what the subject's own operations wrote — so nothing the subject caused is
   still in flight when the checks judge;
4. one sweep of every store and log for the subject's values, in every form.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from glob import glob

from ..errors import PrivacyChecksError
from ..findings import file_roots
from ..observe import sinks as sink_obs
from ..observe.stores import sweep
from ..observe.transport import CookieSeen, cookies_in
from ..outcomes import stage
from ..runtime import store_specs
from .deletion import swept_counts


@dataclass
class Traffic:
    error: str | None = None
    no_https: str | None = None
    subject: object = None
    exchanges: list = field(default_factory=list)
    captures: list = field(default_factory=list)
    recipients: dict[str, str] = field(default_factory=dict)  # sink -> role, for the subject
    # sinks declared through a store: their record says what was sent, not how it travelled
    through_stores: list[str] = field(default_factory=list)
    login_ran: bool = False
    cookies: list[CookieSeen] = field(default_factory=list)
    stores_seen: dict[str, list[str]] = field(default_factory=dict)  # store -> locations of the subject
    must_hold: set[str] = field(default_factory=set)
    hits: list = field(default_factory=list)  # the subject's hits, every store and log
    unswept: list[str] = field(default_factory=list)
    log_stores: list[str] = field(default_factory=list)
    log_files: list[str] = field(default_factory=list)
    log_barrier: str = ""  # how the log barrier was met, or why not
    store_barrier: str = ""
    swept: dict[str, int] = field(default_factory=dict)  # what the sweep read (deletion.swept_counts)
    failed_stages: dict[str, str] = field(default_factory=dict)  # "recipients" -> why it failed
    skip: Exception | None = None
    evidence: object = None  # the procedure's own record, for the reports
    file_roots: dict[str, list[str]] = field(default_factory=dict)  # what findings name files relative to


def no_https_reason(profile) -> str | None:
    if not profile.base_url.lower().startswith("https://"):
        return (f"the target has no https: base_url {profile.base_url} is plain http, so every request "
                "and answer — personal data included — travels in cleartext")
    return None


def observe_traffic(run, *, test_id: str, evidence, at_rest: bool = False) -> Traffic:
    """The in-transit checks send nothing to a target without https; the at-rest checks
    (`at_rest`) need stores and logs, not TLS, and run whatever the transport."""
    out = Traffic()
    try:
        out.no_https = no_https_reason(run.profile)
        if out.no_https is None or at_rest:
            _run(run, test_id, evidence, out)
    except PrivacyChecksError as exc:
        out.error = str(exc)
    return out


def _file_sizes(patterns: list[str]) -> dict[str, int]:
    sizes = {}
    for pattern in patterns:
        for path in glob(pattern):
            try:
                sizes[path] = os.path.getsize(path)
            except OSError:
                pass
    return sizes


def _run(run, test_id: str, evidence, out: Traffic) -> None:
    target, profile, capture = run.target, run.profile, run.capture
    propagation = float(profile.timeouts.get("propagation", 30))
    specs = store_specs(profile)
    file_globs = [g for s in profile.stores if s.get("files") for g in s["files"]]
    out.log_stores = [s["name"] for s in profile.stores if s.get("files")]
    out.file_roots = file_roots(profile.stores)
    out.must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}

    seq0 = capture.last_seq()
    first = len(target.exchanges)
    subject = run.create_subject(test_id, role="subject")
    out.subject = subject
    if target.has_operation("activity"):
        target.run("activity", subject)
    if target.has_operation("login"):
        out.login_ran = True
        out.cookies = _login_cookies(target, subject)
    if target.has_operation("read_subject"):
        target.run("read_subject", subject, dict(subject.captured))
    out.exchanges = list(target.exchanges[first:])
    evidence.stage("subject acted", subject=subject.canary,
                   exchanges=[e.summary() for e in out.exchanges],
                   cookies=[c.__dict__ for c in out.cookies])
    after_subject = _file_sizes(file_globs)

    # -- barrier ----------------------------------------------------------------------------
    control = run.create_subject(test_id, role="control")
    if target.has_operation("activity"):
        target.run("activity", control)
    strong = subject.needles(subject.strong_fields())
    ctrl = control.needles(control.strong_fields())

    def delivered(needles):
        return {h.sink: h.role for h in sink_obs.find_in_captures(capture.captures(seq0), needles, profile.sinks)}

    if profile.sinks:
        # a recipient expected to receive every subject but never seen receiving this one is a
        # blind spot (a cleartext delivery to it would go unseen), as in deletion's control
        # (a sink declared through a store is never at the capture servers: not judged, and said so)
        expected = {s["name"] for s in profile.sinks if s.get("expect_subject", True) and not s.get("store")}
        out.through_stores = sorted(s["name"] for s in profile.sinks if s.get("store"))

        def caught_up():
            mine, theirs = delivered(strong), delivered(ctrl)
            return mine if mine and expected <= set(mine) and set(mine) <= set(theirs) else None

        # only the deliveries check judges this stage; the stores and logs do not wait on it
        with stage(out, "recipients"):
            out.recipients = sink_obs.wait_for(caught_up, timeout=propagation) or {}
            if not out.recipients:
                # nothing delivered at all is for the webhook check to report; a late control is not
                mine, theirs = delivered(strong), delivered(ctrl)
                out.recipients = mine
                never = sorted(expected - set(mine))
                if mine and never:
                    raise _control_failed(
                        f"positive control failed: declared recipient(s) {', '.join(never)} never received the "
                        f"subject {subject.canary} within {propagation:.0f} s, so a delivery to them in cleartext "
                        f"would go unseen; {run.capture_where()} — is the target configured to deliver there? (a "
                        "recipient that does not receive every subject is declared with expect_subject: false)")
                late = sorted(set(mine) - set(theirs))
                if late:
                    raise _control_failed(f"barrier failed: recipient(s) {', '.join(late)} never received the "
                                          f"control subject's data within {propagation:.0f} s, so deliveries may "
                                          "still be in flight")
    out.captures = capture.captures(seq0)

    def seen():
        res = sweep(specs, strong + ctrl + subject.needles([f for f in subject.fields if f not in subject.strong_fields()]))
        mine: dict[str, list[str]] = {}
        theirs: set[str] = set()
        for h in res.hits:
            if h.subject_id == subject.id and not h.weak:
                mine.setdefault(h.store, []).append(f"{h.table_or_path}.{h.column_or_line}")
            elif h.subject_id == control.id:
                theirs.add(h.store)
        return res, mine, theirs

    deadline = time.monotonic() + propagation
    res, mine, theirs = seen()
    while not (out.must_hold <= set(mine) and set(mine) <= theirs | set(out.log_stores)) \
            and time.monotonic() < deadline:
        time.sleep(0.3)
        res, mine, theirs = seen()
    missing = sorted(out.must_hold - set(mine))
    if missing:
        raise _control_failed(f"positive control failed: the subject {subject.canary} was never seen in store(s) "
                              f"{', '.join(missing)} within {propagation:.0f} s, so an absence of its values "
                              "there (its password, for one) would prove nothing")
    blind = sorted(set(mine) - theirs - set(out.log_stores))
    if blind:
        raise _control_failed(f"barrier failed: the control subject, created after the subject, never became "
                              f"visible in store(s) {', '.join(blind)} within {propagation:.0f} s")
    out.store_barrier = f"control subject {control.canary} visible in {', '.join(sorted(theirs)) or 'no store'}"

    if file_globs:
        def grown():
            now = _file_sizes(file_globs)
            return [p for p, size in now.items() if size > after_subject.get(p, 0)]

        grew = sink_obs.wait_for(grown, timeout=propagation)
        out.log_files = sorted(_file_sizes(file_globs))
        if grew:
            out.log_barrier = f"written after the subject's operations: {', '.join(sorted(grew))}"
        # the sweep runs after the barrier, so it sees everything the subject's operations logged
        res, mine, theirs = seen()
    out.stores_seen = {k: sorted(set(v)) for k, v in mine.items()}
    out.swept = swept_counts(res)
    out.hits = [h for h in res.hits if h.subject_id == subject.id]
    out.unswept = [f"{u.store}: {u.where}: {u.reason}" for u in res.unswept]
    evidence.stage("barrier and sweep", recipients=out.recipients, stores_seen=out.stores_seen,
                   store_barrier=out.store_barrier, log_files=out.log_files, log_barrier=out.log_barrier,
                   deliveries=[f"{c.scheme}://… {c.method} {c.path}" for c in out.captures])


def _login_cookies(target, subject) -> list[CookieSeen]:
    """Log in with an empty cookie jar, so the cookies judged are exactly the ones login set."""
    from requests.cookies import RequestsCookieJar

    saved = target.session.cookies
    target.session.cookies = RequestsCookieJar()
    try:
        # the subject's captures stay available (a login may use its id), in a copy: what this
        # login captures is only for judging its cookies
        target.run("login", subject, dict(subject.captured))
        return cookies_in(target.session.cookies)
    finally:
        target.session.cookies = saved


def _control_failed(message: str):
    from ..outcomes import ControlFailed

    return ControlFailed(message)
