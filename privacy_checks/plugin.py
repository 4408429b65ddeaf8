"""pytest hooks and fixtures for privacy-checks. Thin: every piece of logic lives elsewhere.

Loaded into every pytest run of the environment through the `pytest11` entry point, so
nothing here may start a process or open a file until a test asks for a fixture.
"""

from __future__ import annotations

import os

import pytest

from . import outcomes
from .errors import PrivacyChecksError

_RUN = pytest.StashKey["object"]()
_CHECK_ID = "check"
_FAMILIES = ("ccpa", "ccpa_regs", "gdpr", "eprivacy", "gpc")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("privacy-checks", "privacy-checks: prove privacy promises against a live target")
    group.addoption("--target", default=os.environ.get("PRIVACY_CHECKS_TARGET"), metavar="PROFILE",
                    help="target profile (YAML); default: start the built-in demo target")
    group.addoption("--demo-flaw", action="append", default=[], metavar="NAME",
                    help="switch a flaw on in the demo target (repeatable); also PRIVACY_CHECKS_DEMO_FLAWS=a,b")
    group.addoption("--demo-fault", action="append", default=[], metavar="NAME",
                    help="switch a fault on in the demo target (repeatable)")
    group.addoption("--ledger", default=None, metavar="URL",
                    help="SQLAlchemy URL of the ledger (default: PRIVACY_CHECKS_LEDGER or "
                         "sqlite:///.privacy-checks/ledger.sqlite)")
    group.addoption("--privacy-seed", default=os.environ.get("PRIVACY_CHECKS_SEED", "privacy-checks"),
                    help="seed for synthetic subjects (tokens also take a per-run nonce)")
    group.addoption("--lease-seconds", type=float, default=float(os.environ.get("PRIVACY_CHECKS_LEASE", 600)),
                    help="how long this run's lease on its subjects lasts without renewal")
    group.addoption("--privacy-results", default="reports/privacy-results.json", metavar="PATH",
                    help="where to write the per-check results (JSON); empty to switch off")
    group.addoption("--fail-not-verified", action="store_true", default=False,
                    help="make 'not verified' (a mandatory right the profile cannot drive) fail the run")
    group.addoption("--keep-artifacts", action="store_true", default=False,
                    help="keep the command steps' output directories (removed after the run by default)")


def pytest_configure(config: pytest.Config) -> None:
    for family in _FAMILIES:
        config.addinivalue_line("markers", f"{family}(*clauses): the {family} clauses this check enforces")
    config.addinivalue_line("markers", f"{_CHECK_ID}(id): the check's stable id, e.g. ccpa.delete.no-residual-data")
    config.addinivalue_line("markers", "read_only: the check creates no subject and changes nothing on the target")
    flaws = list(config.getoption("demo_flaw") or [])
    flaws += [f for f in os.environ.get("PRIVACY_CHECKS_DEMO_FLAWS", "").split(",") if f.strip()]
    if flaws:
        from .demo.flaws import parse_flaws

        try:
            flaws = sorted(parse_flaws(flaws))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        if config.getoption("target"):
            raise pytest.UsageError("--demo-flaw switches flaws in the built-in demo target; "
                                    "it cannot be combined with --target")
    faults = list(config.getoption("demo_fault") or [])
    if faults:
        from .demo.faults import parse_faults

        try:
            faults = sorted(parse_faults(faults))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        if config.getoption("target"):
            raise pytest.UsageError("--demo-fault makes the built-in demo target misbehave; "
                                    "it cannot be combined with --target")
    from .report import pytest_hooks as report_hooks
    from .runtime import RunContext

    # Reports (Allure defaults, compliance report, waivers, JUnit mapping) live in their own
    # hook module so this file stays wiring only.
    if not config.pluginmanager.is_registered(report_hooks):
        config.pluginmanager.register(report_hooks, "privacy_checks.report")
    _CONFIG[:] = [config]
    worker = getattr(config, "workerinput", None)
    config.stash[_RUN] = RunContext(
        target_path=config.getoption("target"), flaws=flaws, faults=faults,
        ledger_url=config.getoption("ledger"), seed=str(config.getoption("privacy_seed")),
        lease_seconds=float(config.getoption("lease_seconds")),
        sink_control_url=(worker or {}).get("privacy_checks_sink"),
        keep_artifacts=bool(config.getoption("keep_artifacts")),
        smtp_url=(worker or {}).get("privacy_checks_smtp"))
    if config.getoption("verbose") >= 0 and worker is None:
        from .observe.stores.progress import TerminalStream

        config.stash[_RUN].progress_stream = TerminalStream(config)
    if (worker or {}).get("privacy_checks_error"):
        config.stash[_RUN].startup_error = worker["privacy_checks_error"]


_RESULTS = pytest.StashKey["object"]()


# The per-check results (--privacy-results) live in report/results.py; these hooks only wire them.
@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    from .report.results import for_session

    results = for_session(session.config)
    if results is not None:
        session.config.stash[_RESULTS] = results


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    results = _CONFIG[0].stash.get(_RESULTS, None) if _CONFIG else None
    if results is not None:
        results.record(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    results = session.config.stash.get(_RESULTS, None)
    if results is not None:
        run = session.config.stash.get(_RUN, None)
        results.finish(run.target_info() if run is not None and run._profile is not None else None)


_CONFIG: list = []


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist must not reject it
def pytest_configure_node(node) -> None:  # pragma: no cover - only with pytest-xdist
    # The controller runs the capture sinks (HTTP and SMTP) so every worker's target delivers to one place.
    run = node.config.stash[_RUN]
    node.workerinput["privacy_checks_sink"] = run.sink_url
    try:
        node.workerinput["privacy_checks_smtp"] = run.smtp_url or ""
    except PrivacyChecksError as exc:
        # every check of every worker reports it, as a single process would
        node.workerinput["privacy_checks_smtp"] = ""
        node.workerinput["privacy_checks_error"] = str(exc)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(_RUN, None)
    if run is not None:
        run.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        refs = []
        for family in _FAMILIES:
            for mark in item.iter_markers(name=family):
                from .clauses import validate_marker

                try:
                    refs += validate_marker(family, mark.args)
                except ValueError as exc:
                    problems.append(f"{item.nodeid}: {exc}")
        check = item.get_closest_marker(_CHECK_ID)
        if check is not None:
            try:
                outcomes.validate_check_id(check.args[0] if check.args else "")
            except ValueError as exc:
                problems.append(f"{item.nodeid}: {exc}")
        elif refs:
            problems.append(f"{item.nodeid}: a check citing a clause needs a stable id: @pytest.mark.check('...')")
        if refs:
            from .clauses import allure_labels

            labels = allure_labels(refs)
            for kind in ("epic", "feature", "story", "severity"):
                values = labels.get(kind)
                for value in values if isinstance(values, list | tuple) else [values] if values else []:
                    item.add_marker(pytest.mark.allure_label(value, label_type=kind))
            for url, name in labels.get("links", []):
                item.add_marker(pytest.mark.allure_link(url, name=name, link_type="link"))
            if check is not None:
                item.add_marker(pytest.mark.allure_label(check.args[0], label_type="tag"))
    if problems:
        raise pytest.UsageError("privacy-checks: invalid check markers:\n  " + "\n  ".join(problems))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A right the profile says the target does not offer reaches every check of that right,
    # before any fixture starts a procedure for it (outcomes.RIGHT_OF_CHECK).
    check = item.get_closest_marker(_CHECK_ID)
    run = item.config.stash.get(_RUN, None)
    right = outcomes.right_of(str(check.args[0])) if check is not None and check.args else None
    if right is not None and run is not None:
        outcomes.not_offered(run.profile, right)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if item.get_closest_marker(_CHECK_ID) is None:
        return (yield)
    # What the check body records with outcomes.examined(); a pass needs a positive count.
    with outcomes.tallying() as tally:
        item.privacy_examined = tally
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    rep = yield
    _scrub_report(rep, call)
    check = item.get_closest_marker(_CHECK_ID)
    if check is not None and check.args:
        rep.privacy_check_id = check.args[0]
        run = item.config.stash.get(_RUN, None)
        if run is not None and run._profile is not None:
            # Under xdist only workers load the profile; the report carries it to the controller.
            rep.privacy_target = run.target_info()
        rep.privacy_clauses = [m.name + ":" + str(a) for m in item.iter_markers() if m.name in _FAMILIES
                               for a in m.args]
    if check is None or rep.when == "teardown":
        return rep
    exc = call.excinfo.value if call.excinfo is not None else None
    if rep.when == "setup":
        if isinstance(exc, outcomes.NotApplicable | outcomes.NotVerified):
            return _verdict(item, rep, outcomes.outcome_for_exception(exc), str(exc))
        if isinstance(exc, PrivacyChecksError):
            # A fixture could not reach the target or load the profile: one line says which.
            rep.longrepr = f"ERROR: {exc}"
            rep.privacy_outcome = outcomes.ERROR
            item.user_properties.append(("privacy_outcome", outcomes.ERROR))
        return rep
    tally = dict(getattr(item, "privacy_examined", None) or {})
    rep.privacy_examined = tally
    if exc is None:
        if rep.passed and not outcomes.examined_anything(tally):
            return _verdict(item, rep, outcomes.NOT_VERIFIED, outcomes.nothing_examined(tally))
        return rep
    kind = outcomes.outcome_for_exception(exc)
    if kind is None:
        return rep
    if isinstance(exc, outcomes.PromiseBroken | PrivacyChecksError):
        # The message names where the promise broke; a traceback into the framework would
        # only bury it.
        rep.longrepr = f"{kind.upper()}: {exc}"
    return _verdict(item, rep, kind, str(exc))


def _scrub_report(rep: pytest.TestReport, call: pytest.CallInfo) -> None:
    """No live secret in pytest's own output: the failure text (a traceback shows the values of
    local variables), the exception message that Allure and JUnit copy, captured output."""
    from .evidence import has_secret, scrub

    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is not None and any(has_secret(repr(a)) for a in exc.args):
        exc.args = tuple(scrub(a if isinstance(a, str) else repr(a)) for a in exc.args)
    if rep.longrepr is not None and not isinstance(rep.longrepr, tuple):
        text = str(rep.longrepr)
        if has_secret(text):
            rep.longrepr = scrub(text)
    elif isinstance(rep.longrepr, tuple) and has_secret(str(rep.longrepr[2])):
        rep.longrepr = (rep.longrepr[0], rep.longrepr[1], scrub(str(rep.longrepr[2])))
    rep.sections = [(name, scrub(content)) for name, content in rep.sections]


def _verdict(item: pytest.Item, rep: pytest.TestReport, kind: str, message: str) -> pytest.TestReport:
    """Give the report the privacy outcome `kind`: a not-verified or not-applicable check is one
    line with its reason (a failure under --fail-not-verified), never a traceback."""
    if kind == outcomes.NOT_VERIFIED and item.config.getoption("fail_not_verified"):
        rep.outcome = "failed"
        rep.longrepr = f"NOT VERIFIED: {message}"
        rep.privacy_outcome = outcomes.NOT_VERIFIED
    elif kind in (outcomes.NOT_APPLICABLE, outcomes.NOT_VERIFIED):
        rep.outcome = "skipped"
        path, lineno = item.reportinfo()[:2]
        rep.longrepr = (str(path), (lineno or 0) + 1, f"{kind}: {message}")
        rep.privacy_outcome = kind
    elif kind == outcomes.ERROR:
        rep.privacy_outcome = outcomes.ERROR
    item.user_properties.append(("privacy_outcome", getattr(rep, "privacy_outcome", kind)))
    return rep


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    kind = getattr(report, "privacy_outcome", None)
    if kind == outcomes.NOT_VERIFIED and report.failed:
        # --fail-not-verified: listed with the failures, each with its reason
        return "failed", "V", "NOT VERIFIED"
    if kind == outcomes.ERROR:
        return "error", "E", "ERROR"
    if kind == outcomes.NOT_APPLICABLE:
        return "not applicable", "n", "NOT APPLICABLE"
    if kind == outcomes.NOT_VERIFIED:
        return "not verified", "V", "NOT VERIFIED"
    return None


def _run(request: pytest.FixtureRequest):
    return request.config.stash[_RUN]


@pytest.fixture(scope="session")
def privacy_run(request: pytest.FixtureRequest):
    """The run: lazily starts the demo (or loads --target), the ledger and the capture sink."""
    return _run(request)


@pytest.fixture(scope="session")
def privacy_profile(privacy_run):
    return privacy_run.profile


@pytest.fixture(scope="session")
def privacy_target(privacy_run):
    return privacy_run.target


@pytest.fixture(scope="session")
def privacy_ledger(privacy_run):
    return privacy_run.ledger


@pytest.fixture(scope="session")
def capture_sink(privacy_run):
    return privacy_run.capture


@pytest.fixture
def subject_factory(privacy_run, request: pytest.FixtureRequest):
    """Create subjects through the target's `create_subject`; each is removed at teardown."""
    created = []

    def create(role: str = "subject", **overrides):
        subject = privacy_run.create_subject(request.node.nodeid, role=role, **overrides)
        created.append(subject)
        return subject

    yield create
    errors = []
    for subject in reversed(created):
        try:
            privacy_run.remove_subject(subject)
        except Exception as exc:  # noqa: BLE001 - the ledger keeps it for `privacy-checks cleanup`
            errors.append(f"{subject.describe()}: {exc}")
    if errors:
        pytest.fail("could not remove subjects (they stay in the ledger for cleanup):\n" + "\n".join(errors),
                    pytrace=False)


@pytest.fixture
def subject(subject_factory):
    return subject_factory("subject")


@pytest.fixture
def control_subject(subject_factory):
    return subject_factory("control")


@pytest.fixture
def evidence(request: pytest.FixtureRequest, privacy_run):
    """The check's evidence record; attached to the reports when the test ends."""
    from .evidence import Evidence

    mark = request.node.get_closest_marker(_CHECK_ID)
    record = Evidence(mark.args[0] if mark else request.node.nodeid)
    request.node.privacy_evidence = record
    yield record
    from .report.attach import attach_evidence

    attach_evidence(request.node, record)


@pytest.fixture(scope="module")
def deletion_procedure(request: pytest.FixtureRequest, privacy_run):
    """Run the deletion procedure once per suite module; each test judges one promise of it."""
    from .flows.deletion import run_deletion

    # A GDPR erasure is due within one month (Art. 12(3)), a CCPA deletion within 45 days.
    regime = "gdpr" if ".gdpr." in f".{request.module.__name__}." else "ccpa"
    yield from privacy_run.procedure(request, run_deletion, regime=regime)
