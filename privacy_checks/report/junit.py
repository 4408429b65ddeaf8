"""Map the privacy outcome "error" to JUnit's <error> in a file written by `--junitxml`.

pytest's junitxml writes every call-phase failure as <failure>; CI dashboards then show a
check that could not be made (target unreachable, positive control failed) as a broken
promise. The testcase carries the outcome as `<property name="privacy_outcome">` (from
`item.user_properties`), which is how the rewrite finds it without re-deriving test names.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

PROPERTY = "privacy_outcome"


def rewrite_errors(path: str | Path) -> int:
    """Turn <failure> into <error> where the privacy outcome is "error"; returns how many."""
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return 0
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            outcome = None
            for prop in case.iter("property"):
                if prop.get("name") == PROPERTY:
                    outcome = prop.get("value")
            if outcome != "error":
                continue
            for child in case:
                if child.tag == "failure":
                    child.tag = "error"
                    moved += 1
        if moved:
            suite.set("failures", str(int(suite.get("failures", "0")) - moved))
            suite.set("errors", str(int(suite.get("errors", "0")) + moved))
            changed += moved
    if changed:
        tmp = path.with_name(f".{path.name}.tmp")
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, path)
    return changed
