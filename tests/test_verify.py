"""`privacy-checks verify`: someone other than the operator checks that a reports directory is the
one a run wrote (issue 20, point 6). Real runs of the deletion suite (one check, to stay short)
write the reports; the tests then change them the way a careless or dishonest hand would.

An auditor saw `privacy-checks report` leave a `manifest.sig` that no longer verified, and had
no tool to check a manifest other than by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import ROOT, run_suites
from privacy_checks.report.compliance import MANIFEST, SIGNATURE, SIGNING_KEY_ENV

DELETE = "suites/ccpa/test_right_to_delete.py"
ONE_CHECK = ("--privacy-check", "ccpa.delete.account-gone")
EVIDENCE = "evidence/ccpa.delete.account-gone.json"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _run(tmp: Path, *, key: Ed25519PrivateKey | None, extra: tuple[str, ...] = ()):
    """One check into tmp/reports, laid out as a user's run is: results and JUnit inside it."""
    reports = tmp / "reports"
    run = run_suites(tmp, DELETE, args=(*ONE_CHECK, f"--privacy-reports={reports}",
                                        f"--privacy-results={reports / 'privacy-results.json'}",
                                        f"--junitxml={reports / 'junit.xml'}", *extra),
                     env={SIGNING_KEY_ENV: _pem(key) if key else ""})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    checks = json.loads((reports / "privacy-results.json").read_text())["checks"]
    assert [(c["check_id"], c["outcome"]) for c in checks] == [("ccpa.delete.account-gone", "passed")]
    return reports, run


def verify(reports: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privacy_checks.cli", "verify", str(reports), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})


def report_cmd(reports: Path, *, key: Ed25519PrivateKey | None) -> subprocess.CompletedProcess:
    env = {**os.environ, SIGNING_KEY_ENV: _pem(key) if key else ""}
    return subprocess.run([sys.executable, "-m", "privacy_checks.cli", "report", "--results",
                           str(reports / "privacy-results.json"), "--out", str(reports), "--no-allure-html"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def signed(tmp_path_factory, key):
    """A signed run's reports; tests copy them before changing anything (as an auditor's copy)."""
    return _run(tmp_path_factory.mktemp("signed"), key=key)


@pytest.fixture
def copy(signed, tmp_path) -> Path:
    reports, _ = signed
    return Path(shutil.copytree(reports, tmp_path / "received"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fresh_signed_report_verifies_with_the_key_the_run_printed(signed, key, tmp_path):
    reports, run = signed
    printed = re.search(r"public key=(\S+)", run.stdout).group(1)
    assert printed == _public_b64(key)
    digest = re.search(r"manifest: \S+ sha256=([0-9a-f]{64})", run.stdout).group(1)
    proc = verify(reports, "--public-key", printed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # what the auditor compares with the CI log, and which run this is
    assert f"sha256={digest}" in proc.stdout and digest == _sha(reports / MANIFEST)
    assert "--privacy-check ccpa.delete.account-gone" in proc.stdout
    listed = len(json.loads((reports / MANIFEST).read_text())["files"])
    assert f"OK: all {listed} listed files match their digests, nothing unlisted, signature valid" in proc.stdout
    # the same key as a PEM file
    pem = tmp_path / "signer.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    assert verify(reports, "--public-key", str(pem)).returncode == 0


def test_without_a_key_the_digests_are_checked_and_the_signature_is_said_unchecked(signed):
    reports, _ = signed
    proc = verify(reports)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{reports / SIGNATURE} is there but was NOT checked: no --public-key given" in proc.stdout


def test_one_byte_changed_in_an_evidence_file_fails_naming_it(copy, key):
    path = copy / EVIDENCE
    before = _sha(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    proc = verify(copy, "--public-key", _public_b64(key))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"CHANGED     {EVIDENCE}: manifest sha256 {before}, file now {_sha(path)}" in proc.stdout
    # the manifest itself was not touched: its signature still holds, the file is what differs
    assert "valid Ed25519 signature" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("FAILED: 1 changed (of ")


def test_a_manifest_changed_after_signing_fails_on_its_signature(copy, key):
    manifest = copy / MANIFEST
    data = json.loads(manifest.read_text())
    # Bless the changed evidence in the manifest too: the digests then agree, the signature does not.
    path = copy / EVIDENCE
    path.write_bytes(path.read_bytes() + b"\n")
    entry = next(f for f in data["files"] if f["path"] == EVIDENCE)
    entry["sha256"], entry["bytes"] = _sha(path), path.stat().st_size
    manifest.write_text(json.dumps(data, indent=2))
    proc = verify(copy, "--public-key", _public_b64(key))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{copy / SIGNATURE}: does NOT verify with the public key given" in proc.stdout
    assert "CHANGED" not in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("FAILED: signature not valid")
    # another key does not verify the untouched signature either
    other = Ed25519PrivateKey.generate()
    assert verify(copy, "--public-key", _public_b64(other)).returncode == 1


def test_a_listed_file_missing_and_an_unlisted_file_present_fail_naming_them(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    gone = next(f for f in manifest["files"] if f["path"].startswith("allure-results/"))
    (copy / gone["path"]).unlink()
    (copy / "evidence" / "ccpa.delete.no-residual-data.json").write_text('{"outcome": "passed"}')
    proc = verify(copy)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"MISSING     {gone['path']}: listed in the manifest (sha256 {gone['sha256']})" in proc.stdout
    assert "NOT LISTED  evidence/ccpa.delete.no-residual-data.json: in the directory but not in the manifest" \
        in proc.stdout
    assert "FAILED: 1 missing, 1 not listed" in proc.stdout


def test_the_repositorys_empty_gitkeep_is_not_a_planted_file_but_a_non_empty_one_is(copy):
    """A checkout keeps reports/ with an empty .gitkeep: the README's CI job verifies reports/
    there, so that placeholder must not fail it; anything written into it is reported."""
    (copy / ".gitkeep").write_text("")
    proc = verify(copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (copy / ".gitkeep").write_text("not empty")
    proc = verify(copy)
    assert proc.returncode == 1 and "NOT LISTED  .gitkeep" in proc.stdout, proc.stdout


def test_usage_problems_exit_2_naming_the_file(copy, tmp_path):
    private = tmp_path / "signer.pem"
    private.write_text(_pem(Ed25519PrivateKey.generate()))
    proc = verify(copy, "--public-key", str(private))
    assert proc.returncode == 2 and f"{private}: not a PEM public key (that is a private key" in proc.stderr
    proc = verify(copy, "--public-key", "not-a-key")
    assert proc.returncode == 2 and "--public-key: neither a readable file nor an Ed25519 public key" in proc.stderr
    (copy / MANIFEST).unlink()
    proc = verify(copy)
    assert proc.returncode == 2 and f"{copy / MANIFEST}: no manifest here" in proc.stderr
    (copy / MANIFEST).write_text("{not json")
    proc = verify(copy)
    assert proc.returncode == 2 and f"{copy / MANIFEST}: cannot be read as JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_privacy_checks_report_re_signs_the_rebuilt_manifest_or_removes_the_stale_signature(copy, key):
    old_manifest = (copy / MANIFEST).read_bytes()
    # key set: a new manifest and a signature over it; the run's junit.xml stays listed
    proc = report_cmd(copy, key=key)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (copy / MANIFEST).read_bytes() != old_manifest
    assert f"public key={_public_b64(key)}" in proc.stdout
    assert "junit.xml" in {f["path"] for f in json.loads((copy / MANIFEST).read_text())["files"]}
    checked = verify(copy, "--public-key", _public_b64(key))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # key unset: the signature of the replaced manifest is removed, and the user is told
    proc = report_cmd(copy, key=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (copy / SIGNATURE).exists()
    assert f"removed the previous {SIGNATURE}, which signed the manifest this one replaced" in proc.stderr
    checked = verify(copy)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "not signed: there is no manifest.sig" in checked.stdout
    checked = verify(copy, "--public-key", _public_b64(key))
    assert checked.returncode == 1 and f"{copy / SIGNATURE}: missing: the manifest is not signed" in checked.stdout


def test_privacy_checks_report_warns_when_the_run_s_files_changed_before_the_rebuild(copy):
    junit = copy / "junit.xml"
    junit.write_text(junit.read_text() + "<!-- edited -->")
    proc = report_cmd(copy, key=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"junit.xml changed since the run wrote {copy / MANIFEST}" in proc.stderr
    # the rebuilt manifest does not vouch for the edited file: verify names it
    checked = verify(copy)
    assert checked.returncode == 1 and "NOT LISTED  junit.xml" in checked.stdout


def test_an_unsigned_run_over_a_signed_one_removes_the_signature_and_verifies(signed, tmp_path):
    shutil.copytree(signed[0], tmp_path / "reports")
    reports, run = _run(tmp_path, key=None)
    assert not (reports / SIGNATURE).exists()
    assert f"removed the previous {SIGNATURE}, which signed the manifest this one replaced" in run.stdout
    proc = verify(reports)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_run_stopped_by_a_bad_waiver_file_leaves_the_previous_reports_untouched_and_verifiable(copy, key):
    """The previous run's reports stay as they were, like a run that ran no check: they keep
    their own run's time and command line and the digest that run printed, so they cannot pass
    for the stopped run, which printed no digest (README, For auditors)."""
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    unreadable = copy.parent / "bad-waivers.yaml"
    unreadable.write_text("waivers:\n  - check: ccpa.delete.account-gone\n    nonsense: 1\n")
    unknown = copy.parent / "unknown-check-waivers.yaml"
    unknown.write_text("waivers:\n  - check: ccpa.delete.no-such-check\n    justification: x\n"
                       "    approver: a\n    expires: 2099-01-01\n")
    for waivers in (unreadable, unknown):
        run = run_suites(copy.parent, DELETE, args=(*ONE_CHECK, f"--privacy-reports={copy}",
                                                    f"--privacy-results={copy / 'privacy-results.json'}",
                                                    "--waivers", str(waivers)))
        assert run.returncode == 4, run.stdout[-2000:] + run.stderr[-2000:]
        assert waivers.name in run.stderr and "sha256=" not in run.stdout
        assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
        proc = verify(copy, "--public-key", _public_b64(key))
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_privacy_checks_report_names_the_run_it_rebuilds(copy):
    proc = report_cmd(copy, key=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = json.loads((copy / "privacy-results.json").read_text())
    started = json.loads((copy / "compliance-report.json").read_text())["run"]["started_at"]
    assert started and f"(run started {started}, target demo" in proc.stdout, proc.stdout
    assert "--privacy-check ccpa.delete.account-gone" in proc.stdout and run["checks"]
