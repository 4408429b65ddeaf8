"""The demo's switchable faults: the target misbehaving, not breaking a promise.

A flaw (flaws.py) breaks one privacy promise, so a check must *fail*. A fault makes the
target hard to check — slow, flaky, garbled, stuck, locked — so the affected checks must end
as *error* (or, where the promise itself is at stake, *failed*), promptly and with one clear
message: never a pass, never a hang.

Every request is counted per method and path (query excluded), faults or not, so tests can
prove from the target's side that the framework's retries stayed within their limits, or that
a read-only run sent nothing but reads:
``GET /_faults`` with the admin token returns ``{"faults": [...], "requests": {"POST /api/users":
{"seen": 3, "faulted": 2}, ...}}``.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .server import DemoHandler, DemoServer, Response

# The demo profile's request timeout is 10 s; a reply that comes later is never read.
SLOW_DELAY = 12.0
# Two 503s per path: an idempotent GET (retried twice by the framework) recovers on its
# third attempt, a POST (never retried) fails on its first.
BURST = 2
COUNTS_PATH = "/_faults"

FAULTS: dict[str, str] = {
    "slow_responses": f"every /api/ response is delayed {SLOW_DELAY:g} s, beyond the demo profile's request timeout",
    "burst_5xx": f"the first {BURST} requests to each method and /api/ path get 503 Service Unavailable",
    "dropped_connections": "the first request to each method and /api/ path is read, then the connection is "
                           "closed without an answer",
    "malformed_json": "every JSON body under /api/ is cut in half (invalid JSON); status and headers unchanged",
    "request_never_completes": "verified privacy requests stay 'processing' forever",
    "database_locked": "the demo holds an exclusive lock on its SQLite stores: it works, nobody else can read them",
}


def parse_faults(names: Iterable[str]) -> frozenset[str]:
    """Validate fault names (blank entries ignored, like flaws)."""
    chosen = {name.strip() for name in names if name and name.strip()}
    for name in sorted(chosen):
        if name not in FAULTS:
            raise ValueError(f"unknown demo fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    return frozenset(chosen)


class Faults:
    """The faults switched on in one demo, and the per-path request counts."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = frozenset(names)
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self._faulted: Counter[str] = Counter()

    def install(self, demo: DemoServer) -> None:
        """Faults that live below HTTP: the worker and the stores."""
        if "request_never_completes" in self.names:
            # An instance attribute shadows the method the worker calls on every tick.
            demo.app.process_pending_requests = lambda: None  # type: ignore[method-assign]
        if "database_locked" in self.names:
            with demo.store.reading() as db:
                # EXCLUSIVE locking mode keeps every lock a write takes until the connection
                # closes; the demo keeps working through this connection, other readers get
                # "database is locked".
                db.execute("PRAGMA locking_mode=EXCLUSIVE")
                db.execute("BEGIN IMMEDIATE")
                for schema in ("main", "search", "analytics"):
                    db.execute(f"PRAGMA {schema}.user_version")
                db.execute("COMMIT")

    def intercept(self, handler: DemoHandler, method: str) -> bool:
        """Before routing: True when the request has been answered (or dropped) here."""
        from .server import json_response

        path = urlsplit(handler.path).path
        if path == COUNTS_PATH:
            handler._send(self._counts(handler))
            return True
        key = f"{method} {path}"
        with self._lock:
            self._seen[key] += 1
            seen = self._seen[key]
        if not path.startswith("/api/"):
            return False
        if "slow_responses" in self.names:
            self._mark(key)
            time.sleep(SLOW_DELAY)
        if "dropped_connections" in self.names and seen == 1:
            self._mark(key)
            self._drain(handler)
            handler.close_connection = True  # the socket closes with nothing written
            return True
        if "burst_5xx" in self.names and seen <= BURST:
            self._mark(key)
            self._drain(handler)
            handler._send(json_response(503, {"error": "service unavailable, try again later"}))
            return True
        return False

    def outgoing(self, handler: DemoHandler, response: Response) -> Response:
        """Just before sending: garble the body when malformed_json is on."""
        if ("malformed_json" in self.names and response.body and response.content_type.startswith("application/json")
                and urlsplit(handler.path).path.startswith("/api/")):
            self._mark(f"{handler.command} {urlsplit(handler.path).path}")
            response.body = response.body[: len(response.body) // 2]
        return response

    def _mark(self, key: str) -> None:
        with self._lock:
            self._faulted[key] += 1

    @staticmethod
    def _drain(handler: DemoHandler) -> None:
        # Read the body so a kept-alive connection stays in step; a bad one just closes it.
        from .app import ApiError

        try:
            handler._read_body()
        except ApiError:
            handler.close_connection = True

    def _counts(self, handler: DemoHandler) -> Response:
        from .server import json_response

        expected = f"Bearer {handler.server.demo.config.admin_token}"
        if not hmac.compare_digest((handler.headers.get("Authorization") or "").encode(), expected.encode()):
            return json_response(401, {"error": "the admin token is required"})
        with self._lock:
            requests: dict[str, Any] = {k: {"seen": n, "faulted": self._faulted.get(k, 0)}
                                        for k, n in sorted(self._seen.items())}
        return json_response(200, {"faults": sorted(self.names), "requests": requests})


def counts(url: str, admin_token: str, ca: str, timeout: float = 10.0) -> dict[str, Any]:
    """Read a running demo's request counts (for tests and benchmarks)."""
    import requests

    with requests.Session() as session:
        session.trust_env = False  # a proxy from the environment must not see loopback traffic
        resp = session.get(url.rstrip("/") + COUNTS_PATH, headers={"Authorization": f"Bearer {admin_token}"},
                           verify=ca, timeout=timeout)
    resp.raise_for_status()
    return json.loads(resp.text)
