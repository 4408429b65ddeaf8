"""Attach a check's evidence to the Allure result of the test that recorded it."""

from __future__ import annotations

import json


def attach_evidence(item, record) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover - allure-pytest is a dependency
        return
    data = record.to_dict()
    if data["findings"]:
        allure.attach(json.dumps(data["findings"], indent=2, ensure_ascii=False), name="findings",
                      attachment_type=allure.attachment_type.JSON)
    if data["exchanges"]:
        allure.attach(json.dumps(data["exchanges"], indent=2, ensure_ascii=False), name="HTTP exchanges (redacted)",
                      attachment_type=allure.attachment_type.JSON)
    allure.attach(json.dumps(data, indent=2, ensure_ascii=False), name="evidence",
                  attachment_type=allure.attachment_type.JSON)
