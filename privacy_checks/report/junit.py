"""Map the privacy outcome "error" to JUnit's <error> in a file written by `--junitxml`, and
give each privacy check's <failure>/<error>/<skipped> a one-line `message`.

pytest's junitxml writes every call-phase failure as <failure>; CI dashboards then show a
check that could not be made (target unreachable, positive control failed) as a broken
promise. The testcase carries the outcome as `<property name="privacy_outcome">` (from
`item.user_properties`), which is how the rewrite finds it without re-deriving test names.

A CI UI shows the `message` attribute as one line and cuts it after a few: the places a
promise broke in (one indented line each) are joined with "; " there; the element's text keeps
the message as the check wrote it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

PROPERTY = "privacy_outcome"
MESSAGE_CHARS = 2000


def one_line(message: str, limit: int = MESSAGE_CHARS) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = (lines[0] + (" " + "; ".join(lines[1:]) if len(lines) > 1 else "")) if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rewrite_errors(path: str | Path) -> int:
    """Turn <failure> into <error> where the privacy outcome is "error" (returns how many), and
    flatten the messages of privacy checks."""
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return 0
    changed = 0
    flattened = False
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            outcome, ours = None, False
            for prop in case.iter("property"):
                if prop.get("name") == PROPERTY:
                    outcome = prop.get("value")
                ours = ours or prop.get("name") in (PROPERTY, "privacy_check")
            if not ours:
                continue
            for child in case:
                if child.tag in ("failure", "error", "skipped") and "\n" in (child.get("message") or ""):
                    child.set("message", one_line(child.get("message")))
                    flattened = True
                if outcome == "error" and child.tag == "failure":
                    child.tag = "error"
                    moved += 1
        if moved:
            suite.set("failures", str(int(suite.get("failures", "0")) - moved))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed or flattened:
        tmp = path.with_name(f".{path.name}.tmp")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    return changed
