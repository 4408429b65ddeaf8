"""The ledger: the one store that outlives runs.

It records runs (with a lease that expires), the subjects each run created (the intent is
written before the create request is sent), the privacy requests suites file, and
time-limited retention holds. An interrupted run's subjects are found here by the next
run's cleanup, and a live run's lease keeps a concurrent cleanup away from its subjects.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import LedgerError

SCHEMA_VERSION = 1
DEFAULT_URL = "sqlite:///.privacy-checks/ledger.sqlite"
ENV_URL = "PRIVACY_CHECKS_LEDGER"

# States a subject moves through. "awaiting_request" keeps it (and cleanup away from it)
# until a pending privacy request filed for it has been judged by a later run.
SUBJECT_STATES = ("intended", "created", "deleted", "cleaned", "awaiting_request", "orphaned")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class Ledger:
    def __init__(self, url: str | None = None, *, now: Callable[[], datetime] = utcnow) -> None:
        import sqlalchemy as sa

        self.url = url or os.environ.get(ENV_URL) or DEFAULT_URL
        self.now = now
        self._lock = threading.Lock()
        try:
            parsed = sa.engine.make_url(self.url)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's URL
            raise LedgerError(f"ledger URL {self.url!r} is not a database URL: {exc}") from None
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            # Several runs (and xdist workers) write at once: wait for the lock rather than fail.
            kwargs["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(parsed, **kwargs)
        if parsed.get_backend_name() == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _wal(dbapi_conn, _record):  # pragma: no cover - trivial
                dbapi_conn.execute("PRAGMA journal_mode=WAL")
                dbapi_conn.execute("PRAGMA busy_timeout=30000")
        self._define(sa)
        self._open(sa)

    # -- schema -----------------------------------------------------------------------------
    def _define(self, sa) -> None:
        md = sa.MetaData()
        self.meta = sa.Table("pc_meta", md, sa.Column("key", sa.String(64), primary_key=True),
                             sa.Column("value", sa.Text))
        self.runs = sa.Table(
            "pc_runs", md,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("target", sa.String(200)),
            sa.Column("started_at", sa.String(40)),
            sa.Column("lease_expires_at", sa.String(40)),
            sa.Column("finished_at", sa.String(40)),
            sa.Column("pid", sa.Integer),
            sa.Column("host", sa.String(200)),
            sa.Column("seed", sa.String(100)),
            sa.Column("nonce", sa.String(64)),
            sa.Column("status", sa.String(20)),
        )
        self.subjects = sa.Table(
            "pc_subjects", md,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("run_id", sa.String(64), index=True),
            sa.Column("target", sa.String(200), index=True),
            sa.Column("test_id", sa.Text),
            sa.Column("role", sa.String(20)),
            sa.Column("canary", sa.String(64), index=True),
            sa.Column("fields_json", sa.Text),
            sa.Column("captured_json", sa.Text),
            sa.Column("state", sa.String(20)),
            sa.Column("created_at", sa.String(40)),
            sa.Column("updated_at", sa.String(40)),
        )
        self.requests = sa.Table(
            "pc_requests", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.String(64), index=True),
            sa.Column("subject_id", sa.String(64), index=True),
            sa.Column("target", sa.String(200), index=True),
            sa.Column("regime", sa.String(10)),
            sa.Column("kind", sa.String(20)),
            sa.Column("request_id", sa.String(200)),
            sa.Column("received_at", sa.String(40)),
            sa.Column("acknowledged_at", sa.String(40)),
            sa.Column("completed_at", sa.String(40)),
            sa.Column("extended_until", sa.String(40)),
            sa.Column("extension_notice_at", sa.String(40)),
            sa.Column("extension_reason", sa.Text),
            sa.Column("status", sa.String(40)),
            sa.Column("history_json", sa.Text),
            sa.Column("judgement", sa.String(20)),
            sa.Column("created_at", sa.String(40)),
            sa.Column("updated_at", sa.String(40)),
        )
        self.holds = sa.Table(
            "pc_retention_holds", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("target", sa.String(200), index=True),
            sa.Column("subject_id", sa.String(64)),
            sa.Column("canary", sa.String(64)),
            sa.Column("location", sa.Text),
            sa.Column("field", sa.String(64)),
            sa.Column("form", sa.String(32)),
            sa.Column("exception", sa.Text),
            sa.Column("first_seen", sa.String(40)),
            sa.Column("purge_by", sa.String(40)),
            sa.Column("resolved_at", sa.String(40)),
        )
        self.policy_hashes = sa.Table(
            "pc_policy_hashes", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("target", sa.String(200), index=True),
            sa.Column("url", sa.Text),
            sa.Column("sha256", sa.String(64)),
            sa.Column("last_modified", sa.String(100)),
            sa.Column("seen_at", sa.String(40)),
        )
        # Each check's result per run, so the next run on the target can say what changed.
        self.check_results = sa.Table(
            "pc_check_results", md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("target", sa.String(200), index=True),
            sa.Column("run_started_at", sa.String(40)),
            sa.Column("check_id", sa.String(200)),
            sa.Column("outcome", sa.String(20)),
            sa.Column("places_json", sa.Text),
            sa.Column("recorded_at", sa.String(40)),
        )
        self.md = md

    def _open(self, sa) -> None:
        for attempt in range(3):
            try:
                return self._open_once(sa)
            except LedgerError:
                raise
            except (sa.exc.OperationalError, sa.exc.IntegrityError) as exc:
                # Two processes creating a fresh ledger race between "does the table exist" and
                # "create it", and between "is the schema version written" and "write it"; the
                # loser simply finds the tables and the version on the next try.
                if attempt == 2:
                    raise LedgerError(f"ledger {self._safe_url()} cannot be opened: {exc.orig}") from None
                time.sleep(0.2 * (attempt + 1))

    def _open_once(self, sa) -> None:
        try:
            with self.engine.begin() as conn:
                self.md.create_all(conn)
                row = conn.execute(sa.select(self.meta.c.value).where(self.meta.c.key == "schema_version")).first()
                if row is None:
                    conn.execute(self.meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                    return
        except sa.exc.OperationalError as exc:
            if "already exists" in str(exc.orig) or "locked" in str(exc.orig):
                raise
            raise LedgerError(f"ledger {self._safe_url()} cannot be opened: {exc.orig}") from None
        except sa.exc.IntegrityError:
            raise  # another process wrote the schema version first: _open reads it on the next try
        except sa.exc.DatabaseError as exc:
            raise LedgerError(f"ledger {self._safe_url()} is unreadable or corrupt: {exc.orig}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"ledger {self._safe_url()} cannot be opened: {exc}") from None
        try:
            version = int(row[0])
        except ValueError:
            raise LedgerError(f"ledger {self._safe_url()}: schema_version {row[0]!r} is not a number") from None
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"ledger {self._safe_url()} was written by a newer privacy-checks (schema {version}, "
                f"this one reads {SCHEMA_VERSION}); upgrade privacy-checks rather than lose its history")

    def _safe_url(self) -> str:
        import sqlalchemy as sa

        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # -- runs and leases ----------------------------------------------------------------------
    def start_run(self, target: str, *, seed: str, nonce: str, lease_seconds: float) -> str:
        run_id = f"run-{utcnow().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        now = self.now()
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.runs.insert().values(
                id=run_id, target=target, started_at=_iso(now),
                lease_expires_at=_iso(now + timedelta(seconds=lease_seconds)),
                pid=os.getpid(), host=socket.gethostname(), seed=seed, nonce=nonce, status="running"))
        return run_id

    def renew_lease(self, run_id: str, lease_seconds: float) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.runs.update().where(self.runs.c.id == run_id).values(
                lease_expires_at=_iso(self.now() + timedelta(seconds=lease_seconds))))

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        now = self.now()
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.runs.update().where(self.runs.c.id == run_id).values(
                finished_at=_iso(now), lease_expires_at=_iso(now), status=status))

    def run(self, run_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.runs.select().where(self.runs.c.id == run_id)).mappings().first()
        return dict(row) if row else None

    def lease_live(self, run_id: str) -> bool:
        run = self.run(run_id)
        if run is None or run["finished_at"]:
            return False
        return _dt(run["lease_expires_at"]) > self.now()

    # -- subjects -----------------------------------------------------------------------------
    def record_intent(self, run_id: str, target: str, subject) -> None:
        now = _iso(self.now())
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.subjects.insert().values(
                id=subject.id, run_id=run_id, target=target, test_id=subject.test_id, role=subject.role,
                canary=subject.canary, fields_json=json.dumps(_public_captures(subject.fields)), captured_json="{}",
                state="intended", created_at=now, updated_at=now))

    def update_subject(self, subject_id: str, *, state: str | None = None, captured: dict | None = None) -> None:
        assert state is None or state in SUBJECT_STATES, state
        values: dict[str, Any] = {"updated_at": _iso(self.now())}
        if state:
            values["state"] = state
        if captured is not None:
            values["captured_json"] = json.dumps(_public_captures(captured))
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.subjects.update().where(self.subjects.c.id == subject_id).values(**values))

    def subject(self, subject_id: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.subjects.select().where(self.subjects.c.id == subject_id)).mappings().first()
        return _subject_row(row) if row else None

    def subjects_of_run(self, run_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.subjects.select().where(self.subjects.c.run_id == run_id)).mappings().all()
        return [_subject_row(r) for r in rows]

    def subjects_for(self, target: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.subjects.select().where(self.subjects.c.target == target)).mappings().all()
        return [_subject_row(r) for r in rows]

    def live_values(self, target: str, field: str) -> set[str]:
        """Values of one field held by subjects of `target` that may still be on it (not deleted
        nor cleaned up): a new subject's weak typed value (a birth date) must not repeat one."""
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.subjects.c.fields_json)
                .where(self.subjects.c.target == target)
                .where(self.subjects.c.state.in_(("intended", "created", "orphaned", "awaiting_request")))
            ).all()
        values = set()
        for (fields_json,) in rows:
            value = json.loads(fields_json or "{}").get(field)
            if isinstance(value, str):
                values.add(value)
        return values

    def orphans(self, target: str) -> list[dict]:
        """Subjects of `target` left by runs whose lease has expired, still on the target."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                self.subjects.select()
                .where(self.subjects.c.target == target)
                .where(self.subjects.c.state.in_(("intended", "created", "orphaned")))
            ).mappings().all()
        out = []
        for row in rows:
            if not self.lease_live(row["run_id"]):
                out.append(_subject_row(row))
        return out

    # -- privacy requests ---------------------------------------------------------------------
    def record_request(self, *, run_id: str, subject_id: str | None, target: str, regime: str, kind: str,
                       request_id: str, received_at: datetime | None, status: str,
                       extra: dict | None = None) -> int:
        now = _iso(self.now())
        with self._lock, self.engine.begin() as conn:
            res = conn.execute(self.requests.insert().values(
                run_id=run_id, subject_id=subject_id, target=target, regime=regime, kind=kind,
                request_id=request_id, received_at=_iso(received_at), status=status,
                history_json=json.dumps([{"at": now, "status": status, **(extra or {})}]),
                created_at=now, updated_at=now))
            return int(res.inserted_primary_key[0])

    def update_request(self, row_id: int, **values: Any) -> None:
        values = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in values.items()}
        now = _iso(self.now())
        with self._lock, self.engine.begin() as conn:
            row = conn.execute(self.requests.select().where(self.requests.c.id == row_id)).mappings().first()
            if row is None:
                raise LedgerError(f"ledger has no request #{row_id}")
            history = json.loads(row["history_json"] or "[]")
            if "status" in values and values["status"] != row["status"]:
                history.append({"at": now, "status": values["status"]})
            conn.execute(self.requests.update().where(self.requests.c.id == row_id).values(
                history_json=json.dumps(history), updated_at=now, **values))

    def open_requests(self, target: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.requests.select().where(self.requests.c.target == target)
                                .where(self.requests.c.judgement.is_(None))).mappings().all()
        return [dict(r) for r in rows]

    # -- retention holds ----------------------------------------------------------------------
    def record_hold(self, *, target: str, subject_id: str, canary: str, location: str, field: str, form: str,
                    exception: str, purge_by: datetime) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.holds.insert().values(
                target=target, subject_id=subject_id, canary=canary, location=location, field=field, form=form,
                exception=exception, first_seen=_iso(self.now()), purge_by=_iso(purge_by)))

    def due_holds(self, target: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(self.holds.select().where(self.holds.c.target == target)
                                .where(self.holds.c.resolved_at.is_(None))).mappings().all()
        return [dict(r) for r in rows if _dt(r["purge_by"]) <= self.now()]

    def resolve_hold(self, hold_id: int) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.holds.update().where(self.holds.c.id == hold_id).values(resolved_at=_iso(self.now())))

    # -- policy page hashes -------------------------------------------------------------------
    def last_policy_hash(self, target: str, url: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.policy_hashes.select().where(self.policy_hashes.c.target == target)
                               .where(self.policy_hashes.c.url == url)
                               .order_by(self.policy_hashes.c.id.desc())).mappings().first()
        return dict(row) if row else None

    def record_policy_hash(self, target: str, url: str, sha256: str, last_modified: str | None) -> None:
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.policy_hashes.insert().values(target=target, url=url, sha256=sha256,
                                                             last_modified=last_modified, seen_at=_iso(self.now())))

    # -- check results, for what changed since the last run ------------------------------------
    def record_results(self, target: str, run_started_at: str, checks: list[dict]) -> None:
        rows = [{"target": target, "run_started_at": run_started_at, "check_id": c["check_id"],
                 "outcome": c["outcome"], "recorded_at": _iso(self.now()),
                 "places_json": json.dumps([{k: p.get(k) for k in ("id", "words")} for p in c.get("places") or []])}
                for c in checks if c.get("check_id")]
        if rows:
            with self._lock, self.engine.begin() as conn:
                conn.execute(self.check_results.insert(), rows)

    def latest_results(self, target: str, *, scan: int = 5000) -> list[dict]:
        """Each check's most recent recorded result on `target` (from the last `scan` rows)."""
        t = self.check_results
        with self.engine.connect() as conn:
            rows = conn.execute(t.select().where(t.c.target == target).order_by(t.c.id.desc()).limit(scan)).mappings()
            latest: dict[str, dict] = {}
            for row in rows:
                if row["check_id"] in latest:
                    continue
                latest[row["check_id"]] = {"check_id": row["check_id"], "outcome": row["outcome"],
                                           "places": json.loads(row["places_json"] or "[]"),
                                           "run_started_at": row["run_started_at"]}
        return list(latest.values())

    def close(self) -> None:
        self.engine.dispose()


_SECRET_KEYS = ("token", "secret", "password", "code", "cookie")


def _public_captures(captured: dict) -> dict:
    # Session tokens and verification codes are useless to a later cleanup and must not
    # outlive the run in a file on disk.
    return {k: v for k, v in captured.items() if not any(s in k.lower() for s in _SECRET_KEYS)}


def _subject_row(row) -> dict:
    d = dict(row)
    d["fields"] = json.loads(d.pop("fields_json") or "{}")
    d["captured"] = json.loads(d.pop("captured_json") or "{}")
    return d
