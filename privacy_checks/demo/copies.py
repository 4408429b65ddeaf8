"""Where the demo keeps personal data outside its SQLite stores, as real services do.

- **Redis cache** (``redis-server`` on loopback): ``profile:<id>`` (a hash of the account's
  contact fields, expiring after an hour) and ``session:<digest of the token>`` (who a session belongs to).
- **Delivery record** ``sent:<recipient>`` (a Redis stream): every HTTP delivery made to a recipient
  on a user's behalf (fields ``user_id``, ``path``, ``payload``: the body as queued, without what
  passes through in memory only, which the demo never stores), as targets keep an
  outbound log a profile can declare as a store-backed sink (``sinks[].store`` with ``key``).
  A deletion or an update removes the user's entries; a delivery whose values the user changed
  while it was in flight is sent but not recorded.
- **S3 bucket** ``privacy-checks-demo`` (moto's server on loopback, versioning on):
  ``avatars/<id>.svg`` (an avatar rendered with the account's name, replaced when it changes)
  and ``exports/accounts.jsonl.gz`` (the nightly account export).
- **Lake**: ``<data>/lake/analytics/events.parquet``, the nightly analytics export (every
  analytics event, the email included, with the account's birth date as a DATE and its first
  login as a TIMESTAMP, as analytics exports join them in), written with DuckDB.

"Nightly" runs here whenever the data changed, at most every ``EXPORT_INTERVAL`` seconds, so
the framework's positive controls and barriers see it within its propagation window.

Without a flaw, a deletion removes the cache entries, every version of the subject's objects
(an overwritten export's earlier versions are removed before the new one is written), and the
next export leaves the subject out. The flaws: ``keep_in_cache`` (the profile stays cached,
without expiry), ``cache_ttl_7_days`` (it stays, expiring in 7 days), ``keep_old_versions``
(objects are deleted with a delete marker only, and overwrites keep the earlier versions),
``keep_in_lake`` (the analytics export only ever appends: deleted subjects' rows stay).
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .store import Store

BUCKET = "privacy-checks-demo"
EXPORTS_KEY = "exports/accounts.jsonl.gz"
PROFILE_TTL = 3600
SESSION_TTL = 86400
KEPT_TTL = 7 * 86400  # cache_ttl_7_days
SENT_MAXLEN = 10_000  # entries kept per recipient's delivery record
EXPORT_INTERVAL = 0.3
CACHED = ("full_name", "email", "username", "company", "department", "phone")
EXPORTED = ("id", "full_name", "email", "username", "company", "created_at")


class Copies:
    def __init__(self, store: Store, flaws: frozenset[str], log: logging.Logger, data_dir: Path, *,
                 redis_url: str, s3_url: str, s3_secret: str) -> None:
        import boto3
        import redis
        from botocore.config import Config

        self.store = store
        self.flaws = flaws
        self.log = log
        self.lake = data_dir / "lake" / "analytics" / "events.parquet"
        self.lake.parent.mkdir(parents=True, exist_ok=True)
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=5)
        self.s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                               aws_access_key_id="privacy-checks-demo", aws_secret_access_key=s3_secret,
                               config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}))
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._exporter = threading.Thread(target=self._export_loop, name="privacy-checks-demo-export", daemon=True)

    def start(self) -> None:
        self._changed.set()
        self._exporter.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stopping.set()
        self._changed.set()
        if self._exporter.is_alive():
            self._exporter.join(timeout)
        self.redis.close()

    # ---- what the application calls ------------------------------------------------------------

    def user_written(self, user: Mapping[str, Any]) -> None:
        """A signup or an update: refresh the cached profile and the avatar."""
        uid = user["id"]
        self.redis.hset(f"profile:{uid}", mapping={k: user[k] or "" for k in CACHED})
        self.redis.expire(f"profile:{uid}", PROFILE_TTL)
        self._replace(f"avatars/{uid}.svg", _avatar(user), "image/svg+xml")
        self._changed.set()

    def session_started(self, token: str, user_id: int, username: str) -> None:
        # keyed by a digest of the token: a key name is no place for a credential
        key = f"session:{hashlib.sha256(token.encode()).hexdigest()[:32]}"
        self.redis.set(key, json.dumps({"user_id": user_id, "username": username}), ex=SESSION_TTL)
        self.redis.sadd(f"sessions:{user_id}", key)
        self.redis.expire(f"sessions:{user_id}", SESSION_TTL)

    def delivered(self, user_id: int, recipient: str, path: str, payload: str) -> None:
        """A delivery made on a user's behalf. Called inside the store transaction that saw the user
        still there, so a deletion (another transaction, which purges this record) comes wholly
        before or after it."""
        self.redis.xadd(f"sent:{recipient}", {"user_id": str(user_id), "path": path, "payload": payload},
                        maxlen=SENT_MAXLEN, approximate=True)

    def forget_deliveries(self, user_id: int) -> None:
        """Remove a user's entries from the delivery record: on deletion, and on an update (the
        record would otherwise keep values the user corrected). Called inside the store
        transaction that changes the user, as ``delivered`` is."""
        for stream in self.redis.scan_iter(match="sent:*", count=1000):
            mine = [entry for entry, fields in self.redis.xrange(stream)
                    if fields.get(b"user_id") == str(user_id).encode()]
            if mine:
                self.redis.xdel(stream, *mine)

    def user_deleted(self, user_id: int, *, purge: bool = False) -> None:
        """A deletion (``purge``: the framework's own cleanup, which no flaw holds back)."""
        keys = self.redis.smembers(f"sessions:{user_id}")
        self.redis.delete(*keys, f"sessions:{user_id}")
        self.forget_deliveries(user_id)
        profile = f"profile:{user_id}"
        if purge or not {"keep_in_cache", "cache_ttl_7_days"} & self.flaws:
            self.redis.delete(profile)
        elif "keep_in_cache" in self.flaws:
            self.redis.persist(profile)
        else:
            self.redis.expire(profile, KEPT_TTL)
        key = f"avatars/{user_id}.svg"
        if purge or "keep_old_versions" not in self.flaws:
            self._delete_all_versions(key)
        else:
            self.s3.delete_object(Bucket=BUCKET, Key=key)  # a delete marker; every version stays
        self._changed.set()

    def data_changed(self) -> None:
        self._changed.set()

    # ---- objects -------------------------------------------------------------------------------

    def _replace(self, key: str, body: bytes, content_type: str) -> None:
        if "keep_old_versions" not in self.flaws:
            # Earlier versions hold what is being replaced; remove them before writing, so no
            # reader ever sees the new version beside the old ones.
            self._delete_all_versions(key)
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=content_type)

    def _delete_all_versions(self, key: str) -> None:
        listing = self.s3.list_object_versions(Bucket=BUCKET, Prefix=key)
        for entry in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
            if entry["Key"] == key:
                self.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=entry["VersionId"])

    # ---- the nightly exports -------------------------------------------------------------------

    def _export_loop(self) -> None:
        while not self._stopping.is_set():
            self._changed.wait()
            if self._stopping.is_set():
                return
            self._changed.clear()
            try:
                self.export()
            except Exception as exc:  # noqa: BLE001 - a failed night is retried, never fatal
                self.log.error("export failed %s", type(exc).__name__)
                self._changed.set()
            self._stopping.wait(EXPORT_INTERVAL)

    def export(self) -> None:
        with self.store.reading() as db:
            users = [dict(r) for r in db.execute(f"SELECT {', '.join(EXPORTED)} FROM users WHERE deleted = 0 "
                                                 "ORDER BY id")]
            # the first login, not the last: a login without a device clock records the server's time later
            events = [tuple(r) for r in db.execute(
                "SELECT e.id, e.user_id, e.email, e.event, e.course, e.ip_address, e.created_at, u.birth_date, "
                "(SELECT min(l.at) FROM logins l WHERE l.user_id = e.user_id) "
                "FROM analytics.events e LEFT JOIN users u ON u.id = e.user_id ORDER BY e.id")]
        body = gzip.compress("".join(json.dumps(u) + "\n" for u in users).encode(), mtime=0)
        self._replace(EXPORTS_KEY, body, "application/x-ndjson")
        self._write_lake(events)

    def _write_lake(self, events: list[tuple]) -> None:
        import duckdb

        # a name no lake glob matches (the demo profile sweeps lake/**/*.parquet): a sweep must not
        # read the half-written file, or list it just before the rename and find it gone
        tmp = self.lake.with_name(f".{self.lake.name}.partial")
        con = duckdb.connect()
        try:
            # typed columns: what a deleted subject leaves here is not only text
            con.execute("CREATE TABLE events (id BIGINT, user_id BIGINT, email VARCHAR, event VARCHAR, "
                        "course VARCHAR, ip_address VARCHAR, created_at VARCHAR, birth_date DATE, "
                        "first_login TIMESTAMP)")
            if events:
                con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [list(e) for e in events])
            if "keep_in_lake" in self.flaws and self.lake.exists():
                # append-only: rows already exported stay, whatever happened to them since
                con.execute(f"INSERT INTO events BY NAME SELECT * FROM read_parquet('{self.lake}') "
                            "WHERE id NOT IN (SELECT id FROM events)")
            con.execute(f"COPY (SELECT * FROM events ORDER BY id) TO '{tmp}' (FORMAT parquet)")
        finally:
            con.close()
        os.replace(tmp, self.lake)  # readers see the old file or the new one, never half of one


def _avatar(user: Mapping[str, Any]) -> bytes:
    name = user["full_name"] or user["username"] or ""
    initials = "".join(part[0] for part in name.split()[:2]).upper() or "?"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><title>{html.escape(name)}</title>'
            f'<circle cx="32" cy="32" r="32" fill="#4a7"/><text x="32" y="40" font-size="24" '
            f'text-anchor="middle">{html.escape(initials)}</text></svg>').encode()
