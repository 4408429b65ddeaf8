"""Render the Allure HTML of a failing web check and look at it in headless Chromium.

Needs npx with access to the npm registry (it runs `npx -y allure awesome`), so it is a tool,
not a test: CI must not depend on npm. Usage, from the repository root:

    python tools/allure_render_check.py [--out DIR]

It runs suites/web/test_form_data.py against the built-in demo with the
session_recorder_keylogs flaw (a failing check with a screenshot and request timelines),
renders allure-results as one HTML file, opens the failed result's Attachments tab in Chromium
(/usr/bin/chromium, as the browser checks use it), expands the screenshot and the request
timeline, and prints whether the image drew (its natural size) and whether the timeline's JSON
shows. Page captures go to DIR (default: a new temporary directory). Exit status 0 only if both show.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from privacy_checks.observe.browser import CHROMIUM_FLAGS, chromium_executable

ROOT = Path(__file__).resolve().parent.parent


def run_suite(out: Path) -> Path:
    reports = out / "reports"
    subprocess.run([sys.executable, "-m", "pytest", "suites/web/test_form_data.py", "-q", "-p", "no:cacheprovider",
                    "--demo-flaw", "session_recorder_keylogs", f"--privacy-reports={reports}",
                    f"--ledger=sqlite:///{out / 'ledger.sqlite'}"], cwd=ROOT, timeout=600, check=False)
    return reports / "allure-results"


def render(results: Path, out: Path) -> Path:
    html = out / "allure-report"
    subprocess.run(["npx", "-y", "allure", "awesome", str(results), "--single-file", "-o", str(html)],
                   timeout=600, check=True)
    return html


def look(html: Path, out: Path) -> dict:
    from playwright.sync_api import sync_playwright

    results = json.loads((html / "test-results.json").read_text())["byId"]
    failed = next(r["id"] for r in results.values() if r["status"] == "failed")
    seen: dict = {"result": failed}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable(), args=list(CHROMIUM_FLAGS))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(15_000)
        page.goto(f"{(html / 'index.html').as_uri()}#/{failed}/attachments")
        shot = page.get_by_text("screenshot:", exact=False).first
        seen["screenshot_title"] = shot.inner_text()
        shot.click()
        img = page.locator("img").first
        img.wait_for(state="visible")
        seen["image_natural_size"] = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        page.screenshot(path=str(out / "allure-screenshot-attachment.png"), full_page=True)
        timeline = page.get_by_text("request timeline:", exact=False).first
        seen["timeline_title"] = timeline.inner_text()
        timeline.click()
        page.get_by_text("/replaytrack/events", exact=False).first.wait_for(state="visible")
        seen["timeline_shows_requests"] = True
        page.screenshot(path=str(out / "allure-timeline-attachment.png"), full_page=True)
        browser.close()
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to put results, HTML and captures")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="allure-render-"))
    out.mkdir(parents=True, exist_ok=True)
    html = render(run_suite(out), out)
    try:
        seen = look(html, out)
    except Exception as exc:  # noqa: BLE001 - one line saying what did not show
        print(f"allure render check: FAILED in {html / 'index.html'}: {str(exc).splitlines()[0]}")
        return 1
    width, height = seen["image_natural_size"]
    ok = width > 0 and height > 0 and seen["timeline_shows_requests"]
    print(f"allure render check: {'OK' if ok else 'FAILED'}: {html / 'index.html'}")
    print(f"  {seen['screenshot_title']!r} drew at {width}x{height}")
    print(f"  {seen['timeline_title']!r} shows the recorder's requests: {seen['timeline_shows_requests']}")
    print(f"  captures: {out / 'allure-screenshot-attachment.png'}, {out / 'allure-timeline-attachment.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
