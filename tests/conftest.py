"""Shared helpers for the framework's own tests: run the suites for real against the demo."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The suites run in fresh interpreters, hundreds of times per test run. Where the machine sets
# PYTHONDONTWRITEBYTECODE (this workplace's does), each of them compiles and assertion-rewrites
# the whole package again: measured, suites/ccpa took 38 s without cached bytecode and 27 s with
# it. A bytecode cache changes nothing a test observes; pytest and importlib write it atomically,
# so parallel workers may share it. Dropped here, every subprocess a test starts inherits that.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


@dataclass
class SuiteRun:
    returncode: int
    stdout: str
    stderr: str
    results: dict[str, dict]  # check id -> {outcome, message, nodeid}
    reports: Path | None = None  # the run's --privacy-reports directory

    def evidence(self, check_id: str) -> dict:
        """The check's evidence file, as an engineer reading the report would open it."""
        return json.loads((self.reports / "evidence" / f"{check_id}.json").read_text())

    def outcomes(self) -> dict[str, str]:
        return {k: v["outcome"] for k, v in self.results.items()}

    def failing(self) -> set[str]:
        """Checks that did not hold or could not be made ('not applicable' is neither)."""
        return {k for k, v in self.results.items() if v["outcome"] not in ("passed", "not applicable")}

    def message(self, check_id: str) -> str:
        """What the check reports: its message and then every place it names (the message lists
        the first findings.MAX_PLACES; the results file carries them all)."""
        result = self.results[check_id]
        return "\n".join([result["message"], *(p["line"] for p in result.get("places") or [])])


# Every variable the demo profile names, with placeholder values: enough for lint, which
# contacts nothing. One list, so a variable the demo profile gains is added once.
DEMO_LINT_ENV = {"PRIVACY_CHECKS_DEMO_URL": "https://127.0.0.1:1", "PRIVACY_CHECKS_DEMO_HTTP_URL": "http://127.0.0.1:2",
                 "PRIVACY_CHECKS_DEMO_DATA": "/tmp/x", "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": "t",
                 "PRIVACY_CHECKS_DEMO_REDIS": "127.0.0.1:3", "PRIVACY_CHECKS_DEMO_S3_URL": "http://127.0.0.1:4",
                 "PRIVACY_CHECKS_DEMO_SINK": "127.0.0.1:0", "PRIVACY_CHECKS_DEMO_SMTP": "127.0.0.1:0"}


def run_suites(tmp_path: Path, *paths: str, flaws: tuple[str, ...] = (), args: tuple[str, ...] = (),
               env: dict | None = None, timeout: float = 600) -> SuiteRun:
    """Run `pytest <paths>` in a subprocess, as a user would, and read its per-check results."""
    results = tmp_path / "privacy-results.json"
    argv = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider",
            f"--privacy-results={results}", f"--ledger=sqlite:///{tmp_path / 'ledger.sqlite'}"]
    if not any(str(a).startswith("--privacy-reports") for a in args):
        # Parallel test runs must not write into the checkout's reports/ at once.
        argv.append(f"--privacy-reports={tmp_path / 'reports'}")
    argv += list(args)
    for flaw in flaws:
        argv += ["--demo-flaw", flaw]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    data = json.loads(results.read_text()) if results.exists() else {"checks": []}
    given = [str(a).split("=", 1)[1] for a in args if str(a).startswith("--privacy-reports=")]
    reports = Path(given[-1]) if given else (None if "--privacy-reports" in args else tmp_path / "reports")
    return SuiteRun(proc.returncode, proc.stdout, proc.stderr,
                    {c["check_id"]: c for c in data["checks"]}, reports)


@pytest.fixture
def suite_runner(tmp_path):
    def run(*paths, **kwargs):
        return run_suites(tmp_path, *paths, **kwargs)

    return run


@pytest.fixture
def standalone_demo(tmp_path, request):
    data = tmp_path / "demo-data"
    token = "standalone-admin-token"
    # flaws, when a test asks (parametrize indirect=True with a tuple of flaw names)
    flaws = [f"--flaw={name}" for name in getattr(request, "param", ())]
    # started as a user would by hand: its printed export lines say where the run's capture
    # servers must listen for the demo's deliveries and mail
    proc = subprocess.Popen([sys.executable, "-m", "privacy_checks.cli", "demo", "--data-dir", str(data),
                             "--admin-token", token, *flaws], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    line = proc.stdout.readline()
    assert "ready" in line, line
    env = {"PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": token}
    while True:
        printed = proc.stdout.readline()
        assert printed, "the demo stopped before printing its pytest command"
        if printed.startswith("pytest "):
            break
        if printed.startswith("export ") and "ADMIN_TOKEN" not in printed:
            name, value = printed[len("export "):].strip().split("=", 1)
            env[name] = shlex.split(value)[0]
    yield env
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


NO_POSTGRES = "PostgreSQL not available: install postgresql or set PRIVACY_CHECKS_TEST_PG_URL"


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL cluster for the whole session (tests/pg.py); skipped without the
    server binaries, except in CI, where a missing PostgreSQL is a failure."""
    from pg import PostgresUnavailable, start_throwaway_cluster

    try:
        url, stop = start_throwaway_cluster(tmp_path_factory.mktemp("postgres"))
    except PostgresUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"{NO_POSTGRES} ({e})")
        pytest.skip(f"{NO_POSTGRES} ({e})")
    yield url
    stop()


@pytest.fixture
def new_database(request):
    """``new_database(kind)``: the URL of an empty database of that kind (``sqlite`` or
    ``postgresql``), its own for this test."""
    import uuid

    import sqlalchemy as sa

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{request.getfixturevalue('tmp_path') / f'{uuid.uuid4().hex[:8]}.db'}"
        url = request.getfixturevalue("postgres_url")
        name = "t_" + uuid.uuid4().hex[:12]
        admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        return sa.make_url(url).set(database=name).render_as_string(hide_password=False)

    return make


@pytest.fixture
def budget_runs_out(monkeypatch):
    """``budget_runs_out(after=n)``: the sweep's time budget (timeouts.sweep) runs out at its
    check number n + 1 (``sweep()`` checks once before each store, each kind between its units:
    pages, objects, files, tables). Deterministic where a tiny real budget would race the clock;
    the reason the sweep reports is the budget's own. Give ``sweep()`` a ``budget_s``."""
    import itertools

    from privacy_checks.observe.stores.progress import Budget

    def arm(after: int) -> None:
        checks = itertools.count(1)
        monkeypatch.setattr(Budget, "exceeded", lambda self: next(checks) > after)

    return arm


def demo_with_recipient_record(tmp_path: Path, recipient: str) -> Path:
    """The demo profile with `recipient` described only by the demo's record of what it sent there
    (the Redis stream sent:<recipient>), as for a target that cannot be pointed at the capture
    server: nothing the capture server sees counts for it. The sink is named <recipient>-record."""
    import yaml

    data = yaml.safe_load((ROOT / "fixtures" / "targets" / "demo.yaml").read_text())
    sink = next(s for s in data["sinks"] if s["name"] == recipient)
    record = {k: v for k, v in sink.items() if k not in ("path", "deletion_notice")}
    data["sinks"] = [s for s in data["sinks"] if s["name"] != recipient] + [
        {**record, "name": f"{recipient}-record", "store": "cache", "key": f"sent:{recipient}"}]
    profile = tmp_path / f"demo-{recipient}-record.yaml"
    profile.write_text(yaml.safe_dump(data, sort_keys=False))
    return profile
