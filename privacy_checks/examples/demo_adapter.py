"""An example Python adapter: the demo's export, assembled in Python from several calls.

A recipe can say "request, poll, download". Some systems need more: the export is a
document the adapter builds from the account, the data download and whatever else the
system keeps apart. This adapter replaces the demo profile's `export` operation with
Python that files the access request, reads the code from the outbox, verifies it, waits
for the answer, then downloads the data and reads the account, and hands both back as one
JSON document (read with `export.delivery: response`).

Everything goes through the Target: `request` (allow-list, timeouts, retries, redacted
evidence), `auth_headers` (the profile's named credentials) — so the ledger guard, the host
allow-list and the evidence are the same as for a recipe. Use it with
`adapter: privacy_checks.examples.demo_adapter:DemoExportAdapter`.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from privacy_checks.errors import PollTimeout, TargetError, UnexpectedStatus
from privacy_checks.target import Adapter, AdapterResult, StepResult


class DemoExportAdapter(Adapter):
    def export(self, subject, captured: dict) -> AdapterResult:
        t = self.target
        where = "adapter export"
        deadline = time.monotonic() + t.operation_timeout

        def call(method: str, path: str, auth: str, expect: tuple[int, ...] = (200,), **kwargs) -> StepResult:
            headers = t.auth_headers(auth, subject, captured, where)
            result = t.request(method, t.base_url + path.lstrip("/"), headers=headers, where=where,
                               deadline=deadline, **kwargs)
            if result.status not in expect:
                raise UnexpectedStatus(f"{where}: {method} {path} answered {result.status}, expected {list(expect)}",
                                       result.status)
            return result

        def until(what: str, fn):
            while time.monotonic() < deadline:
                value = fn()
                if value:
                    return value
                time.sleep(0.1)
            raise PollTimeout(f"{where}: {what} did not happen within {t.operation_timeout:.0f} s", None, "")

        user_id = captured["user_id"]
        request_id = call("POST", "/api/privacy-requests", "subject", (202,),
                          json={"type": "access", "user_id": user_id}).json["id"]
        outbox = f"/api/outbox?to={quote(subject.fields['email'])}&request_id={request_id}"
        code = until("the verification code", lambda: next(
            (m["code"] for m in call("GET", outbox, "admin").json["messages"] if m.get("code")), None))
        call("POST", f"/api/privacy-requests/{request_id}/verify", "subject", json={"code": code})
        status = until("the answer", lambda: (s := call("GET", f"/api/privacy-requests/{request_id}", "subject")
                                              .json["status"]) in ("completed", "denied") and s)
        if status != "completed":
            raise TargetError(f"{where}: the access request {request_id} ended {status}")
        data = call("GET", f"/api/privacy-requests/{request_id}/export?format=json", "subject").json
        account = call("GET", f"/api/users/{user_id}", "subject").json
        document = {"account": account, **data}
        body = StepResult(status=200, headers={"Content-Type": "application/json"}, json=document,
                          text=json.dumps(document), url=f"adapter:{type(self).__name__}.export", method="GET")
        return AdapterResult(captured={"request_id": request_id, "access_status": status}, last=body)
