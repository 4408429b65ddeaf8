"""The README's CI job, run step by step as GitHub Actions would, against a demo started by hand
(`privacy-checks demo`, its printed `export` lines) — and the same outcomes as the built-in run.

Every `run:` step runs in bash in a directory laid out like a checkout; `$GITHUB_ENV` is honoured
between steps and `if: always()` steps run after a failing one. Not run: the `uses:` actions
(GitHub's) and the install step, which is the README Quickstart's install command (run by
.ci/run on a fresh machine; reinstalling into the shared test environment here would disturb
the other tests running beside this one) — this test checks it is exactly that command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_suites

INSTALL = "python -m pip install -e ."


def readme_job() -> dict:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(# \.github/workflows/privacy-gate\.yml\n.*?)```", text, re.S)
    assert block, "README lacks the CI job block"
    workflow = yaml.safe_load(block.group(1))
    (job,) = workflow["jobs"].values()
    return job


def checkout_like(tmp: Path) -> Path:
    work = tmp / "checkout"
    work.mkdir()
    for name in ("suites", "fixtures"):
        (work / name).symlink_to(ROOT / name)
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    return work


STEP_TOOLS = ("bash", "cat", "env", "grep", "sed", "seq", "sleep")


def runner_tools(tmp: Path) -> Path:
    """The runner's PATH beside the environment's own bin: the shell tools the steps use, and
    `pytest` as pip installs it (a console script of this interpreter; this environment borrows
    pytest from the system site-packages, so its bin has none). No Node.js: `privacy-checks
    report` then says how to get the Allure HTML instead of fetching the Allure CLI from npm."""
    tools = tmp / "runner-bin"
    tools.mkdir()
    for name in STEP_TOOLS:
        (tools / name).symlink_to(shutil.which(name))
    script = tools / "pytest"
    script.write_text(f"#!{sys.executable}\nimport sys\nimport pytest\nsys.exit(pytest.console_main())\n")
    script.chmod(0o755)
    return tools


def run_steps(job: dict, work: Path, tmp: Path) -> tuple[dict[str, subprocess.CompletedProcess], list[int]]:
    github_env = tmp / "github_env"
    github_env.write_text("")
    path = os.pathsep.join([str(Path(sys.executable).parent), str(runner_tools(tmp))])
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRIVACY_CHECKS_")}
    env = {**base, "PATH": path, "GITHUB_ENV": str(github_env), **{k: str(v) for k, v in job["env"].items()}}
    results: dict[str, subprocess.CompletedProcess] = {}
    groups: list[int] = []
    failed = False
    for step in job["steps"]:
        if "run" not in step:
            assert "uses" in step
            continue
        name = step["name"]
        if step["run"].strip() == INSTALL:
            results[name] = subprocess.CompletedProcess(INSTALL, 0, "skipped: the Quickstart install", "")
            continue
        if failed and step.get("if") != "always()":
            continue
        proc = subprocess.Popen(["bash", "-e", "-c", step["run"]], cwd=work, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        groups.append(proc.pid)  # a step's background processes (the demo) share its group
        out, err = proc.communicate(timeout=1500)
        results[name] = subprocess.CompletedProcess(step["run"], proc.returncode, out, err)
        failed = failed or proc.returncode != 0
        for line in github_env.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    return results, groups


@pytest.fixture(scope="module")
def job_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("release-gate")
    job = readme_job()
    work = checkout_like(tmp)
    results, groups = run_steps(job, work, tmp)
    yield job, work, results
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def test_the_readme_job_installs_lints_runs_and_publishes(job_run):
    job, work, results = job_run
    names = [s.get("name") or s["uses"] for s in job["steps"]]
    assert any("checkout" in n for n in names) and "Install" in names
    assert results["Install"].args == INSTALL  # the README Quickstart's install
    run = results["Run the checks"]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for name, proc in results.items():
        assert proc.returncode == 0, f"{name}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    assert "fixtures/targets/demo.yaml: ok" in results["Lint the profile"].stdout
    assert re.search(r"^privacy-checks: \d+ held, 0 broken, 0 could not be checked, .* — exit 0: ",
                     run.stdout.splitlines()[-1]), run.stdout[-500:]
    reports = work / "reports"
    suite = ET.parse(reports / "junit.xml").getroot()
    assert any(p.get("name") == "privacy_check" for p in suite.iter("property"))
    assert (reports / "compliance-report.html").is_file() and (reports / "manifest.json").is_file()
    assert list((reports / "allure-results").glob("*-result.json"))
    built = results["Build the reports"].stdout
    assert "compliance report:" in built and "Allure HTML not built: Node.js is needed" in built
    # the rebuilt manifest still lists the run's junit.xml, and every file matches it
    checked = results["Check the reports against their manifest"].stdout
    assert "OK: all" in checked and "nothing unlisted" in checked, checked
    assert "junit.xml" in {f["path"] for f in json.loads((reports / "manifest.json").read_text())["files"]}



def test_the_demos_admin_token_is_on_no_command_line(job_run):
    _, work, results = job_run
    env = dict(line.split("=", 1) for line in (work.parent / "github_env").read_text().splitlines())
    token = env["PRIVACY_CHECKS_DEMO_ADMIN_TOKEN"].encode()
    cmdlines = [_cmdline(int(pid)) for pid in os.listdir("/proc") if pid.isdigit()]
    assert any(b"privacy-checks\0demo" in c for c in cmdlines), "the hand-started demo is not running"
    assert len(token) >= 20 and not [c for c in cmdlines if token in c]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_the_job_against_the_hand_started_demo_gives_the_built_in_runs_outcomes(job_run, tmp_path):
    _, work, _ = job_run
    by_hand = {c["check_id"]: c["outcome"]
               for c in json.loads((work / "reports" / "privacy-results.json").read_text())["checks"]}
    built_in = run_suites(tmp_path, "suites").outcomes()
    assert by_hand == built_in, {k: (by_hand.get(k), built_in.get(k)) for k in set(by_hand) | set(built_in)
                                 if by_hand.get(k) != built_in.get(k)}
    assert "error" not in by_hand.values()
