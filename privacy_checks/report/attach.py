"""Attach a check's evidence to the Allure result of the test that recorded it, and keep it as
`<reports>/evidence/<check-id>.json` for the compliance report's manifest.

Evidence is redacted when recorded (evidence.py), so nothing here needs to redact again.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

FINDING_COLUMNS = ("kind", "store", "location", "column", "field", "form", "excerpt")


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def findings_table(findings: list[dict]) -> str:
    """Findings as CSV, which Allure renders as a table (store / table / column / form)."""
    columns = list(FINDING_COLUMNS) + sorted({k for f in findings for k in f} - set(FINDING_COLUMNS))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for finding in findings:
        writer.writerow({k: finding.get(k, "") if not isinstance(finding.get(k), dict | list)
                         else json.dumps(finding.get(k), default=str) for k in columns})
    return out.getvalue()


def _allure_types() -> dict:
    import allure

    return {"image/png": allure.attachment_type.PNG, "application/json": allure.attachment_type.JSON,
            "text/plain": allure.attachment_type.TEXT}


def attach_evidence(item, record, *, title: str | None = None) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    if not item.config.pluginmanager.has_plugin("allure_listener"):
        return
    # The report hooks attach while the test's own result is open (so the steps show in the
    # test, not in a fixture's teardown); the `evidence` fixture's later call is then a no-op.
    if getattr(item, "_privacy_evidence_attached", None) is record:
        return
    item._privacy_evidence_attached = record
    types = _allure_types()
    data = record.to_dict()
    # Stages were recorded as the check ran; replaying them as steps lets an engineer walk
    # create -> control -> request -> poll -> sweep -> verdict in the Allure UI.
    with allure.step(title or f"evidence: {data['check_id']}"):
        for stage in data["stages"]:
            details = {k: v for k, v in stage.items() if k != "stage"}
            with allure.step(str(stage.get("stage", "stage"))):
                if details:
                    allure.attach(_json(details), name="details", attachment_type=allure.attachment_type.JSON)
        if data["findings"]:
            allure.attach(findings_table(data["findings"]), name="findings (store / table / column / form)",
                          attachment_type=allure.attachment_type.CSV)
        for exchange in data["exchanges"]:
            name = f"{exchange.get('method')} {exchange.get('url')} -> {exchange.get('status')}"
            allure.attach(_json(exchange), name=f"HTTP {name} (redacted)", attachment_type=allure.attachment_type.JSON)
        if data["notes"]:
            allure.attach("\n".join(data["notes"]), name="notes", attachment_type=allure.attachment_type.TEXT)
        for attachment in record.attachments:
            allure.attach(attachment.payload(), name=attachment.name,
                          attachment_type=types.get(attachment.media_type, allure.attachment_type.TEXT))
        allure.attach(_json(data), name="evidence", attachment_type=allure.attachment_type.JSON)


def attach_examined(item, examined: dict[str, int]) -> None:
    """What the check examined, as a step of its own: a pass always names a positive count."""
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    if not item.config.pluginmanager.has_plugin("allure_listener"):
        return
    from ..outcomes import describe_examined

    with allure.step(f"examined: {describe_examined(examined)}"):
        if examined:
            allure.attach(_json(examined), name="examined", attachment_type=allure.attachment_type.JSON)


def evidence_path(directory: Path, check_id: str) -> Path:
    return directory / f"{check_id}.json"


def write_evidence_file(directory: Path, check_id: str, nodeid: str, record, *, shared_by: str | None = None,
                        examined: dict[str, int] | None = None) -> Path:
    """Write atomically: under pytest-xdist several workers write into the same directory."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"check_id": check_id, "nodeid": nodeid, "examined": dict(examined or {}), "evidence": record.to_dict()}
    # attachments (screenshots, request timelines) go beside it as files: <check-id>/<file>
    for attachment, entry in zip(record.attachments, data["evidence"].get("attachments", []), strict=True):
        folder = directory / check_id
        folder.mkdir(exist_ok=True)
        target = folder / attachment.filename
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(attachment.payload())
        os.replace(tmp, target)
        entry["file"] = f"{check_id}/{attachment.filename}"
    if shared_by:
        data["recorded_by"] = shared_by
    path = evidence_path(directory, check_id)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_json(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
