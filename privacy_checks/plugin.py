"""pytest hooks and fixtures for privacy-checks. Thin: every piece of logic lives elsewhere.

Loaded into every pytest run of the environment through the `pytest11` entry point, so
nothing here may start a process or open a file until a test asks for a fixture.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from . import outcomes
from .errors import PrivacyChecksError

_RUN = pytest.StashKey["object"]()
_CHECK_ID = "check"
_DESELECTED = pytest.StashKey["list"]()
# the controller's reader of the workers' sweep progress (under pytest-xdist)
_PROGRESS = pytest.StashKey["object"]()
_FAMILIES = ("ccpa", "ccpa_regs", "gdpr", "eprivacy", "gpc")
# The report hooks and the policy option are modules of their own, registered by this one so that
# `-p no:privacy_checks` switches off everything. The names are those of the entry points earlier
# releases declared: an install that still has them finds the modules registered and skips them.
_PARTS = (("privacy_checks_report", "privacy_checks.report.pytest_hooks"),
          ("privacy_checks_policy", "privacy_checks.policy_plugin"))


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    import importlib

    from . import settings

    settings.add_options(parser)
    for name, module_name in _PARTS:
        module = importlib.import_module(module_name)
        if not pluginmanager.is_registered(module) and pluginmanager.get_plugin(name) is None:
            pluginmanager.register(module, name)


def run_of(config: pytest.Config):
    """This run's RunContext (None when the plugin was not configured)."""
    return config.stash.get(_RUN, None)


def _demo_switches(config: pytest.Config, name: str, what: str) -> list[str]:
    from .settings import value

    names = value(config, name)
    if not names:
        return []
    if what == "flaw":
        from .demo.flaws import parse_flaws as parse
    else:
        from .demo.faults import parse_faults as parse
    try:
        parsed = sorted(parse(names))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if value(config, "target"):
        raise pytest.UsageError(f"--privacy-demo-{what} {'switches flaws in' if what == 'flaw' else 'makes'} "
                                f"the built-in demo target{'' if what == 'flaw' else ' misbehave'}; "
                                "it cannot be combined with --privacy-target")
    return parsed


def pytest_configure(config: pytest.Config) -> None:
    for family in _FAMILIES:
        config.addinivalue_line("markers", f"{family}(*clauses): the {family} clauses this check enforces")
    config.addinivalue_line("markers", f"{_CHECK_ID}(id): the check's stable id, e.g. ccpa.delete.no-residual-data")
    config.addinivalue_line("markers", "read_only: the check creates no subject and changes nothing on the target")
    from .runtime import RunContext
    from .settings import value

    flaws = _demo_switches(config, "demo_flaws", "flaw")
    faults = _demo_switches(config, "demo_faults", "fault")
    worker = getattr(config, "workerinput", None)
    config.stash[_RUN] = RunContext(
        target_path=value(config, "target"), flaws=flaws, faults=faults,
        ledger_url=value(config, "ledger"), seed=str(value(config, "seed")),
        lease_seconds=float(value(config, "lease_seconds")),
        sink_control_url=(worker or {}).get("privacy_checks_sink"),
        keep_artifacts=bool(value(config, "keep_artifacts")),
        smtp_url=(worker or {}).get("privacy_checks_smtp"))
    if config.getoption("verbose") >= 0 and worker is None:
        from .observe.stores.progress import TerminalStream

        config.stash[_RUN].progress_stream = TerminalStream(config)
    elif (worker or {}).get("privacy_checks_progress"):
        from .observe.stores.progress import WorkerRelay

        config.stash[_RUN].progress_stream = WorkerRelay(worker["privacy_checks_progress"], worker.get("workerid", "gw"))
    if (worker or {}).get("privacy_checks_error"):
        config.stash[_RUN].startup_error = worker["privacy_checks_error"]


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist must not reject it
def pytest_configure_node(node) -> None:  # pragma: no cover - only with pytest-xdist
    # The controller runs the capture sinks (HTTP and SMTP) so every worker's target delivers to one place.
    run = node.config.stash[_RUN]
    node.workerinput["privacy_checks_sink"] = run.sink_url
    if run.progress_stream is not None:  # not under -q
        node.workerinput["privacy_checks_progress"] = _progress_relay(node.config)
    try:
        node.workerinput["privacy_checks_smtp"] = run.smtp_url or ""
    except PrivacyChecksError as exc:
        # every check of every worker reports it, as a single process would
        node.workerinput["privacy_checks_smtp"] = ""
        node.workerinput["privacy_checks_error"] = str(exc)


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_RUN, None)
    if run is not None and session.exitstatus == pytest.ExitCode.INTERRUPTED:
        run.end_status = "interrupted"  # the ledger must not call a cut-off run finished


def _progress_relay(config: pytest.Config) -> str:
    """The file the workers' sweep progress goes through, and the thread that prints it (once)."""
    tail = config.stash.get(_PROGRESS, None)
    if tail is None:
        import tempfile

        from .observe.stores.progress import RelayTail

        fd, path = tempfile.mkstemp(prefix="privacy-checks-progress-", suffix=".log")
        os.close(fd)
        tail = config.stash[_PROGRESS] = RelayTail(path, config.stash[_RUN].progress_stream).start()
    return tail.path


def pytest_unconfigure(config: pytest.Config) -> None:
    tail = config.stash.get(_PROGRESS, None)
    if tail is not None:
        tail.stop()
        with contextlib.suppress(OSError):
            os.unlink(tail.path)
    run = config.stash.get(_RUN, None)
    if run is not None:
        run.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from . import collection
    from .settings import value

    problems = collection.prepare(items)
    if problems:
        raise pytest.UsageError("privacy-checks: invalid check markers:\n  " + "\n  ".join(problems))
    patterns, clause_texts = value(config, "check"), value(config, "clause")
    if not (patterns or clause_texts):
        return
    selected, deselected, problems = collection.select(items, patterns, clause_texts)
    if problems:
        collection.stop(config, items, "privacy-checks: " + "\n  ".join(problems))
        return
    config.stash[_DESELECTED] = [cid for cid in map(collection.check_id, deselected) if cid]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A right the profile says the target does not offer reaches every check of that right,
    # before any fixture starts a procedure for it (outcomes.RIGHT_OF_CHECK).
    from .collection import check_id

    cid = check_id(item)
    run = item.config.stash.get(_RUN, None)
    right = outcomes.right_of(cid) if cid else None
    if right is not None and run is not None:
        outcomes.not_offered(run.profile, right)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    from .collection import check_id

    if check_id(item) is None:
        return (yield)
    # What the check body records with outcomes.examined(); a pass needs a positive count.
    with outcomes.tallying() as tally, outcomes.remarking() as remarks:
        item.privacy_examined = tally
        item.privacy_remarks = remarks
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    from .collection import check_id, citations

    rep = yield
    _scrub_report(rep, call)
    cid = check_id(item)
    if cid is None:
        return rep
    rep.privacy_check_id = cid
    run = item.config.stash.get(_RUN, None)
    if run is not None and run._profile is not None:
        # Under xdist only workers load the profile; the report carries it to the controller.
        rep.privacy_target = run.target_info()
    rep.privacy_clauses = [f"{family}:{ref}" for family, ref in citations(item)]
    if rep.when == "teardown":
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
    rep.privacy_remarks = list(getattr(item, "privacy_remarks", None) or [])
    if exc is None:
        if rep.passed and not outcomes.examined_anything(tally):
            return _verdict(item, rep, outcomes.NOT_VERIFIED, outcomes.nothing_examined(tally))
        return rep
    kind = outcomes.outcome_for_exception(exc)
    if kind is None:
        return rep
    if getattr(exc, "places", None):
        rep.privacy_places = [p.to_dict() for p in exc.places]
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
    from .settings import value

    if kind == outcomes.NOT_VERIFIED and value(item.config, "fail_not_verified"):
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
