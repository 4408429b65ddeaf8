"""A release gate engineers adopt (issue 19): exit codes per outcome mix, selection by check id
and clause, JUnit properties, settings from ini keys and environment variables, no side effects
on other projects, and one waiver file for every per-suite job.

Real pytest runs in subprocesses, as a pipeline would start them; the checks are small files of
our own (the demo has no switch for "not verified" or a mix of outcomes in one run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT
from privacy_checks import settings

MIX = '''
import pytest
from privacy_checks.outcomes import CheckError, NotApplicable, NotVerified, PromiseBroken, examined


@pytest.mark.ccpa("1798.105(c)")
@pytest.mark.check("syn.delete.broken")
def test_broken(privacy_run):
    raise PromiseBroken("the data is still held in 1 place(s):\\n  app: table users, column email")


@pytest.mark.gdpr("Art. 17(1)")
@pytest.mark.check("syn.erasure.unreachable")
def test_unreachable(privacy_run):
    raise CheckError("the target is unreachable: https://127.0.0.1:9")


@pytest.mark.ccpa("1798.110")
@pytest.mark.check("syn.know.not-verified")
def test_not_verified(privacy_run):
    raise NotVerified("the profile says the target cannot drive 'know'")


@pytest.mark.ccpa("1798.121")
@pytest.mark.check("syn.limit.not-applicable")
def test_not_applicable(privacy_run):
    raise NotApplicable("the target does not offer 'limit'")


@pytest.mark.ccpa("1798.100")
@pytest.mark.check("syn.collect.held")
def test_held(privacy_run):
    examined("stores swept", 1)  # a pass says what it examined


@pytest.mark.ccpa("1798.105")
@pytest.mark.check("syn.delete.waived")
def test_waived(privacy_run):
    raise PromiseBroken("the search index still holds the subject")
'''

WAIVERS = """
- check: syn.delete.waived
  justification: the nightly reindex purges it (PRIV-1)
  approver: Dana Whitfield
  expires: 2099-12-31
"""


def pytest_run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_CHECKS_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180, env={**environ, **(env or {})})


def last_line(proc: subprocess.CompletedProcess) -> str:
    return [line for line in proc.stdout.splitlines() if line.strip()][-1]


@pytest.fixture
def mix(tmp_path):
    (tmp_path / "test_mix.py").write_text(textwrap.dedent(MIX))
    (tmp_path / "waivers.yaml").write_text(WAIVERS)
    return tmp_path


@pytest.mark.parametrize("selection, extra, code, words", [
    ("held or not_applicable or waived", (), 0, "1 held, 0 broken, 0 could not be checked, 1 not applicable, "
                                                "0 not verified, 1 waived"),
    ("held or not_verified", (), 0, "1 held, 0 broken, 0 could not be checked, 0 not applicable, 1 not verified"),
    ("held or not_verified", ("--privacy-fail-not-verified",), 6, "1 not verified"),
    ("held or unreachable or not_verified", ("--privacy-fail-not-verified",), 3, "1 could not be checked"),
    ("held or unreachable", (), 3, "1 held, 0 broken, 1 could not be checked"),
    ("broken or unreachable or held", (), 1, "1 held, 1 broken, 1 could not be checked"),
])
def test_exit_codes_per_outcome_mix_and_the_last_line_counts_them_in_words(mix, selection, extra, code, words):
    proc = pytest_run(mix, "test_mix.py", "-k", selection, "--privacy-exit-codes", "--privacy-waivers",
                      "waivers.yaml", *extra)
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-2000:]
    line = last_line(proc)
    assert line.startswith("privacy-checks: ") and words in line and f"exit {code}:" in line, line


def test_without_the_option_pytest_keeps_its_meaning(mix):
    proc = pytest_run(mix, "test_mix.py", "-k", "held or unreachable")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "exit 1: nothing broken, but 1 check(s) could not be made" in last_line(proc)
    # A usage error stays pytest's 4 whatever the option says.
    proc = pytest_run(mix, "test_mix.py", "--privacy-exit-codes", "--privacy-check", "syn.nothing.*")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--privacy-check 'syn.nothing.*' matches none of the 6 collected checks" in proc.stderr


def test_select_by_check_pattern_and_clause_with_both_in_the_junit_testcase(mix):
    proc = pytest_run(mix, "test_mix.py", "--check", "syn.delete.*", "--check", "syn.collect.held",
                      "--junitxml=junit.xml")
    assert proc.returncode == 1, proc.stdout[-2000:]
    suite = ET.parse(mix / "junit.xml").getroot().find("testsuite")
    props = {case.get("name"): [(p.get("name"), p.get("value")) for p in case.iter("property")]
             for case in suite.iter("testcase")}
    assert set(props) == {"test_broken", "test_waived", "test_held"}
    assert ("privacy_check", "syn.delete.broken") in props["test_broken"]
    assert ("privacy_clause", "ccpa:1798.105(c)") in props["test_broken"]
    assert ("privacy_outcome", "failed") in props["test_broken"]
    # --clause selects a section's citations and its subsections; with --check, both must match.
    proc = pytest_run(mix, "test_mix.py", "--clause", "ccpa:1798.105", "--privacy-exit-codes")
    assert "2 failed, 4 deselected" in proc.stdout, proc.stdout[-2000:]
    proc = pytest_run(mix, "test_mix.py", "--clause", "ccpa:1798.105", "--check", "syn.delete.waived",
                      "--privacy-clause", "gdpr:Art. 17", "--waivers", "waivers.yaml")
    assert proc.returncode == 0 and "5 deselected, 1 waived" in proc.stdout, proc.stdout[-2000:]
    proc = pytest_run(mix, "test_mix.py", "--clause", "ccpa:1798.999")
    assert proc.returncode == 4 and "unknown CCPA section '1798.999'" in proc.stderr, proc.stderr


def test_every_setting_from_an_ini_key_or_an_environment_variable(mix):
    (mix / "pytest.ini").write_text(textwrap.dedent("""
        [pytest]
        privacy_exit_codes = true
        privacy_reports = from-ini
        privacy_check =
            syn.collect.*
            syn.erasure.*
        """))
    proc = pytest_run(mix, "test_mix.py")
    assert proc.returncode == 3, proc.stdout[-2000:]  # the ini's exit codes: error only
    results = json.loads((mix / "from-ini" / "privacy-results.json").read_text())
    assert {c["check_id"] for c in results["checks"]} == {"syn.collect.held", "syn.erasure.unreachable"}
    # Everything of the run goes under the reports directory, privacy-results.json included.
    assert {p.name for p in (mix / "from-ini").iterdir()} >= {
        "privacy-results.json", "compliance-report.html", "manifest.json", "allure-results"}
    assert not (mix / "reports").exists()
    # The environment beats the ini file; the command line beats both.
    proc = pytest_run(mix, "test_mix.py", env={"PRIVACY_CHECKS_REPORTS": "from-env",
                                               "PRIVACY_CHECKS_CHECK": "syn.collect.held",
                                               "PRIVACY_CHECKS_EXIT_CODES": "no"})
    assert proc.returncode == 0 and (mix / "from-env" / "privacy-results.json").is_file(), proc.stdout[-2000:]
    proc = pytest_run(mix, "test_mix.py", "--privacy-reports", "from-cli", env={"PRIVACY_CHECKS_REPORTS": "x"})
    assert proc.returncode == 3 and (mix / "from-cli" / "compliance-report.json").is_file()
    assert not (mix / "x").exists()
    proc = pytest_run(mix, "test_mix.py", env={"PRIVACY_CHECKS_EXIT_CODES": "sometimes"})
    assert proc.returncode == 4
    assert "environment variable PRIVACY_CHECKS_EXIT_CODES must be true or false, not 'sometimes'" in proc.stderr


def test_every_setting_is_in_the_readme_table_with_its_ini_key_and_variable():
    readme = (ROOT / "README.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines()
            if line.startswith("| `--privacy-") or line.startswith("| `--no-privacy")}
    for s in settings.SETTINGS:
        row = next((r for k, r in rows.items() if k.startswith(f"`{s.flag}")), None)
        assert row is not None, f"README option table lacks {s.flag}"
        assert f"`{s.ini}`" in row and f"`{s.env}`" in row, row
        for alias in s.aliases:
            assert f"`{alias}`" in row, (alias, row)
    for name in settings.ENVIRONMENT_ONLY:
        assert f"`{name}`" in readme


FOREIGN = '''
import pytest


@pytest.mark.check("smoke")
def test_smoke():
    assert sum([1, 2]) == 3


@pytest.mark.gdpr("whatever we mean by it")
@pytest.mark.check("smoke")
def test_tagged():
    assert True
'''


OTHER_PLUGINS = (".benchmarks", "__pycache__")  # pytest-benchmark's directory, Python's bytecode


def test_a_foreign_project_with_its_own_check_marker_is_unaffected(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    check(name): our smoke checks\n"
                                         "    gdpr(text): ours too\naddopts = --strict-markers\n")
    (tmp_path / "test_foreign.py").write_text(textwrap.dedent(FOREIGN))
    for args in ((), ("-p", "no:privacy_checks")):
        proc = pytest_run(tmp_path, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "privacy-checks" not in proc.stdout + proc.stderr
        # Nothing written: no reports, no ledger, no Allure results (other plugins' caches aside).
        assert sorted(p.name for p in tmp_path.iterdir() if p.name not in OTHER_PLUGINS) == [
            "pytest.ini", "test_foreign.py"]
    # One -p no:privacy_checks switches off everything, the report hooks and their options included.
    proc = pytest_run(tmp_path, "-p", "no:privacy_checks", "--privacy-reports", "r")
    assert proc.returncode == 4 and "unrecognized arguments: --privacy-reports" in proc.stderr


def test_a_run_that_collects_no_privacy_check_leaves_an_earlier_runs_reports_alone(mix):
    proc = pytest_run(mix, "test_mix.py", "-k", "held")
    assert proc.returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (mix / "reports").rglob("*")}
    (mix / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    proc = pytest_run(mix, "test_plain.py")
    assert proc.returncode == 0 and "privacy-checks" not in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in (mix / "reports").rglob("*")} == before


def test_one_waiver_file_serves_every_per_suite_job(mix):
    (mix / "company-waivers.yaml").write_text(WAIVERS + textwrap.dedent("""
        - check: ccpa.delete.no-residual-data
          justification: a suite this job does not run
          approver: Dana Whitfield
          expires: 2099-12-31
        """))
    proc = pytest_run(mix, "test_mix.py", "-k", "held or waived", "--waivers", "company-waivers.yaml")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert re.search(r"waiver for check ccpa\.delete\.no-residual-data \(company-waivers\.yaml#2, approved by "
                     r"Dana Whitfield\) unused: its check did not run in this run", proc.stdout), proc.stdout
    report = json.loads((mix / "reports" / "compliance-report.json").read_text())
    assert any("no-residual-data" in w for w in report["waivers_unused"])
    # Only an id that no suite defines stops the run.
    (mix / "typo.yaml").write_text(WAIVERS.replace("syn.delete.waived", "ccpa.delete.no-residual-dta"))
    proc = pytest_run(mix, "test_mix.py", "--waivers", "typo.yaml")
    assert proc.returncode == 4
    assert "waiver(s) name checks that no suite defines:\n  ccpa.delete.no-residual-dta (typo.yaml#1)" in proc.stderr
