"""The demo's three SQLite stores, behind one connection and one lock.

search.sqlite and analytics.sqlite are ATTACHed to app.sqlite so that one transaction covers
every store a request touches. WAL mode lets the framework read the files while we write.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

APP_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    -- AUTOINCREMENT: a deleted user's id must never come back as someone else
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    full_name TEXT, email TEXT NOT NULL, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    company TEXT, department TEXT, phone TEXT, postal_address TEXT, chat_username TEXT,
    ip_address TEXT, custom_field TEXT, geolocation TEXT, birth_date DATE,
    opted_out INTEGER NOT NULL DEFAULT 0, limited INTEGER NOT NULL DEFAULT 0,
    objected INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users(lower(email));
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, course TEXT, note TEXT,
    ip_address TEXT, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_user ON activity(user_id);
-- support tickets keep the name and email the user had when filing, beside what they wrote
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, name TEXT, email TEXT, body TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_user ON tickets(user_id);
-- study rooms: a space users share, each message its author's
CREATE TABLE IF NOT EXISTS rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, owner_id INTEGER, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS room_members (room_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
                                         PRIMARY KEY (room_id, user_id));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, room_id INTEGER NOT NULL, user_id INTEGER NOT NULL, body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_room ON messages(room_id);
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id);
CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, user_id INTEGER NOT NULL, created_at TEXT NOT NULL);
-- a login throttle: failed attempts (only under the throttle_keeps_username flaw)
CREATE TABLE IF NOT EXISTS login_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL, attempted_at TEXT NOT NULL
);
-- card payments, orders and logins: data that is not text (a card number, an amount, an instant)
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL REFERENCES users(id), total NUMERIC(10, 2),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_user ON orders(user_id);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER, order_id INTEGER, card_number TEXT,
    amount NUMERIC(10, 2), created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS payments_user ON payments(user_id);
-- when a user logged in, by the device's clock (the login request's client_time)
CREATE TABLE IF NOT EXISTS logins (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER, at TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS logins_user ON logins(user_id);
CREATE TABLE IF NOT EXISTS privacy_requests (
    id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL,
    received_at TEXT NOT NULL, due_at TEXT NOT NULL, acknowledged_at TEXT, completed_at TEXT,
    extended_until TEXT, extension_reason TEXT, extension_notice_at TEXT
);
CREATE INDEX IF NOT EXISTS privacy_requests_status ON privacy_requests(status);
-- kept apart from privacy_requests because a correction's new values are personal data
CREATE TABLE IF NOT EXISTS verifications (
    request_id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, payload TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, subject TEXT NOT NULL, body TEXT,
    code TEXT, request_id TEXT, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbound_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER, request_id TEXT, recipient TEXT NOT NULL,
    path TEXT NOT NULL, payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL
);
-- who has received a user's data: deletion notices go to exactly these recipients
CREATE TABLE IF NOT EXISTS deliveries (
    user_id INTEGER NOT NULL, recipient TEXT NOT NULL, PRIMARY KEY (user_id, recipient)
);
"""

SEARCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS search.documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, title TEXT, body TEXT
);
CREATE INDEX IF NOT EXISTS search.documents_user ON documents(user_id);
-- the full-text index over the documents (external content: it holds the terms, not the text)
CREATE VIRTUAL TABLE IF NOT EXISTS search.documents_fts USING fts5(
    title, body, content='documents', content_rowid='id'
);
"""

ANALYTICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS analytics.events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER, email TEXT, event TEXT NOT NULL,
    course TEXT, ip_address TEXT, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics.events_user ON events(user_id);
-- a visit log without a primary key, as analytics tables often are; a visit is named by its
-- unique (user_id, seen_ms), since a physical row id moves when the table is rewritten
CREATE TABLE IF NOT EXISTS analytics.visits (
    user_id INTEGER NOT NULL, username TEXT, course TEXT, seen_ms INTEGER NOT NULL, UNIQUE (user_id, seen_ms)
);
"""


class Store:
    def __init__(self, data_dir: Path, *, secure_delete: bool = True) -> None:
        self.data_dir = data_dir
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            data_dir / "app.sqlite", timeout=10, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("ATTACH DATABASE ? AS search", (str(data_dir / "search.sqlite"),))
        self._conn.execute("ATTACH DATABASE ? AS analytics", (str(data_dir / "analytics.sqlite"),))
        for schema in ("main", "search", "analytics"):
            self._conn.execute(f"PRAGMA {schema}.journal_mode=WAL")
            # deleted rows are overwritten with zeros, not left readable in free pages (the
            # no_secure_delete flaw leaves them there, for the storage residue scan to find)
            self._conn.execute(f"PRAGMA {schema}.secure_delete={'ON' if secure_delete else 'OFF'}")
            if secure_delete:
                # and the log is cut back to what it holds once it is reused after a checkpoint, so
                # old frames with deleted rows do not linger at its end either
                self._conn.execute(f"PRAGMA {schema}.journal_size_limit=0")
        self._conn.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            indexed = self._conn.execute(
                "SELECT 1 FROM search.sqlite_master WHERE name = 'documents_fts'").fetchone() is not None
            self._conn.executescript(APP_SCHEMA + SEARCH_SCHEMA + ANALYTICS_SCHEMA)
            if not indexed:
                # a data directory written before the full-text index: index what it holds
                self._conn.execute("INSERT INTO search.documents_fts (documents_fts) VALUES ('rebuild')")
            columns = {r["name"] for r in self._conn.execute("PRAGMA main.table_info(privacy_requests)")}
            if "extension_notice_at" not in columns:
                # a data directory written before extensions recorded when the consumer was told
                self._conn.execute("ALTER TABLE privacy_requests ADD COLUMN extension_notice_at TEXT")
            if "birth_date" not in {r["name"] for r in self._conn.execute("PRAGMA main.table_info(users)")}:
                # a data directory written before the account held a birth date
                self._conn.execute("ALTER TABLE users ADD COLUMN birth_date DATE")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def checkpoint(self) -> None:
        """Copy committed deletions from the WAL into the database files soon, not at some later autocheckpoint.

        PASSIVE because the framework holds read snapshots while it sweeps: a blocking checkpoint
        would stall every request behind the store lock until the sweep finished.
        """
        with self._lock:
            for schema in ("main", "search", "analytics"):
                self._conn.execute(f"PRAGMA {schema}.wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
