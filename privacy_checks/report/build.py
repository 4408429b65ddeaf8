"""`privacy-checks report`: rebuild the compliance report from a run's results, and the Allure
HTML report as one file with the Allure 3 CLI (npm) when Node.js is there.

Allure's trends need the history of earlier builds: Allure 3 keeps it in one JSON Lines file
(`--history-path`), `<out>/allure-history.jsonl` unless `--allure-history` says otherwise, which
each build reads and extends. A CI job keeps that file between pipeline runs (cache or artifact)
and the trend graphs follow the checks across releases. A `history/` directory an Allure 2
report left in `<out>/allure-report/` is copied into the results too, for Allure 2 users.

Wiring in cli.py:
    p = sub.add_parser("report", help="(re)build the compliance report and the Allure HTML report")
    build.add_arguments(p)
    p.set_defaults(func=build.main_report)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ALLURE_HINT = ("Node.js is needed for the Allure HTML report: install Node.js 18 or later "
               "(Debian: apt-get install nodejs npm; or https://nodejs.org), then run\n"
               "  npx allure awesome {results} --single-file -o {out}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="reports/privacy-results.json", metavar="FILE",
                        help="the run's per-check results (default: reports/privacy-results.json)")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="where the reports go; evidence is read from DIR/evidence (default: reports)")
    parser.add_argument("--allure-results", default=None, metavar="DIR",
                        help="Allure results to build the HTML report from (default: DIR/allure-results)")
    parser.add_argument("--no-allure-html", action="store_true",
                        help="only rebuild the compliance report")
    parser.add_argument("--allure-history", default=None, metavar="FILE",
                        help="Allure 3 history file the build reads and extends (default: DIR/allure-history.jsonl)")
    parser.add_argument("--pdf", action="store_true",
                        help="also print the compliance report to DIR/compliance-report.pdf with headless Chromium "
                             "(/usr/bin/chromium or $PRIVACY_CHECKS_CHROMIUM), listed in the manifest")
    parser.add_argument("--pdf-timeout", type=float, default=None, metavar="SECONDS",
                        help="how long Chromium may take to print (default: 120)")


def allure_command(results: Path, out: Path, history: Path | None = None) -> list[str] | None:
    npx = shutil.which("npx")
    # --yes: without it a non-interactive npx refuses to fetch the package it was asked to run;
    # the major version is pinned because `awesome` is an Allure 3 command.
    if not npx:
        return None
    command = [npx, "--yes", "allure@3", "awesome", str(results), "--single-file", "-o", str(out)]
    return command + (["--history-path", str(history)] if history is not None else [])


def carry_allure2_history(report_dir: Path, results: Path) -> bool:
    """Copy an Allure 2 report's history/ into the results, as Allure 2 expects for trends."""
    previous = report_dir / "history"
    if not previous.is_dir():
        return False
    shutil.copytree(previous, results / "history", dirs_exist_ok=True)
    return True


def _previous_manifest(out: Path) -> tuple[list[Path], list[str]]:
    """What the run's manifest says before it is replaced: the files it listed that still match
    (kept listed, so a rebuild does not drop the run's junit.xml), and a warning for each that
    changed or went missing since, which the rebuilt manifest cannot vouch for as the run's."""
    from .compliance import COVER_MANIFEST, OSCAL_CATALOG, OSCAL_JSON, REPORT_HTML, REPORT_JSON
    from .pdf import REPORT_PDF
    from .verify import VerifyUsageError, compare_files, load_manifest

    try:
        manifest, data = load_manifest(out)
    except VerifyUsageError:
        return [], []  # no earlier manifest (or not one): nothing to keep or compare with
    rewritten = {REPORT_JSON, REPORT_HTML, OSCAL_JSON, OSCAL_CATALOG, REPORT_PDF, COVER_MANIFEST}
    differ = {d.path: d for d in compare_files(manifest.parent, data) if d.path not in rewritten}
    kept = [manifest.parent / f["path"] for f in data["files"] if f["path"] not in differ]
    warnings = [f"{d.path} changed since the run wrote {manifest} (sha256 {d.expected} there, {d.actual} now): "
                "the rebuilt manifest does not vouch for the run's version" if d.kind == "changed" else
                f"{d.path}, listed in the run's {manifest}, is missing" for d in differ.values()]
    return kept, warnings


def main_report(args: argparse.Namespace) -> int:
    """Exit status: 0 built, 1 the Allure step or the PDF failed, 2 nothing to build from (or no
    Chromium for --pdf)."""
    from .compliance import write_reports

    results = Path(args.results)
    out = Path(args.out)
    if not results.is_file():
        print(f"privacy-checks report: {results}: no results file; run the suites first "
              "(pytest suites/ccpa writes reports/privacy-results.json)", file=sys.stderr)
        return 2
    pdf = bool(getattr(args, "pdf", False))
    if pdf:
        from .pdf import PdfError, chromium_for_pdf

        try:
            chromium_for_pdf()  # before anything is rewritten
        except PdfError as exc:
            print(f"privacy-checks report: {exc}", file=sys.stderr)
            return 2
    allure_dir = Path(args.allure_results) if getattr(args, "allure_results", None) else out / "allure-results"
    extra = sorted(p for p in allure_dir.glob("*") if p.is_file()) if allure_dir.is_dir() else []
    kept, warnings = _previous_manifest(out)
    try:
        written = write_reports(results, out, extra_files=extra + kept, pdf=pdf,
                                pdf_timeout=getattr(args, "pdf_timeout", None))
    except (OSError, ValueError) as exc:
        print(f"privacy-checks report: {results}: cannot build the report ({exc})", file=sys.stderr)
        return 2
    from .verify import describe_run

    # A rebuild long after the run must not read as a new run's report: name the run it is.
    print(f"compliance report: {written.html_path} ({describe_run(written.report.get('run') or {})})")
    if written.oscal_path:
        print(f"OSCAL assessment results: {written.oscal_path}")
    if written.pdf_path:
        print(f"PDF: {written.pdf_path}")
    print(f"manifest: {written.manifest_path} sha256={written.manifest_sha256}")
    if written.signature_path:
        print(f"manifest signature (Ed25519): {written.signature_path} public key={written.public_key}")
    for problem in warnings + written.problems:
        print(f"WARNING: {problem}", file=sys.stderr)
    if pdf and written.pdf_path is None:
        return 1  # asked for a PDF and none was made (the warning above says why)
    if getattr(args, "no_allure_html", False):
        return 0
    if not allure_dir.is_dir() or not any(allure_dir.glob("*-result.json")):
        print(f"Allure HTML not built: no Allure results in {allure_dir}")
        return 0
    report_dir = out / "allure-report"
    history = Path(args.allure_history) if getattr(args, "allure_history", None) else out / "allure-history.jsonl"
    carry_allure2_history(report_dir, allure_dir)
    command = allure_command(allure_dir, report_dir, history)
    if command is None:
        print("Allure HTML not built: " + ALLURE_HINT.format(results=allure_dir, out=report_dir))
        return 0
    proc = subprocess.run(command, check=False)
    if proc.returncode != 0:
        print(f"Allure HTML not built: `npx {' '.join(command[1:])}` exited with {proc.returncode} "
              "(npx fetches the Allure 3 CLI from the npm registry on first use)", file=sys.stderr)
        return 1
    print(f"allure report: {report_dir} (history: {history})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="privacy-checks report", description=__doc__)
    add_arguments(parser)
    return main_report(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
