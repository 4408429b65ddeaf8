"""Attach a check's evidence to the Allure result of the test that recorded it, and keep it as
`<reports>/evidence/<check-id>.json` for the compliance report's manifest.

Evidence is redacted when recorded (evidence.py), so nothing here needs to redact again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

FINDING_COLUMNS = ("kind", "store", "location", "column", "field", "form", "excerpt")
MAX_PLACES_ATTACHED = 50


def _ts(text: str | None) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


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


@contextmanager
def _timed_step(listener, name: str, began: float | None, ended: float | None):
    """An Allure step with the times the stage really took (allure.step would stamp "now")."""
    from allure_commons.model2 import Status, TestStepResult
    from allure_commons.utils import uuid4

    uuid = uuid4()
    now = time.time()
    listener.allure_logger.start_step(None, uuid, TestStepResult(name=name, start=int((began or now) * 1000)))
    try:
        yield
    finally:
        listener.allure_logger.stop_step(uuid, stop=int((ended or began or now) * 1000), status=Status.PASSED)


def places_table(places: list[dict]) -> str:
    """Where a promise broke, one row per place (findings.py), as CSV for Allure's table view."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["place", "fields (forms)", "first rows", "matches"])
    for p in places[:MAX_PLACES_ATTACHED]:
        fields = ", ".join(f"{k} ({', '.join(v)})" for k, v in (p.get("fields") or {}).items())
        writer.writerow([p.get("words") or p.get("id"), fields, ", ".join(p.get("rows") or []), p.get("count")])
    if len(places) > MAX_PLACES_ATTACHED:
        writer.writerow([f"… and {len(places) - MAX_PLACES_ATTACHED} more (see the evidence)", "", "", ""])
    return out.getvalue()


def attach_evidence(item, record, *, title: str | None = None, places: list[dict] | None = None) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    listener = item.config.pluginmanager.get_plugin("allure_listener")
    if listener is None:
        return
    # The report hooks attach while the test's own result is open (so the steps show in the
    # test, not in a fixture's teardown); the `evidence` fixture's later call is then a no-op.
    if getattr(item, "_privacy_evidence_attached", None) is record:
        return
    item._privacy_evidence_attached = record
    types = _allure_types()
    data = record.to_dict()
    if places:
        allure.attach(places_table(places), name="where the promise broke, by place",
                      attachment_type=allure.attachment_type.CSV)
    # Stages were recorded as the check ran; replaying them as steps with their own times lets
    # an engineer walk create -> control -> request -> poll -> sweep -> verdict in the Allure UI
    # and see where the time went.
    stages = data["stages"]
    ended = _ts(stages[-1].get("ended_at")) if stages else None
    with _timed_step(listener, title or f"evidence: {data['check_id']}", getattr(record, "began", None), ended):
        for stage in stages:
            details = {k: v for k, v in stage.items() if k not in ("stage", "began_at", "ended_at", "seconds")}
            with _timed_step(listener, str(stage.get("stage", "stage")), _ts(stage.get("began_at")),
                             _ts(stage.get("ended_at"))):
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


# An evidence file keeps at most this many HTTP exchanges: the first and the last half (a deletion
# procedure's polling makes hundreds); how many were left out is said.
MAX_EXCHANGES = 40


def write_evidence_file(directory: Path, check_id: str, nodeid: str, record, *, shared_by: str | None = None,
                        examined: dict[str, int] | None = None, places: list[dict] | None = None,
                        exchanges: list | None = None) -> Path:
    """Write atomically: under pytest-xdist several workers write into the same directory.

    A record shared by the checks judging one procedure keeps, in each check's file, the
    procedure's stages and exchanges but only the findings at this check's own places
    (`places`, from its result): another check's findings are counted, not listed."""
    directory.mkdir(parents=True, exist_ok=True)
    data = {"check_id": check_id, "nodeid": nodeid, "examined": dict(examined or {}), "evidence": record.to_dict()}
    evidence = data["evidence"]
    if shared_by:
        own = {str(p.get("id")) for p in places or [] if p.get("id")}
        mine = [f for f in evidence.get("findings", []) if str(f.get("place")) in own]
        others = len(evidence.get("findings", [])) - len(mine)
        evidence["findings"] = mine
        if others:
            evidence["findings_of_other_checks"] = others
    if exchanges and not evidence.get("exchanges"):
        from ..evidence import scrub_value

        dumped = [e.to_dict() for e in exchanges]
        if len(dumped) > MAX_EXCHANGES:
            half = MAX_EXCHANGES // 2
            evidence["exchanges_left_out"] = len(dumped) - MAX_EXCHANGES
            dumped = dumped[:half] + dumped[-half:]
        evidence["exchanges"] = scrub_value(dumped)
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
