"""`privacy-checks report --pdf`: the compliance report printed by Debian's headless Chromium,
read back with poppler-utils (pdftoppm, pdftotext; .ci/run installs them): a cover page with the verdict and the digest of
the manifest it was built from, each regulation on its own page, and the PDF listed (and
signed) in manifest.json."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import run_suites
from privacy_checks.observe.browser import CHROMIUM_ENV
from privacy_checks.report import build, compliance
from privacy_checks.report.pdf import COVER_MANIFEST, REPORT_PDF
from privacy_checks.report.verify import verify_reports

DELETION = "suites/ccpa/test_right_to_delete.py"
BROKEN = "ccpa.delete.no-residual-data"

def page_text(pdf, page: int) -> str:
    return subprocess.run(["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(pdf), "-"],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def run_reports(tmp_path_factory):
    """A short real run with a broken promise: two checks of the deletion suite, soft delete on."""
    tmp = tmp_path_factory.mktemp("pdf-run")
    reports = tmp / "reports"
    run = run_suites(tmp, DELETION, flaws=("soft_delete",),
                     args=("--privacy-check", f"{BROKEN}", "--privacy-check", "ccpa.delete.account-gone",
                           "--privacy-reports", str(reports)))
    assert run.outcomes().get(BROKEN) == "failed", run.stdout[-3000:] + run.stderr[-3000:]
    return tmp, reports


def test_report_pdf_has_a_cover_page_regulation_pages_and_is_signed_in_the_manifest(run_reports, tmp_path,
                                                                                      monkeypatch, capsys):
    tmp, reports = run_reports
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                            serialization.PublicFormat.Raw)).decode()
    monkeypatch.setenv(compliance.SIGNING_KEY_ENV, pem)
    code = build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(reports),
                       "--no-allure-html", "--pdf"])
    out = capsys.readouterr()
    assert code == 0, out.err
    pdf = reports / REPORT_PDF
    assert f"PDF: {pdf}" in out.out and pdf.read_bytes().startswith(b"%PDF-")

    pages = tmp_path / "pages"
    pages.mkdir()
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(pdf), str(pages / "page")], check=True, timeout=120)
    pngs = sorted(pages.glob("page-*.png"))
    assert len(pngs) > 1 and all(p.read_bytes().startswith(b"\x89PNG") for p in pngs)

    report = json.loads((reports / compliance.REPORT_JSON).read_text())
    cover = flat(page_text(pdf, 1))
    assert f"Verdict: {report['summary']['verdict']}" in cover and report["summary"]["verdict"] == "promises broken"
    assert report["run"]["target"]["name"] in cover and report["run"]["target"]["base_url"] in cover
    assert "Judged as of" in cover and report["run"]["finished_at"] in cover
    # the digest the cover names is the manifest kept beside it, which manifest.json lists
    cover_digest = hashlib.sha256((reports / COVER_MANIFEST).read_bytes()).hexdigest()
    assert cover_digest in cover.replace(" ", "") and f"{COVER_MANIFEST} sha256" in cover
    # the cover is a page of its own: the report proper starts on page 2
    assert "Where promises broke" not in cover and "Where promises broke" in flat(page_text(pdf, 2))

    # each regulation starts a page
    firsts = [next((line.strip() for line in page_text(pdf, n).splitlines() if line.strip()), "")
              for n in range(1, len(pngs) + 1)]
    names = [r["name"] for r in report["regulations"]]
    assert names and all(any(first.startswith(name) for first in firsts) for name in names), (names, firsts)

    manifest = json.loads((reports / compliance.MANIFEST).read_text())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert listed[REPORT_PDF] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert listed[COVER_MANIFEST] == cover_digest
    cover_manifest = json.loads((reports / COVER_MANIFEST).read_text())
    assert REPORT_PDF not in {f["path"] for f in cover_manifest["files"]}
    assert {f["path"]: f["sha256"] for f in cover_manifest["files"]}[compliance.REPORT_HTML] == listed[compliance.REPORT_HTML]
    # signed after the PDF was added: the whole directory verifies
    result = verify_reports(reports, public)
    assert result.signature == "valid" and not result.differences, [d.line() for d in result.differences]

    # a rebuild without --pdf does not leave the old PDF to pass for the new report
    monkeypatch.delenv(compliance.SIGNING_KEY_ENV)
    assert build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(reports), "--no-allure-html"]) == 0
    assert not pdf.exists() and not (reports / COVER_MANIFEST).exists()
    assert f"removed the previous {REPORT_PDF}, {COVER_MANIFEST}" in capsys.readouterr().err
    assert REPORT_PDF not in {f["path"] for f in json.loads((reports / compliance.MANIFEST).read_text())["files"]}
    assert not verify_reports(reports).differences


def test_report_pdf_without_chromium_is_one_line_naming_the_binary_and_rewrites_nothing(run_reports, monkeypatch,
                                                                                          capsys):
    tmp, reports = run_reports
    before = (reports / compliance.MANIFEST).read_bytes()
    missing = str(tmp / "no-such-chromium")
    monkeypatch.setenv(CHROMIUM_ENV, missing)
    code = build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(reports),
                       "--no-allure-html", "--pdf"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and missing in err and "apt-get install chromium" in err, err
    assert "Traceback" not in err
    assert (reports / compliance.MANIFEST).read_bytes() == before
    assert not (reports / REPORT_PDF).exists()


def test_report_pdf_that_chromium_fails_to_print_says_so_and_lists_no_pdf(run_reports, tmp_path, monkeypatch, capsys):
    """A Chromium that exits non-zero (here a real executable that is not Chromium): the report
    is rebuilt, no PDF is listed, the exit status says the PDF failed."""
    tmp, reports = run_reports
    monkeypatch.setenv(CHROMIUM_ENV, shutil.which("false"))
    code = build.main(["--results", str(tmp / "privacy-results.json"), "--out", str(reports),
                       "--no-allure-html", "--pdf"])
    err = capsys.readouterr().err
    assert code == 1
    assert "PDF not written:" in err and "exited with 1" in err and shutil.which("false") in err, err
    listed = {f["path"] for f in json.loads((reports / compliance.MANIFEST).read_text())["files"]}
    assert REPORT_PDF not in listed and COVER_MANIFEST not in listed
    assert not (reports / REPORT_PDF).exists() and not (reports / COVER_MANIFEST).exists()
    assert not verify_reports(reports).differences
