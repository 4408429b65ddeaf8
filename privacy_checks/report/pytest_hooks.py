"""pytest hooks for the reports: per-check results, Allure, compliance report, waivers, JUnit,
what changed since the last run, and the exit status a release pipeline gates on.

Registered by plugin.py (so ``-p no:privacy_checks`` switches this off too); its settings are
in settings.py. A run that collects no privacy check writes nothing and changes nothing.

Hook order matters in four places:
- waivers: a waived broken promise is turned into a skip where the test body raised it
  (`pytest_runtest_call`), so every report writer downstream (exit status, JUnit, Allure,
  the results file) sees one consistent non-failure; the outermost makereport wrapper then
  names the outcome "waived", after the plugin's wrapper has set its own outcome;
- the reports are written by a `trylast` sessionfinish, after junitxml has written its file
  (which this module rewrites first, so the manifest hashes the final bytes); the changes
  since the baseline come first, since the compliance report opens with them;
- the exit status is set in that same sessionfinish (pytest returns `session.exitstatus`);
- the summary line is written at unconfigure, after pytest's own "N passed in Xs" line, so
  it is the last line of the run's output.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .. import outcomes
from ..collection import check_id as _check_id
from ..collection import citations as _citations


@dataclass
class _State:
    controller: bool
    reports_dir: Path
    evidence_dir: Path
    allure_dir: Path | None
    allure_explicit: bool
    results: object = None  # results.Results, on the controller
    waivers: list = field(default_factory=list)
    expired: list = field(default_factory=list)
    waiver_file: dict | None = None  # {"file", "sha256"} of --privacy-waivers, as read
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    started_ts: float = field(default_factory=time.time)
    checks_seen: set[str] = field(default_factory=set)
    other_failures: int = 0
    problems: list[str] = field(default_factory=list)
    written: object = None
    allure_on: bool = False
    changes: object = None  # changes.Changes
    verdict: object = None  # gate.Verdict
    counts: dict = field(default_factory=dict)
    new_failed: int = 0
    exit_status: int | None = None
    scope: object = None  # scope.Scope: what the run planned, deselected, and did not run
    ledger_runs: set[str] = field(default_factory=set)  # the ledger's run ids (one per xdist worker)
    worker_coverage: list[dict] = field(default_factory=list)  # coverage.snapshot() of each worker


_STATE = pytest.StashKey[_State]()
_CONFIG: list = []


def _state(config: pytest.Config) -> _State | None:
    return config.stash.get(_STATE, None)


def _setting(config: pytest.Config, name: str, default=None):
    from ..settings import value

    try:
        return value(config, name)
    except (ValueError, AttributeError):  # registered too late for options: keep defaults
        return default


def pytest_configure(config: pytest.Config) -> None:
    if _STATE in config.stash:
        return
    reports = Path(_setting(config, "reports") or config.rootpath / "reports")
    explicit = getattr(config.option, "allure_report_dir", None)
    if explicit:
        allure_dir = Path(explicit).absolute()
    elif _setting(config, "no_allure", False):
        allure_dir = None
    else:
        allure_dir = Path(_setting(config, "allure") or reports / "allure-results")
    state = _State(controller=not hasattr(config, "workerinput"), reports_dir=reports,
                   evidence_dir=reports / "evidence", allure_dir=allure_dir, allure_explicit=bool(explicit))
    if state.controller:
        from .results import Results

        path = _setting(config, "results")
        state.results = Results(path=None if path == "" else Path(path or reports / "privacy-results.json"))
    path = _setting(config, "waivers")
    if path:
        from .waivers import WaiverError, file_sha256, load_waivers, split_expired

        try:
            state.waivers, state.expired = split_expired(load_waivers(path))
        except WaiverError as exc:
            raise pytest.UsageError(f"privacy-checks: {exc}") from None
        state.waiver_file = {"file": str(path), "sha256": file_sha256(path)}
    from .scope import Scope, command_line, selection_of

    state.scope = Scope(command=command_line(config), selection=selection_of(config))
    from .. import coverage

    coverage.reset()  # what this run examines, from now on (a process may run pytest twice)
    config.stash[_STATE] = state
    # pytest_runtest_logreport gets no config, and under pytest-xdist it runs on the controller.
    _CONFIG[:] = [config]


def _expired_lines(state: _State) -> list[str]:
    return [f"waiver for {w.subject} expired on {w.expires.isoformat()} ({w.source}, approved by {w.approver}): "
            "ignored" for w in state.expired]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    if state is None or not (state.waivers or state.expired):
        return
    from ..collection import defined_check_ids, stop

    # One company-wide waiver file serves every per-suite job: a waiver for a check this run
    # did not collect is fine (reported as unused); only an id no suite defines is an error.
    known = {cid for cid in map(_check_id, items) if cid} | defined_check_ids()
    unknown = [w for w in state.waivers + state.expired if w.check and w.check not in known]
    if unknown:
        stop(config, items, "privacy-checks: waiver(s) name checks that no suite defines:\n  "
             + "\n  ".join(f"{w.check} ({w.source})" for w in unknown))


def pytest_deselected(items: list[pytest.Item]) -> None:
    if not items:
        return
    config = items[0].config
    state = _state(config)
    ids = [cid for cid in map(_check_id, items) if cid]
    if state is None or not ids:
        return
    state.scope.deselected.update(ids)
    if hasattr(config, "workeroutput"):  # the controller reads it when the worker goes down
        config.workeroutput.setdefault("privacy_deselected", []).extend(ids)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:  # pragma: no cover - xdist only
    state = _state(node.config)
    if state is not None:
        state.scope.note_planned_nodeids(ids)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # pragma: no cover - xdist only
    state = _state(node.config)
    if state is not None:
        state.scope.deselected.update(getattr(node, "workeroutput", {}).get("privacy_deselected", []))
        coverage = getattr(node, "workeroutput", {}).get("privacy_coverage")
        if coverage:
            state.worker_coverage.append(coverage)


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None or session.config.option.collectonly:
        return
    state.scope.planned.update(cid for cid in map(_check_id, session.items) if cid)
    if not any(_check_id(item) for item in session.items):
        return
    state.allure_on = state.allure_dir is not None
    if state.allure_dir is not None and not state.allure_explicit:
        from .allure_env import enable_allure

        problem = enable_allure(session.config, state.allure_dir)
        if problem:
            state.problems.append(problem)
            state.allure_on = False


class Waived(pytest.skip.Exception):
    """A broken promise the waivers in force cover entirely (every clause it cites, every place
    it broke in): reported as a skip, named "waived"."""

    def __init__(self, coverage, message: str, places: list | None = None) -> None:
        self.coverage = coverage
        self.waiver = coverage.waivers[0]
        self.places = list(places or [])  # where the still-broken promise broke
        self.text = "\n".join(w.describe() for w in coverage.waivers) + f"\nThe promise is still broken: {message}"
        super().__init__(self.text, _use_item_location=True)


class PartlyWaived(outcomes.PromiseBroken):
    """A broken promise the waivers cover only in part: still failed, its message saying which
    places and clauses were waived and which are still broken."""

    def __init__(self, message: str, *, places: list, coverage) -> None:
        super().__init__(message, places=places)
        self.coverage = coverage


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item):
    state = _state(item.config)
    if state is None or not state.waivers:
        return (yield)
    try:
        return (yield)
    except AssertionError as exc:
        # Only a broken promise can be waived; a check that could not be made stays an error.
        if outcomes.outcome_for_exception(exc) != outcomes.FAILED:
            raise
        from .waivers import cover, still_broken_message

        places = list(getattr(exc, "places", None) or [])
        coverage = cover(state.waivers, _check_id(item), _citations(item), [p.id for p in places])
        if not coverage.anything:
            raise
        if coverage.complete:
            raise Waived(coverage, str(exc), places) from None
        raise PartlyWaived(still_broken_message(str(exc), coverage, places), places=places,
                           coverage=coverage) from None


def _mark_waived(places: list[dict], coverage) -> list[dict]:
    """The places as the results keep them, each waived one marked with the waivers that cover
    it and the clauses it is waived for (`whole`: for every clause the check cites)."""
    for place in places:
        waived_for = coverage.place_waived_for(place.get("id"))
        if waived_for:
            place["waived"] = {"by": coverage.place_waivers(place["id"]), "clauses": [c for c in waived_for if c],
                               "whole": coverage.place_waived(place["id"])}
    return places


def _set_outcome_property(item: pytest.Item, outcome: str) -> None:
    item.user_properties[:] = [p for p in item.user_properties if p[0] != "privacy_outcome"]
    item.user_properties.append(("privacy_outcome", outcome))


def _evidence_of(item: pytest.Item):
    from ..evidence import Evidence

    record = getattr(item, "privacy_evidence", None)
    if isinstance(record, Evidence):
        return record, None
    # Procedure fixtures (one deletion per module) carry the evidence of every check judging
    # them; read instance attributes only, so no lazy property starts anything. The fixtures the
    # test names come first: a procedure's own evidence, not that of one it builds on.
    funcargs = getattr(item, "funcargs", {})
    direct = [n for n in getattr(getattr(item, "_fixtureinfo", None), "argnames", ()) if n in funcargs]
    for name in direct + [n for n in funcargs if n not in direct]:
        value = funcargs[name]
        record = getattr(value, "__dict__", {}).get("evidence")
        if isinstance(record, Evidence):
            return record, name
    return None, None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    if rep.when == "setup" and rep.failed and _check_id(item):
        _decorate_allure(item, rep, None)
    if rep.when != "call":
        return rep
    if call.excinfo is not None and isinstance(call.excinfo.value, Waived):
        waived = call.excinfo.value
        rep.privacy_outcome = outcomes.WAIVED
        rep.privacy_waiver = waived.waiver.to_dict()
        rep.privacy_waived = waived.coverage.to_dict()
        rep.privacy_places = _mark_waived([p.to_dict() for p in waived.places], waived.coverage)
        path, lineno = item.reportinfo()[:2]
        rep.longrepr = (str(path), (lineno or 0) + 1, waived.text)
        _set_outcome_property(item, outcomes.WAIVED)
    elif getattr(rep, "privacy_outcome", None):
        _set_outcome_property(item, rep.privacy_outcome)
    if call.excinfo is not None and isinstance(call.excinfo.value, PartlyWaived):
        partly = call.excinfo.value
        rep.privacy_waived = partly.coverage.to_dict()
        rep.privacy_places = _mark_waived([p.to_dict() for p in partly.places], partly.coverage)
    state = _state(item.config)
    check_id = _check_id(item)
    if state is not None and check_id:
        from .attach import attach_evidence, attach_examined, write_evidence_file

        examined = getattr(rep, "privacy_examined", None) or {}
        record, fixture = _evidence_of(item)
        if record is not None:
            shared = f"fixture {fixture} (shared by the checks judging one procedure)" if fixture else None
            try:
                write_evidence_file(state.evidence_dir, check_id, item.nodeid, record, shared_by=shared,
                                    examined=examined, places=getattr(rep, "privacy_places", None),
                                    exchanges=_exchanges_since(item.config, record.began))
            except OSError as exc:
                state.problems.append(f"evidence of {check_id} not written: {exc}")
            attach_evidence(item, record, title=f"evidence of the procedure ({fixture})" if fixture else None,
                            places=getattr(rep, "privacy_places", None))
        attach_examined(item, examined)
        _decorate_allure(item, rep, record)
    return rep


def _exchanges_since(config: pytest.Config, began: float) -> list:
    """The HTTP exchanges the run's target made since a record began: the check's (or its
    procedure's) requests and responses, already redacted. Tests run one at a time in a
    process, so the time window is the check's own."""
    from ..plugin import run_of

    run = run_of(config)
    target = run.started_target if run is not None else None
    out = []
    for exchange in getattr(target, "exchanges", None) or []:
        try:
            started = datetime.fromisoformat(exchange.started_at).timestamp()
        except (TypeError, ValueError):
            continue
        if started >= began - 0.001:
            out.append(exchange)
    return out


def _decorate_allure(item: pytest.Item, rep, record) -> None:
    from .allure_result import decorate
    from .results import outcome_of

    decorate(item, rep, check_id=_check_id(item), citations=_citations(item), outcome=outcome_of(rep),
             target=_target_of(item.config), began=getattr(record, "began", None))


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "privacy_outcome", None) == outcomes.WAIVED:
        return "waived", "w", "WAIVED"
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    state = _state(_CONFIG[0]) if _CONFIG else None
    if state is None or not state.controller:
        return
    check_id = getattr(report, "privacy_check_id", None)
    if check_id:
        state.checks_seen.add(check_id)
        state.results.record(report)
        run_id = (getattr(report, "privacy_target", None) or {}).get("run_id")
        if run_id:
            state.ledger_runs.add(run_id)
    elif report.failed:
        state.other_failures += 1


def _prune_stale(state: _State) -> None:
    """Remove what an earlier run left where this one writes (files older than this run), so the
    reports describe this run only. Under pytest-xdist the controller cannot know before the
    workers write whether privacy checks were collected, hence at the end, by age."""
    from .allure_env import is_ours

    stale = []
    if state.allure_dir and not state.allure_explicit and state.allure_dir.is_dir() and is_ours(state.allure_dir):
        stale += [p for p in state.allure_dir.iterdir() if p.is_file() or p.is_symlink()]
    if state.evidence_dir.is_dir():
        stale += list(state.evidence_dir.glob("*.json"))
        stale += [p for p in state.evidence_dir.glob("*/*") if p.is_file()]  # attachments: <check-id>/<file>
    for path in stale:
        try:
            if path.lstat().st_mtime < state.started_ts:
                path.unlink()
        except OSError:
            pass


def _target_of(config: pytest.Config) -> dict | None:
    from ..plugin import run_of

    run = run_of(config)
    return run.target_info() if run is not None and run._profile is not None else None


def _changes(config: pytest.Config, state: _State, checks: list[dict], target: dict):
    """Compare with the baseline file, or else the ledger's last results on this target; record
    this run's results in the ledger either way. None: nothing to compare with is known."""
    from . import changes as ch

    before, source = None, None
    baseline = _setting(config, "baseline")
    if baseline:
        try:
            before, _ = ch.load_baseline_file(baseline)
        except ValueError as exc:
            state.problems.append(str(exc))
            return None
        source = f"baseline {baseline}"
    name = target.get("name")
    if name:
        from ..ledger import Ledger

        try:
            ledger = Ledger(_setting(config, "ledger"))
            try:
                if before is None:
                    before = ledger.latest_results(name)
                    source = f"the last results of target {name!r} in the ledger"
                ledger.record_results(name, state.started_at, list(ch.latest_per_check(checks).values()))
            finally:
                ledger.close()
        except Exception as exc:  # noqa: BLE001 - a ledger problem must not cost the run its reports
            state.problems.append(f"the ledger could not be read or written for the comparison: {exc}")
    if source is None:
        return None
    if not before and not baseline:
        # No history: everything broken is new (a first run with --privacy-fail-on new must not pass).
        source = f"nothing: the ledger holds no earlier run of target {name!r}"
    return ch.compare(before or [], checks, baseline=source)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = _state(config)
    if state is None:
        return
    if not state.controller:
        if hasattr(config, "workeroutput"):  # xdist sends it to the controller (pytest_testnodedown)
            from .. import coverage

            config.workeroutput["privacy_coverage"] = coverage.snapshot()
        return
    xmlpath = getattr(config.option, "xmlpath", None)
    extra: list[Path] = []
    if xmlpath:
        from .junit import rewrite_errors

        junit = Path(os.path.normpath(os.path.abspath(os.path.expanduser(os.path.expandvars(xmlpath)))))
        rewrite_errors(junit)
        extra.append(junit)
    if not state.checks_seen:
        return  # nothing ran: the previous run's reports stay as they were, and still verify
    _prune_stale(state)
    state.scope.interrupted = _ended_early(session)
    results = state.results
    results.scope = state.scope.to_dict({c.check_id for c in results.checks},
                                        {cl for c in results.checks for cl in c.clauses})
    results.waivers = _waiver_record(state, results.as_dicts())
    own_target = _target_of(config)
    results.scope.update(_conditions(config, state, own_target or results.target or {}))
    results_path = results.finish(own_target)
    target = results.target or {}
    checks = results.as_dicts()
    state.changes = _changes(config, state, checks, target)
    _decide(session, state, checks)
    if not state.allure_on and state.allure_dir is not None and state.allure_dir.is_dir():
        # Under pytest-xdist the workers collect and write results; the controller only sees them.
        state.allure_on = any(state.allure_dir.glob("*-result.json"))
    if state.allure_dir is not None and (state.allure_on or state.allure_explicit):
        from .. import __version__
        from .allure_env import write_all

        try:
            write_all(state.allure_dir, target=target, started_at=state.started_at, framework_version=__version__)
        except OSError as exc:
            state.problems.append(f"Allure environment not written: {exc}")
        extra += sorted(p for p in state.allure_dir.glob("*") if p.is_file())
    if results_path is None:
        state.problems.append("compliance report not written: the per-check results are switched off "
                              "(--privacy-results is empty)")
        return
    from .compliance import write_reports

    try:
        state.written = write_reports(results_path, state.reports_dir, evidence_dir=state.evidence_dir,
                                      extra_files=extra,
                                      changes=state.changes.to_dict() if state.changes else None)
    except (OSError, ValueError) as exc:
        state.problems.append(f"compliance report not written: {exc}")


def _conditions(config: pytest.Config, state: _State, target: dict) -> dict:
    """Profile, what was examined and excluded, build, host, operator, ledger run ids, clock."""
    from .. import coverage
    from ..plugin import run_of
    from .conditions import of_run

    run = run_of(config)
    runs = set(state.ledger_runs) | ({run.run_id} if run is not None and run.run_id else set())
    return of_run(target=target, operator_option=_setting(config, "operator"), ledger_runs=sorted(runs),
                  examined=coverage.merge([coverage.snapshot(), *state.worker_coverage]),
                  assessor=_setting(config, "assessor"))


def _ended_early(session: pytest.Session) -> str:
    """Why the run ended before all it planned had run, in words; "" when it did not."""
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        return "the run was interrupted (Ctrl-C, a signal or a crash) before this check ran"
    stopped = session.shouldfail or session.shouldstop
    if stopped:
        return f"the run stopped early ({stopped}: -x or --maxfail) before this check ran"
    return ""


def _decide(session: pytest.Session, state: _State, checks: list[dict]) -> None:
    from . import gate

    config = session.config
    state.counts = gate.count(c["outcome"] for c in checks)
    fail_on_new = _setting(config, "fail_on") == "new"
    new = state.changes.new if state.changes is not None else [c["check_id"] for c in checks
                                                                   if c["outcome"] == "failed"]
    new_failed = len({c["check_id"] for c in checks if c["outcome"] == "failed" and c["check_id"] in new})
    state.verdict = gate.decide(state.counts, pytest_status=int(session.exitstatus),
                                exit_codes=bool(_setting(config, "exit_codes")),
                                fail_not_verified=bool(_setting(config, "fail_not_verified")),
                                fail_on_new=fail_on_new, new_broken=new_failed,
                                other_failures=state.other_failures)
    state.new_failed = new_failed
    if state.verdict.overridden:
        session.exitstatus = state.verdict.code
    state.exit_status = int(session.exitstatus)


def _not_run(state: _State) -> list[dict]:
    return list((getattr(state.results, "scope", None) or {}).get("not_run") or [])


def _unused(state: _State, checks: list[dict]) -> list[tuple]:
    """(waiver, why) for each waiver in force that covered nothing in this run."""
    from .waivers import unused_reason

    used = {w.get("source") for c in checks for w in (c.get("waived") or {}).get("waivers") or []}
    out = []
    for w in state.waivers:
        if w.source in used:
            continue
        concerned = [c for c in checks
                     if w.matches(c["check_id"], [tuple(x.split(":", 1)) for x in c.get("clauses") or []])]
        out.append((w, unused_reason(w, concerned)))
    return out


def _waiver_record(state: _State, checks: list[dict]) -> dict | None:
    """The waivers of this run as the results file keeps them (the compliance report, also when
    rebuilt later by `privacy-checks report`, lists them from here)."""
    if state.waiver_file is None:
        return None
    used: dict[str, list[str]] = {}
    for c in checks:
        for w in (c.get("waived") or {}).get("waivers") or []:
            used.setdefault(w.get("source"), []).append(c["check_id"])
    unused = dict((w.source, why) for w, why in _unused(state, checks))
    return {**state.waiver_file,
            "in_force": [{**w.to_dict(), "used_by": sorted(set(used.get(w.source, []))),
                          "unused": unused.get(w.source)} for w in state.waivers],
            "expired": [w.to_dict() for w in state.expired],
            "ignored": _expired_lines(state),
            "unused": [f"waiver for {w.subject} ({w.source}, approved by {w.approver}) unused: {unused[w.source]}"
                       for w in state.waivers if w.source in unused]}


@pytest.hookimpl(tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or not state.controller or not state.checks_seen:
        return
    tr = terminalreporter
    if state.changes is not None:
        tr.write_sep("-", "privacy-checks: what changed since the last run")
        for line in state.changes.lines():
            tr.write_line(line)
    tr.write_sep("-", "privacy-checks reports")
    not_run = _not_run(state)
    if not_run:
        tr.write_line(f"not run ({len(not_run)} check(s) of this run's suites or citing its clauses; those "
                      "clauses are at most partly tested):", yellow=True)
        by_reason: dict[str, list[str]] = {}
        for item in not_run:
            by_reason.setdefault(item["reason"], []).append(item["check_id"])
        for reason, ids in sorted(by_reason.items(), key=lambda kv: kv[0].startswith("not collected")):
            more = f", … {len(ids) - 8} more" if len(ids) > 8 else ""
            tr.write_line(f"  {reason}: {', '.join(ids[:8])}{more}")
    for line in _expired_lines(state):
        tr.write_line(f"WARNING: {line}", yellow=True)
    for line in (state.results.waivers or {}).get("unused") or []:
        tr.write_line(line)
    written = state.written
    if written is not None:
        tr.write_line(f"compliance report: {written.html_path}")
        tr.write_line(f"manifest: {written.manifest_path} sha256={written.manifest_sha256}")
        if written.signature_path:
            tr.write_line(f"manifest signature (Ed25519): {written.signature_path} public key={written.public_key}")
        for problem in written.problems:
            tr.write_line(f"WARNING: {problem}", yellow=True)
    if state.allure_on and state.allure_dir is not None:
        tr.write_line(f"allure results: {state.allure_dir} (HTML: privacy-checks report, "
                      f"or npx allure awesome {state.allure_dir} --single-file -o allure-report)")
    for problem in state.problems:
        tr.write_line(f"WARNING: {problem}", yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = _state(config)
    if state is not None and state.controller and state.verdict is not None:
        from .gate import in_words

        tr = config.pluginmanager.get_plugin("terminalreporter")
        fail_on_new = _setting(config, "fail_on") == "new"
        not_run = len(_not_run(state))
        line = (f"privacy-checks: {in_words(state.counts, new_broken=state.new_failed if fail_on_new else None)}"
                + (f", {not_run} not run" if not_run else "")
                + f" — exit {state.exit_status}: {state.verdict.reason}"
                + (" (among the checks that ran)" if not_run else ""))
        if tr is not None:
            tr.write_line(line)
    if _CONFIG and _CONFIG[0] is config:
        _CONFIG.clear()

