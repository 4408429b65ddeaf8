"""The reports, built from real runs: the CCPA suite against the demo with a flaw switched on,
the HTML report read in headless Chromium, Allure results and metadata, the signed manifest,
JUnit's error/failure split, pytest-xdist and `privacy-checks report`."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import run_suites
from privacy_checks.observe.forms import MARKER
from privacy_checks.report import build, compliance
from privacy_checks.report.junit import rewrite_errors

DELETION = "suites/ccpa/test_right_to_delete.py"
# A subject's password is `Pw-<canary>-9!Xq` (subjects.py); canaries start with the marker.
PASSWORD_CANARY = re.compile(rb"Pw-" + re.escape(MARKER.encode()) + rb"[0-9a-z]+")
BEARER = re.compile(rb"(?i)\bbearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{6,}")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def rendered_text(path: Path, tmp_path: Path) -> str:
    """The text Chromium renders for a file:// page (as an auditor's browser would open it)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("headless Chromium is needed for the report tests: apt-get install -y chromium")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chromium'}",
                           "--dump-dom", path.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parser = _Text()
    parser.feed(proc.stdout)
    return re.sub(r"\s+", " ", "".join(parser.parts))


def secrets_in(directory: Path) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for pattern in (PASSWORD_CANARY, BEARER):
                for m in pattern.finditer(data):
                    found.append(f"{path.relative_to(directory)}: {m.group(0)[:40]!r}")
    return found


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def flawed_run(tmp_path_factory, signing_key):
    tmp = tmp_path_factory.mktemp("soft-delete")
    reports = tmp / "reports"
    pem = signing_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    run = run_suites(tmp, "suites/ccpa", flaws=("soft_delete",),
                     args=("--privacy-reports", str(reports), f"--junitxml={reports / 'junit.xml'}"),
                     env={compliance.SIGNING_KEY_ENV: pem})
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    return tmp, reports, run


def test_json_report_names_the_broken_clause_and_where_it_broke(flawed_run):
    _, reports, _ = flawed_run
    report = json.loads((reports / "compliance-report.json").read_text())
    _, _, run = flawed_run
    assert report["summary"]["promises_checked"] == len(run.results)
    not_applicable = sum(1 for o in run.outcomes().values() if o == "not applicable")
    assert not_applicable == 1  # ccpa.delete.time-limited-retention-purged: nothing due in a fresh run
    assert report["summary"]["broken"] == 1
    assert report["summary"]["held"] == len(run.results) - 1 - not_applicable
    assert report["summary"]["verdict"] == "promises broken"
    assert report["run"]["target"]["name"] == "demo" and report["run"]["target"]["flaws"] == ["soft_delete"]
    ccpa = next(r for r in report["regulations"] if r["family"] == "ccpa")
    clause = next(c for c in ccpa["clauses"] if c["clause"] == "1798.105")
    assert clause["outcome"] == "failed" and clause["title"] == "Right to delete"
    assert clause["url"].startswith("https://leginfo.legislature.ca.gov/")
    assert "ccpa.delete.no-residual-data" in clause["checks"]
    check = next(c for c in report["checks"] if c["check_id"] == "ccpa.delete.no-residual-data")
    assert check["outcome"] == "failed"
    assert any(w.startswith("app: table users, column") for w in check["where"]), check["where"]
    assert check["evidence"]["file"] == "evidence/ccpa.delete.no-residual-data.json"
    assert any("users" in f for f in check["evidence"]["findings"])
    # Plain language for an auditor: no Python traceback anywhere in the report.
    text = json.dumps(report)
    assert "Traceback" not in text and not re.search(r"\.py:\d+", text)


def test_html_report_rendered_in_chromium_says_the_same(flawed_run, tmp_path):
    _, reports, run = flawed_run
    html = (reports / "compliance-report.html").read_text()
    # Self-contained: nothing is fetched, so it opens from file:// with no network.
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    text = rendered_text(reports / "compliance-report.html", tmp_path)
    assert "Verdict: promises broken" in text
    assert f"This run checked {len(run.results)} promises against demo" in text
    assert "Cal. Civ. Code §1798.105: Right to delete" in text
    assert "app: table users, column full_name" in text
    assert "ccpa.delete.no-residual-data" in text
    assert text.index("Verdict") < text.index("Cal. Civ. Code §1798.105: Right to delete")


def test_manifest_lists_every_file_with_its_digest_and_is_signed(flawed_run, signing_key):
    _, reports, run = flawed_run
    manifest_path = reports / compliance.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    evidence = sorted(p.relative_to(reports).as_posix() for p in (reports / "evidence").glob("*.json"))
    assert "evidence/ccpa.delete.no-residual-data.json" in evidence and set(evidence) <= set(listed)
    assert {"compliance-report.json", "compliance-report.html", "junit.xml"} <= set(listed)
    assert any(p.startswith("allure-results/") and p.endswith("-result.json") for p in listed)
    for rel, digest in listed.items():
        path = Path(rel) if Path(rel).is_absolute() else reports / rel
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, rel
    # The CI log holds the manifest's own digest.
    digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    assert f"sha256={digest}" in run.stdout
    public = signing_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    import base64

    public_b64 = base64.b64encode(public).decode()
    assert f"public key={public_b64}" in run.stdout
    from privacy_checks.report import verify

    key = verify.load_public_key(public_b64)
    assert verify.check_signature(manifest_path, key)[0] == "valid"
    tampered = reports.parent / "tampered" / manifest_path.name
    tampered.parent.mkdir()
    tampered.write_bytes(manifest_path.read_bytes().replace(b'"sha256": "', b'"sha256": "0', 1))
    (tampered.parent / compliance.SIGNATURE).write_bytes((reports / compliance.SIGNATURE).read_bytes())
    assert verify.check_signature(tampered, key)[0] == "invalid"


def test_allure_results_carry_labels_steps_and_run_metadata(flawed_run):
    _, reports, run = flawed_run
    allure = reports / "allure-results"
    results = [json.loads(p.read_text()) for p in allure.glob("*-result.json")]
    assert len(results) == len(run.results)
    # Titled with the promise in words (test names state it).
    broken = next(r for r in results if r["name"] == "Deleted subject leaves no trace in any store")
    assert broken["status"] == "failed"
    labels = {(label["name"], label["value"]) for label in broken["labels"]}
    assert {("epic", "CCPA"), ("feature", "Right to delete"), ("story", "Cal. Civ. Code §1798.105(c)(1)"),
            ("severity", "critical"), ("tag", "ccpa.delete.no-residual-data")} <= labels
    steps = [s["name"] for s in broken["steps"][0]["steps"]]
    assert "positive control: stores" in steps and "sweep after deletion" in steps
    attachments = {a["name"]: a for a in broken["steps"][0]["attachments"]}
    table = (allure / attachments["findings (store / table / column / form)"]["source"]).read_text()
    assert table.startswith("kind,store,location,column") and "residual data,app,users," in table
    # The check that records its own evidence shows it as steps of its test, too.
    collect = next(r for r in results if r["name"].startswith("Subject created through the api"))
    assert collect["steps"] and collect["steps"][0]["name"].startswith("evidence")
    env = (allure / "environment.properties").read_text()
    assert "target.name=demo" in env and "target.base_url=https\\://127.0.0.1" not in env
    assert re.search(r"^target\.base_url=https://127\.0\.0\.1:\d+$", env, re.M)
    assert re.search(r"^framework\.version=privacy-checks \d", env, re.M)
    assert "seed=privacy-checks" in env and "run.started_at=" in env
    assert json.loads((allure / "executor.json").read_text())["name"] == "privacy-checks"
    # Categories match the outcome each status message starts with, not the message's wording.
    categories = {c["name"]: c for c in json.loads((allure / "categories.json").read_text())}
    assert categories["promise broken"]["matchedStatuses"] == ["failed"]
    assert set(categories["could not be checked"]["matchedStatuses"]) == {"broken", "failed"}
    regex = re.compile(categories["could not be checked"]["messageRegex"])
    assert regex.fullmatch("[error] barrier failed: the control subject never reached app\nmore")
    assert not regex.fullmatch("[failed] positive control failed? no: data still held")
    assert re.fullmatch(categories["promise broken"]["messageRegex"], broken["statusDetails"]["message"])


def test_no_secret_of_the_run_appears_under_reports(flawed_run):
    _, reports, _ = flawed_run
    assert secrets_in(reports) == []


def test_privacy_checks_report_rebuilds_the_report_and_says_how_to_get_allure_html(flawed_run, monkeypatch, capsys):
    tmp, reports, _ = flawed_run
    (reports / "compliance-report.html").unlink()
    monkeypatch.setenv("PATH", str(tmp / "no-node-here"))
    monkeypatch.delenv(compliance.SIGNING_KEY_ENV, raising=False)
    code = build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(reports)])
    out = capsys.readouterr().out
    assert code == 0
    assert (reports / "compliance-report.html").is_file()
    assert "manifest:" in out and "sha256=" in out
    assert "Allure HTML not built: Node.js is needed" in out
    assert "npx allure awesome" in out and "--single-file" in out
    assert build.main(["--results", str(tmp / "missing.json"), "--out", str(reports)]) == 2



NPX_RECORDER = """#!/bin/sh
# stands in for npx only: records how the Allure 3 CLI would be called, and what the results
# directory held then (an Allure 2 history carried over), then makes the report directory
printf '%s\\n' "$@" > "$NPX_ARGS"
ls "$4" > "$NPX_RESULTS"
mkdir -p "$7" && echo "<html></html>" > "$7/index.html"
"""


def test_the_allure_build_keeps_its_history_where_asked_and_carries_an_allure2_history(flawed_run, monkeypatch,
                                                                                          tmp_path):
    """Trends need the earlier builds' history: Allure 3 reads and extends one JSON Lines file
    (default DIR/allure-history.jsonl, or --allure-history); an Allure 2 report's history/ is
    copied into the results before the build."""
    tmp, reports, _ = flawed_run
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npx").write_text(NPX_RECORDER)
    (bin_dir / "npx").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("NPX_ARGS", str(tmp_path / "args"))
    monkeypatch.setenv("NPX_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(compliance.SIGNING_KEY_ENV, raising=False)
    out = tmp_path / "out"
    shutil.copytree(reports, out)
    (out / "allure-report" / "history").mkdir(parents=True)
    (out / "allure-report" / "history" / "history-trend.json").write_text("[]")

    assert build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(out)]) == 0
    args = (tmp_path / "args").read_text().split("\n")
    assert args[:3] == ["--yes", "allure@3", "awesome"]
    assert args[args.index("--history-path") + 1] == str(out / "allure-history.jsonl")
    assert "history" in (tmp_path / "results").read_text().split()  # carried before the build ran
    assert (out / "allure-results" / "history" / "history-trend.json").is_file()

    kept = tmp_path / "ci-cache" / "history.jsonl"
    assert build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(out),
                       "--allure-history", str(kept)]) == 0
    args = (tmp_path / "args").read_text().split("\n")
    assert args[args.index("--history-path") + 1] == str(kept)


SYNTHETIC = '''
import pytest
# Each uses privacy_run (a framework fixture that starts nothing until asked): only tests using
# the framework's fixtures are privacy checks.
from privacy_checks.outcomes import CheckError, ControlFailed, PromiseBroken, examined


@pytest.mark.ccpa("1798.105")
@pytest.mark.check("syn.delete.broken")
def test_broken(privacy_run):
    raise PromiseBroken("the data is still held in 1 place(s):\\n  app: table users, column email")


@pytest.mark.gdpr("Art. 17")
@pytest.mark.check("syn.delete.unreachable")
def test_unreachable(privacy_run):
    raise CheckError("the target is unreachable: https://127.0.0.1:9")


@pytest.mark.gdpr("Art. 17(1)")
@pytest.mark.check("syn.delete.control")
def test_control(privacy_run):
    raise ControlFailed("positive control failed: the sweep never saw the subject in app")


@pytest.mark.ccpa("1798.100")
@pytest.mark.check("syn.collect.ok")
def test_ok(privacy_run):
    examined("stores swept", 1)  # a pass says what it examined, or it is not verified
'''


def run_synthetic(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """A real pytest run of a small check file, for outcomes the demo has no switch for."""
    (tmp_path / "test_synthetic.py").write_text(textwrap.dedent(SYNTHETIC))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_synthetic.py",
                           *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_junit_reports_an_error_outcome_as_error_and_a_broken_promise_as_failure(tmp_path):
    proc = run_synthetic(tmp_path, "--junitxml=reports/junit.xml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    import xml.etree.ElementTree as ET

    suite = ET.parse(tmp_path / "reports" / "junit.xml").getroot().find("testsuite")
    kinds = {case.get("name"): [child.tag for child in case if child.tag != "properties"]
             for case in suite.iter("testcase")}
    assert kinds == {"test_broken": ["failure"], "test_unreachable": ["error"], "test_control": ["error"],
                     "test_ok": []}
    assert (suite.get("failures"), suite.get("errors"), suite.get("tests")) == ("1", "2", "4")
    # Idempotent: the rewrite runs at session end and a second pass changes nothing.
    assert rewrite_errors(tmp_path / "reports" / "junit.xml") == 0
    report = json.loads((tmp_path / "reports" / "compliance-report.json").read_text())
    assert report["summary"]["could_not_be_checked"] == 2 and report["summary"]["broken"] == 1
    gdpr = next(r for r in report["regulations"] if r["family"] == "gdpr")
    assert gdpr["clauses"][0]["outcome"] == "error"
    allure = [json.loads(p.read_text()) for p in (tmp_path / "reports" / "allure-results").glob("*-result.json")]
    assert {r["name"]: r["status"] for r in allure}["Control"] == "broken"  # titled from the test name


def test_runs_without_privacy_checks_write_no_reports(tmp_path):
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert sum([1, 2]) == 3\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_plain.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert not (tmp_path / "reports").exists()


def test_no_privacy_allure_and_explicit_alluredir(tmp_path):
    proc = run_synthetic(tmp_path, "--no-privacy-allure", "-k", "test_ok")
    assert proc.returncode == 0, proc.stdout
    assert not (tmp_path / "reports" / "allure-results").exists()
    assert (tmp_path / "reports" / "compliance-report.html").is_file()
    proc = run_synthetic(tmp_path, "--alluredir", "elsewhere", "-k", "test_ok")
    assert proc.returncode == 0, proc.stdout
    assert not (tmp_path / "reports" / "allure-results").exists()
    assert list((tmp_path / "elsewhere").glob("*-result.json"))
    assert (tmp_path / "elsewhere" / "categories.json").is_file()


def test_under_xdist_the_controller_writes_the_reports(tmp_path):
    pytest.importorskip("xdist")
    reports = tmp_path / "reports"
    run = run_suites(tmp_path, DELETION, flaws=("soft_delete",), args=("-n", "2", "--privacy-reports", str(reports)))
    assert run.returncode == 1, run.stdout[-3000:]
    report = json.loads((reports / "compliance-report.json").read_text())
    outcomes = {cid: (c.get("outcome"), str(c.get("message"))[:300]) for cid, c in run.results.items()}
    assert report["summary"]["broken"] == 1, (report["summary"], outcomes)
    assert report["summary"]["promises_checked"] == len(run.results) >= 5
    assert len(list((reports / "evidence").glob("*.json"))) == len(run.results)
    assert (reports / "allure-results" / "environment.properties").is_file()
    assert len(list((reports / "allure-results").glob("*-result.json"))) == len(run.results)
    assert "manifest:" in run.stdout
