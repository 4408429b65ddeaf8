"""`privacy-checks report --pdf`: the compliance report printed to PDF by headless Chromium
(Debian's /usr/bin/chromium, or $PRIVACY_CHECKS_CHROMIUM), for working papers.

The PDF is compliance-report.html as printed (its `@media print` CSS: a cover page, each
regulation on a new page), with one addition on the cover: the SHA-256 of the manifest of the
files the report was built from. That manifest cannot be manifest.json itself, which lists the
PDF (a digest cannot be inside the file it digests), so it is kept as `cover-manifest.json`:
every file of the run and its reports except the PDF. manifest.json then lists both it and the
PDF, so the chain is PDF cover → cover-manifest.json (its SHA-256) → manifest.json (signed).

Chromium prints from file:// with no network: the report fetches nothing (its CSP says so), and
every host name resolves to nothing. It runs with a timeout and is killed with its children
when it overruns.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ..observe.browser import CHROMIUM, CHROMIUM_ENV, CHROMIUM_FLAGS, DEBIAN_PACKAGE
from .compliance import COVER_MANIFEST

REPORT_PDF = "compliance-report.pdf"
DEFAULT_TIMEOUT_S = 120.0


class PdfError(RuntimeError):
    """The PDF could not be made; the message is one line naming the binary or the file."""


def chromium_for_pdf() -> str:
    """The Chromium binary to print with, or PdfError saying how to get one."""
    path = os.environ.get(CHROMIUM_ENV) or CHROMIUM
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    if not found:
        raise PdfError(f"--pdf needs Chromium, not found at {path}: install Debian's '{DEBIAN_PACKAGE}' package "
                       f"(apt-get install {DEBIAN_PACKAGE}) or set {CHROMIUM_ENV} to its path")
    return found


def print_to_pdf(html_path: Path, pdf_path: Path, *, chromium: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
    """Print one HTML file to PDF. Written atomically: a failed print leaves no partial PDF."""
    binary = chromium or chromium_for_pdf()
    tmp = pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.tmp.pdf")
    with tempfile.TemporaryDirectory(prefix="privacy-checks-pdf-") as profile:
        command = [binary, "--headless", *CHROMIUM_FLAGS, "--disable-gpu", "--disable-extensions",
                   # nothing to fetch: no host name resolves, and no proxy or DNS is tried
                   "--host-resolver-rules=MAP * ~NOTFOUND", "--no-proxy-server",
                   f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                   html_path.resolve().as_uri()]
        # its own session: on a timeout the renderer and GPU children go with it
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            tmp.unlink(missing_ok=True)
            raise PdfError(f"{binary} did not print {html_path} within {timeout:g} s (killed)") from None
    if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        tmp.unlink(missing_ok=True)
        last = next((line for line in reversed(err.decode(errors="replace").splitlines()) if line.strip()), "")
        raise PdfError(f"{binary} exited with {proc.returncode} printing {html_path}, no PDF written"
                       + (f": {last.strip()[:300]}" if last else ""))
    os.replace(tmp, pdf_path)


def render_report_pdf(report: dict, out_dir: Path, cover_manifest_sha256: str, *, chromium: str | None = None,
                      timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """compliance-report.html with the cover naming cover-manifest.json's digest, printed to
    compliance-report.pdf in out_dir (links to evidence stay relative to it)."""
    from .compliance import render_html

    pdf_path = out_dir / REPORT_PDF
    # printed from a temporary copy beside the report, so relative links resolve the same
    source = out_dir / f".compliance-report.{os.getpid()}.print.html"
    try:
        source.write_text(render_html(report, cover_manifest_sha256=cover_manifest_sha256), encoding="utf-8")
        print_to_pdf(source, pdf_path, chromium=chromium, timeout=timeout)
    finally:
        source.unlink(missing_ok=True)
    return pdf_path


def remove_stale_pdf(out_dir: Path) -> list[str]:
    """Reports rebuilt without --pdf: a PDF (and its cover manifest) an earlier build left
    showed an earlier report and must not pass for this one; removed before the manifest is
    written. Returns what to tell the user."""
    stale = [p for p in (out_dir / REPORT_PDF, out_dir / COVER_MANIFEST) if p.exists()]
    for path in stale:
        path.unlink()
    return ([f"removed the previous {', '.join(p.name for p in stale)}: it showed an earlier report "
             "(privacy-checks report --pdf prints this one)"] if stale else [])


def add_pdf(report: dict, out_dir: Path, manifest: Path, manifest_sha256: str, *,
            timeout: float = DEFAULT_TIMEOUT_S) -> tuple[list[Path], list[str]]:
    """After the manifest of the run's files is written: keep it as cover-manifest.json and
    print the PDF naming its digest. Returns the files the final manifest must add, and what to
    tell the user (a PDF that could not be printed leaves neither file behind)."""
    pdf_path, cover = out_dir / REPORT_PDF, out_dir / COVER_MANIFEST
    shutil.copyfile(manifest, cover)
    try:
        render_report_pdf(report, out_dir, manifest_sha256, timeout=timeout)
    except (PdfError, OSError) as exc:
        for path in (pdf_path, cover):
            path.unlink(missing_ok=True)
        return [], [f"PDF not written: {exc}"]
    return [cover, pdf_path], []
