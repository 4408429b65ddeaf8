"""pytest hooks for the reports (Allure defaults, compliance report, waivers, JUnit mapping).

Loaded through its own `pytest11` entry point so that its command-line options exist; the
plugin also registers it when the entry point is missing, in which case the options keep
their defaults.

Hook order matters in three places:
- waivers: a waived broken promise is turned into a skip where the test body raised it
  (`pytest_runtest_call`), so every report writer downstream (exit status, JUnit, Allure,
  the results file) sees one consistent non-failure; the outermost makereport wrapper then
  names the outcome "waived", after the plugin's wrapper has set its own outcome;
- the compliance report is written by a `trylast` sessionfinish, after the plugin has written
  privacy-results.json and junitxml its file (which this module rewrites first, so the
  manifest hashes the final bytes);
- Allure is switched on when collection finishes, before any test runs (see allure_env.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from .. import outcomes

_CHECK = "check"
_FAMILIES = ("ccpa", "ccpa_regs", "gdpr", "eprivacy", "gpc")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("privacy-checks reports", "privacy-checks: reports and waivers")
    group.addoption("--privacy-reports", default="reports", metavar="DIR",
                    help="where the compliance report, evidence files and manifest go (default: reports)")
    group.addoption("--privacy-allure", default=None, metavar="DIR",
                    help="where Allure results go when privacy checks run (default: <reports>/allure-results); "
                         "an explicit --alluredir wins")
    group.addoption("--no-privacy-allure", action="store_true", default=False,
                    help="do not switch Allure results on by default")
    group.addoption("--waivers", default=None, metavar="FILE",
                    help="YAML list of waivers: {check: id | clause: 'ccpa:1798.105', justification, approver, "
                         "expires: YYYY-MM-DD}")


@dataclass
class _State:
    controller: bool
    reports_dir: Path
    evidence_dir: Path
    allure_dir: Path | None
    allure_explicit: bool
    waivers: list = field(default_factory=list)
    expired: list = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    checks_seen: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    written: object = None
    allure_on: bool = False


_STATE = pytest.StashKey[_State]()
_CONFIG: list = []


def _opt(config: pytest.Config, name: str, default=None):
    try:
        return config.getoption(name)
    except ValueError:  # registered too late for options: keep defaults
        return default


def _state(config: pytest.Config) -> _State | None:
    return config.stash.get(_STATE, None)


def pytest_configure(config: pytest.Config) -> None:
    if _STATE in config.stash:
        return
    reports = config.rootpath / (_opt(config, "privacy_reports") or "reports")
    explicit = getattr(config.option, "allure_report_dir", None)
    if explicit:
        allure_dir = Path(explicit).absolute()
    elif _opt(config, "no_privacy_allure", False):
        allure_dir = None
    else:
        allure_dir = config.rootpath / (_opt(config, "privacy_allure") or reports / "allure-results")
    state = _State(controller=not hasattr(config, "workerinput"), reports_dir=reports,
                   evidence_dir=reports / "evidence", allure_dir=allure_dir, allure_explicit=bool(explicit))
    path = _opt(config, "waivers")
    if path:
        from .waivers import WaiverError, load_waivers, split_expired

        try:
            state.waivers, state.expired = split_expired(load_waivers(path))
        except WaiverError as exc:
            raise pytest.UsageError(f"privacy-checks: {exc}") from None
    config.stash[_STATE] = state
    # pytest_runtest_logreport gets no config, and under pytest-xdist it runs on the controller.
    _CONFIG[:] = [config]


def _expired_lines(state: _State) -> list[str]:
    return [f"waiver for {w.subject} expired on {w.expires.isoformat()} ({w.source}, approved by {w.approver}): "
            "ignored" for w in state.expired]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None or not state.controller:
        return
    from .allure_env import empty_directory, is_ours
    from .compliance import MANIFEST

    # Only directories an earlier privacy run wrote are emptied: this plugin is loaded into
    # every pytest run of the environment and must not delete anyone else's files.
    if state.allure_dir and not state.allure_explicit and state.allure_dir.is_dir() and is_ours(state.allure_dir):
        empty_directory(state.allure_dir)
    if (state.reports_dir / MANIFEST).is_file() and state.evidence_dir.is_dir():
        for stale in state.evidence_dir.glob("*.json"):
            stale.unlink(missing_ok=True)
        for stale in state.evidence_dir.glob("*/*"):  # attachments: <check-id>/<file>
            if stale.is_file():
                stale.unlink(missing_ok=True)
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        for line in _expired_lines(state):
            tr.write_line(f"privacy-checks: WARNING: {line}", yellow=True)


def _check_id(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker(_CHECK)
    return str(mark.args[0]) if mark is not None and mark.args else None


def _citations(item: pytest.Item) -> list[tuple[str, str]]:
    return [(m.name, str(a)) for m in item.iter_markers() if m.name in _FAMILIES for a in m.args]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    if state is None or not (state.waivers or state.expired):
        return
    # Before -k/-m deselection, so narrowing a run does not turn a valid waiver file into an error.
    known = {cid for cid in map(_check_id, items) if cid}
    unknown = [w for w in state.waivers + state.expired if w.check and w.check not in known]
    if not unknown:
        return
    message = ("privacy-checks: waiver(s) name checks that none of the collected checks has:\n  "
               + "\n  ".join(f"{w.check} ({w.source})" for w in unknown))
    if state.controller:
        raise pytest.UsageError(message)
    # On a pytest-xdist worker a UsageError reaches the controller as a crash with the message
    # lost: run nothing instead (no test touches the target) and let the warning carry the reason.
    import warnings

    config.hook.pytest_deselected(items=list(items))
    items[:] = []
    warnings.warn(pytest.PytestWarning(message), stacklevel=1)


def pytest_collection_finish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None or session.config.option.collectonly:
        return
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
    """A broken promise a valid waiver covers: reported as a skip, named "waived"."""

    def __init__(self, waiver, message: str) -> None:
        self.waiver = waiver
        self.text = f"{waiver.describe()}\nThe promise is still broken: {message}"
        super().__init__(self.text, _use_item_location=True)


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
        from .waivers import find_waiver

        waiver = find_waiver(state.waivers, _check_id(item), _citations(item))
        if waiver is None:
            raise
        raise Waived(waiver, str(exc)) from None


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
    if rep.when != "call":
        return rep
    if call.excinfo is not None and isinstance(call.excinfo.value, Waived):
        waived = call.excinfo.value
        rep.privacy_outcome = outcomes.WAIVED
        rep.privacy_waiver = waived.waiver.to_dict()
        path, lineno = item.reportinfo()[:2]
        rep.longrepr = (str(path), (lineno or 0) + 1, waived.text)
        _set_outcome_property(item, outcomes.WAIVED)
    elif getattr(rep, "privacy_outcome", None):
        _set_outcome_property(item, rep.privacy_outcome)
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
                                    examined=examined)
            except OSError as exc:
                state.problems.append(f"evidence of {check_id} not written: {exc}")
            attach_evidence(item, record, title=f"evidence of the procedure ({fixture})" if fixture else None)
        attach_examined(item, examined)
    return rep


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    if getattr(report, "privacy_outcome", None) == outcomes.WAIVED:
        return "waived", "w", "WAIVED"
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    check_id = getattr(report, "privacy_check_id", None)
    if check_id and _CONFIG:
        state = _state(_CONFIG[0])
        if state is not None:
            state.checks_seen.add(check_id)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = _state(config)
    if state is None or not state.controller:
        return
    xmlpath = getattr(config.option, "xmlpath", None)
    extra: list[Path] = []
    if xmlpath:
        from .junit import rewrite_errors

        junit = Path(os.path.normpath(os.path.abspath(os.path.expanduser(os.path.expandvars(xmlpath)))))
        rewrite_errors(junit)
        extra.append(junit)
    if not state.checks_seen:
        return
    results_opt = _opt(config, "privacy_results")
    results_path = config.rootpath / results_opt if results_opt else None
    target: dict = {}
    if results_path is not None and results_path.is_file():
        import json

        try:
            target = json.loads(results_path.read_text(encoding="utf-8")).get("target") or {}
        except ValueError:
            target = {}
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
    if results_path is None or not results_path.is_file():
        state.problems.append("compliance report not written: the per-check results are switched off "
                              "(--privacy-results is empty)")
        return
    from .compliance import write_reports

    try:
        state.written = write_reports(results_path, state.reports_dir, evidence_dir=state.evidence_dir,
                                      extra_files=extra, waivers_ignored=_expired_lines(state))
    except (OSError, ValueError) as exc:
        state.problems.append(f"compliance report not written: {exc}")


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    state = _state(config)
    if state is None or not state.controller:
        return
    written = state.written
    if not (written or state.problems or state.expired):
        return
    tr = terminalreporter
    tr.write_sep("-", "privacy-checks reports")
    for line in _expired_lines(state):
        tr.write_line(f"WARNING: {line}", yellow=True)
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
    if _CONFIG and _CONFIG[0] is config:
        _CONFIG.clear()
