"""MediaPRO's business as the demo models it: accounts, LMS activity, sharing, and privacy requests.

HTTP-free: the server turns requests into calls here and ApiError into status codes, and the
worker drives the asynchronous parts (webhook delivery, verified privacy requests).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import html
import io
import json
import logging
import secrets
import sqlite3
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .copies import CACHED as CONTACT_FIELDS
from .copies import Copies
from .store import Store

EDITABLE = (
    "full_name", "email", "username", "company", "department", "phone", "postal_address",
    "chat_username", "custom_field", "geolocation",
)
# Sent with a signup or an enrolment, never stored: the driver's licence number a compliance
# course's certificate is issued against goes to the partner's lead in memory only.
PASS_THROUGH = ("drivers_license",)
PUBLIC_USER = ("id", *EDITABLE, "ip_address", "opted_out", "limited", "objected", "created_at")
ORDER_COLUMNS = ("id", "total", "created_at")
ACTIVITY_COLUMNS = ("id", "course", "note", "ip_address", "created_at")
TICKET_COLUMNS = ("id", "name", "email", "body", "created_at")
MESSAGE_COLUMNS = ("id", "room_id", "user_id", "body", "created_at")
MAX_ROOM_MEMBERS = 50
REQUEST_COLUMNS = (
    "id", "user_id", "type", "status", "received_at", "due_at", "acknowledged_at", "completed_at",
    "extended_until", "extension_reason", "extension_notice_at",
)
REQUEST_TYPES = ("access", "delete", "correct", "opt_out", "limit", "object", "withdraw_consent")
REQUEST_LABELS = {
    "access": "access", "delete": "deletion", "correct": "correction", "opt_out": "opt-out",
    "limit": "limit the use of sensitive personal information", "object": "objection",
    "withdraw_consent": "withdrawal of consent to marketing",
}
# 11 CCR §7060(b): requests to opt out or to limit need no verification; an objection likewise
VERIFIED_TYPES = frozenset({"access", "delete", "correct"})
# the choice each unverified request applies, and the flaw that leaves it unapplied
CHOICES = {
    "opt_out": ("opted_out", "ignore_opt_out"),
    "limit": ("limited", "ignore_limit"),
    "object": ("objected", "ignore_objection"),
    # GDPR art. 7(3): withdrawing consent to marketing stops it just as an objection does
    "withdraw_consent": ("objected", "ignore_objection"),
}
RESPONSE_DAYS = 45  # Cal. Civ. Code §1798.130(a)(2)
MAX_EXTENSION_DAYS = 45
# the CCPA categories the policy says are collected and that this service holds (identifiers,
# customer records, internet activity)
CATEGORIES = ["A", "B", "F"]
NOTICE_RECIPIENTS = ("crm", "email", "partner", "newsletter")
RECIPIENT_ROLES = {"crm": "service_provider", "email": "service_provider", "partner": "third_party",
                   "newsletter": "third_party"}
# The partner's newsletter service takes its subscribers by mail (only when the demo has a mail
# server, --smtp-url): a third party, so an opt-out, GPC or an objection must stop it.
NEWSLETTER = "subscribers@news.partner.example"
NEWSLETTER_PRIVACY = "privacy@news.partner.example"
# mail_undeclared_recipient: a copy of every signup goes here, an address no recipient is declared for
SIGNUP_ARCHIVE = "signups@archive.mediapro-backup.example"
MAX_FIELD_LENGTH = 4000
MAX_CODE_ATTEMPTS = 5
MAX_DELIVERY_ATTEMPTS = 6
PAGE_SIZE = 50
STANDARD_PRICE = {"plan": "standard", "price_cents": 4900, "service_level": "full"}
PENALTY_PRICE = {"plan": "standard", "price_cents": 6900, "service_level": "reduced"}
# checked against when a username is unknown, so both paths cost one scrypt
_DUMMY_HASH = "scrypt$8192$8$1$" + "00" * 16 + "$" + "00" * 32


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    admin: bool
    user_id: int | None = None


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# scrypt cost n=2**13 (8 MiB): still memory-hard, and cheap enough for test runs creating many subjects
SCRYPT_N = 2**13


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=8, p=1, dklen=32)
    return f"scrypt${SCRYPT_N}$8$1${salt.hex()}${derived.hex()}"


def check_password(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        derived = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
            dklen=len(expected) // 2,
        )
        return hmac.compare_digest(derived.hex(), expected)
    except ValueError:
        # rows written under the plaintext_password flaw
        return hmac.compare_digest(stored.encode(), password.encode())


def _now_ms() -> int:
    return int(time.time() * 1000)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def parse_id(value: Any, name: str = "user_id") -> int:
    if isinstance(value, bool):
        raise ApiError(400, f"{name} must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ApiError(400, f"{name} must be an integer")


def _text_fields(body: Mapping[str, Any], names: Iterable[str], required: Iterable[str] = ()) -> dict[str, str]:
    required = set(required)
    out: dict[str, str] = {}
    for name in names:
        value = body.get(name)
        if value is None:
            if name in required:
                raise ApiError(400, f"missing required field {name!r}")
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"field {name!r} must be a string")
        if len(value) > MAX_FIELD_LENGTH:
            raise ApiError(400, f"field {name!r} is longer than {MAX_FIELD_LENGTH} characters")
        if name in required and not value.strip():
            raise ApiError(400, f"missing required field {name!r}")
        out[name] = value
    if "email" in out and "@" not in out["email"]:
        raise ApiError(400, "field 'email' is not an email address")
    return out


def _birth_date(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise ApiError(400, "'date_of_birth' must be a date, YYYY-MM-DD") from None


def _mail_payload(subject: str, text: str) -> dict[str, str]:
    """A queued delivery by mail (path mailto:<address>): the worker sends it over SMTP."""
    return {"subject": subject, "text": text}


def _reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")


class DemoApp:
    def __init__(
        self, store: Store, flaws: frozenset[str], log: logging.Logger, admin_token: str, sharing: bool,
        copies: Copies | None = None,
        mailing: bool = False,
    ) -> None:
        self.store = store
        # the Redis cache, the S3 bucket and the lake export (demo/copies.py); None: not kept
        self.copies = copies
        self.flaws = flaws
        self.log = log
        self._admin_token = admin_token.encode()
        # without a sink there is nobody to share with, so nothing is queued
        self.sharing = sharing
        # without a mail server, the recipients reached by mail (the newsletter) get nothing
        self.mailing = mailing and sharing
        # deletions whose downstream notices are still queued: request id -> subject's email
        self._awaiting_notices: dict[str, str] = {}
        # queue row id -> values a delivery carries but no store may hold (the visit's location)
        self._in_transit: dict[int, dict[str, str]] = {}
        self._transit_lock = threading.Lock()
        self._seed_request_log()

    # ---- authentication -------------------------------------------------------------------

    def authenticate(self, authorization: str | None, gpc: bool) -> Principal:
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer":
                token = value.strip()
        if not token:
            raise ApiError(401, "authentication required")
        if hmac.compare_digest(token.encode(), self._admin_token):
            return Principal(admin=True)
        with self.store.reading() as db:
            row = db.execute(
                "SELECT s.user_id FROM sessions s JOIN users u ON u.id = s.user_id "
                "WHERE s.token = ? AND u.deleted = 0",
                (token,),
            ).fetchone()
        if row is None:
            raise ApiError(401, "invalid or expired token")
        if gpc:
            self._apply_gpc(row["user_id"])
        return Principal(admin=False, user_id=row["user_id"])

    @staticmethod
    def _authorize_user(principal: Principal, user_id: int) -> None:
        if not principal.admin and principal.user_id != user_id:
            raise ApiError(403, "a session may only act on its own user")

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.admin:
            raise ApiError(403, "admin token required")

    def _honours_gpc(self, gpc: bool) -> bool:
        return gpc and "ignore_gpc" not in self.flaws

    def _apply_gpc(self, user_id: int) -> None:
        """Sec-GPC: 1 is a request to opt out of sale/sharing (11 CCR §7025)."""
        if "ignore_gpc" in self.flaws:
            return
        with self.store.transaction() as db:
            changed = db.execute(
                "UPDATE users SET opted_out = 1 WHERE id = ? AND opted_out = 0", (user_id,)
            ).rowcount
            if changed:
                db.execute("DELETE FROM outbound_queue WHERE user_id = ? AND recipient = 'partner'", (user_id,))
        if changed:
            self.log.info("gpc opt-out applied user_id=%s", user_id)

    # ---- accounts ---------------------------------------------------------------------------

    def create_user(self, body: Mapping[str, Any], ip: str, gpc: bool, rid: str) -> dict[str, Any]:
        _reject_unknown(body, (*EDITABLE, *PASS_THROUGH, "password", "date_of_birth"))
        fields = _text_fields(body, EDITABLE, required=("email", "username"))
        birth = _birth_date(body.get("date_of_birth"))
        # The policy marks geolocation (category G) not collected: it is dropped (stored by the
        # undisclosed_geolocation flaw, sent to the partner by shares_geolocation). The driver's
        # licence number (category B, which the policy discloses; sensitive under
        # §1798.140(ae)(1)(A)) only passes through to the partner: what a limit request withholds.
        passing = self._passing_through(body, fields)
        password = body.get("password")
        if not isinstance(password, str) or not password:
            raise ApiError(400, "missing required field 'password'")
        stored = password if "plaintext_password" in self.flaws else hash_password(password)
        opted_out = 1 if self._honours_gpc(gpc) else 0
        created = iso(utcnow())
        columns = [*fields, "password_hash", "ip_address", "opted_out", "created_at", "birth_date"]
        values = [*fields.values(), stored, ip, opted_out, created, birth]
        try:
            with self.store.transaction() as db:
                self._check_unique(db, fields)
                user_id = db.execute(
                    f"INSERT INTO users ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    values,
                ).lastrowid
                self._reindex(db, user_id)
                db.execute(
                    "INSERT INTO analytics.events (user_id, email, event, course, ip_address, created_at) "
                    "VALUES (?, ?, 'signup', NULL, ?, ?)",
                    (user_id, fields["email"], ip, created),
                )
                user = self._user_row(db, user_id)
                self._share(db, user, "signup", ip, course=None, passing=passing)
        except sqlite3.IntegrityError as exc:
            raise ApiError(409, "username or email already registered") from exc
        if self.copies:
            self.copies.user_written(user)
        self._log_subject("signup", user, rid)
        return self._public_user(user)

    def login(self, body: Mapping[str, Any], gpc: bool, rid: str) -> tuple[str, int]:
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise ApiError(400, "username and password are required")
        with self.store.reading() as db:
            row = db.execute(
                "SELECT id, password_hash FROM users WHERE username = ? AND deleted = 0", (username,)
            ).fetchone()
        if not check_password(row["password_hash"] if row else _DUMMY_HASH, password) or row is None:
            if "throttle_keeps_username" in self.flaws:
                with self.store.transaction() as db:
                    db.execute("INSERT INTO login_attempts (username, attempted_at) VALUES (?, ?)",
                               (username, iso(utcnow())))
            raise ApiError(401, "invalid credentials")
        token = secrets.token_urlsafe(32)
        # the device's clock, as a mobile client reports it (else the server's)
        at = self._parse_time(body["client_time"], "client_time") if body.get("client_time") else utcnow()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO sessions (token, user_id, created_at) VALUES (?, ?, ?)",
                (token, row["id"], iso(utcnow())),
            )
            db.execute("INSERT INTO logins (user_id, at) VALUES (?, ?)",
                       (row["id"], at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")))
        if self.copies:
            self.copies.session_started(token, row["id"], username)
        if gpc:
            self._apply_gpc(row["id"])
        self.log.info("login user_id=%s request_id=%s", row["id"], rid)
        return token, row["id"]

    def get_user(self, principal: Principal, user_id: int) -> dict[str, Any]:
        self._authorize_user(principal, user_id)
        with self.store.reading() as db:
            user = db.execute("SELECT * FROM users WHERE id = ? AND deleted = 0", (user_id,)).fetchone()
        if user is None:
            raise ApiError(404, "no such user")
        return self._public_user(user)

    def update_user(self, principal: Principal, user_id: int, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        self._authorize_user(principal, user_id)
        _reject_unknown(body, (*EDITABLE, "password"))
        fields = _text_fields(body, EDITABLE)
        self._passing_through({}, fields)
        password = body.get("password")
        if password is not None:
            if not isinstance(password, str) or not password:
                raise ApiError(400, "field 'password' must be a non-empty string")
            fields["password_hash"] = password if "plaintext_password" in self.flaws else hash_password(password)
        if not fields:
            raise ApiError(400, "nothing to update")
        try:
            with self.store.transaction() as db:
                if self._user_row(db, user_id, live=True) is None:
                    raise ApiError(404, "no such user")
                if "profile_edit_not_saved" in self.flaws:
                    user = {**dict(self._user_row(db, user_id)), **fields}
                else:
                    self._apply_update(db, user_id, fields)
                    user = self._user_row(db, user_id)
        except sqlite3.IntegrityError as exc:
            raise ApiError(409, "username or email already registered") from exc
        self.log.info("profile updated user_id=%s request_id=%s", user_id, rid)
        return self._public_user(user)

    def admin_delete_user(self, principal: Principal, user_id: int, rid: str) -> None:
        """Hard delete everywhere, outbox included: the framework's cleanup of its own subjects."""
        self._require_admin(principal)
        with self.store.transaction() as db:
            user = self._user_row(db, user_id)
            if user is None:
                raise ApiError(404, "no such user")
            self._purge(db, user_id, keep_search=False, keep_analytics=False)
            db.execute("DELETE FROM outbox WHERE lower(recipient) = lower(?)", (user["email"],))
            if self.copies:
                self.copies.user_deleted(user_id, purge=True)
        self.store.checkpoint()
        self.log.info("user purged by admin user_id=%s request_id=%s", user_id, rid)

    def add_activity(
        self, principal: Principal, user_id: int, body: Mapping[str, Any], ip: str, gpc: bool, rid: str
    ) -> dict[str, Any]:
        self._authorize_user(principal, user_id)
        _reject_unknown(body, ("course", "note", "geolocation", *PASS_THROUGH))
        fields = _text_fields(body, ("course", "note", "geolocation"), required=("course",))
        passing = self._passing_through(body, fields)
        created = iso(utcnow())
        with self.store.transaction() as db:
            user = self._user_row(db, user_id, live=True)
            if user is None:
                raise ApiError(404, "no such user")
            activity_id = db.execute(
                "INSERT INTO activity (user_id, course, note, ip_address, created_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, fields["course"], fields.get("note"), ip, created),
            ).lastrowid
            self._reindex(db, user_id)
            db.execute(
                "INSERT INTO analytics.events (user_id, email, event, course, ip_address, created_at) "
                "VALUES (?, ?, 'enrol', ?, ?, ?)",
                (user_id, user["email"], fields["course"], ip, created),
            )
            # the visit log has no primary key; (user_id, seen_ms) is unique, so seen_ms moves on
            # by a millisecond when two visits of one user fall in the same one
            db.execute(
                "INSERT INTO analytics.visits (user_id, username, course, seen_ms) VALUES (?, ?, ?, "
                "max(?, coalesce((SELECT max(seen_ms) + 1 FROM analytics.visits WHERE user_id = ?), 0)))",
                (user_id, user["username"], fields["course"], int(time.time() * 1000), user_id),
            )
            self._share(db, user, "enrol", ip, course=fields["course"], gpc=self._honours_gpc(gpc),
                        passing=passing)
        if self.copies:
            self.copies.data_changed()
        self._log_subject("activity", user, rid)
        return {"id": activity_id, "user_id": user_id, "course": fields["course"], "created_at": created}

    def place_order(self, principal: Principal, user_id: int, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        """An order paid by card: the order (linked to the user by a declared foreign key) and the
        payment, which keeps the card number and the amount."""
        self._authorize_user(principal, user_id)
        _reject_unknown(body, ("total", "card_number"))
        try:
            total = f"{float(body.get('total')):.2f}"
        except (TypeError, ValueError):
            raise ApiError(400, "'total' must be a number") from None
        card = "".join(ch for ch in str(body.get("card_number") or "") if ch.isdigit())
        if not 12 <= len(card) <= 19:
            raise ApiError(400, "'card_number' must have 12 to 19 digits")
        created = iso(utcnow())
        with self.store.transaction() as db:
            if self._user_row(db, user_id, live=True) is None:
                raise ApiError(404, "no such user")
            order_id = db.execute("INSERT INTO orders (user_id, total, created_at) VALUES (?, ?, ?)",
                                  (user_id, total, created)).lastrowid
            db.execute("INSERT INTO payments (user_id, order_id, card_number, amount, created_at) VALUES (?, ?, ?, ?, ?)",
                       (user_id, order_id, card, total, created))
        self.log.info("order placed user_id=%s order_id=%s request_id=%s", user_id, order_id, rid)
        return {"id": order_id, "user_id": user_id, "total": float(total), "card": f"**** {card[-4:]}",
                "created_at": created}

    def add_ticket(self, principal: Principal, user_id: int, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        """A support ticket: what the user wrote, filed under the name and email on the account."""
        self._authorize_user(principal, user_id)
        _reject_unknown(body, ("body",))
        text = _text_fields(body, ("body",), required=("body",))["body"]
        created = iso(utcnow())
        with self.store.transaction() as db:
            user = self._user_row(db, user_id, live=True)
            if user is None:
                raise ApiError(404, "no such user")
            ticket_id = db.execute(
                "INSERT INTO tickets (user_id, name, email, body, created_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, user["full_name"], user["email"], text, created),
            ).lastrowid
        self.log.info("ticket filed user_id=%s ticket_id=%s request_id=%s", user_id, ticket_id, rid)
        return {"id": ticket_id, "user_id": user_id, "created_at": created}

    def create_room(self, principal: Principal, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        """A study room the session's user opens with other users (its members)."""
        if principal.user_id is None:
            raise ApiError(403, "a room is opened by a user's own session")
        _reject_unknown(body, ("name", "members"))
        name = _text_fields(body, ("name",), required=("name",))["name"]
        members = body.get("members") or []
        if not isinstance(members, list) or len(members) > MAX_ROOM_MEMBERS:
            raise ApiError(400, f"members must be a list of at most {MAX_ROOM_MEMBERS} user ids")
        ids = sorted({principal.user_id, *(parse_id(m, "members") for m in members)})
        with self.store.transaction() as db:
            for user_id in ids:
                if self._user_row(db, user_id, live=True) is None:
                    raise ApiError(404, f"no such user {user_id}")
            room_id = db.execute("INSERT INTO rooms (name, owner_id, created_at) VALUES (?, ?, ?)",
                                 (name, principal.user_id, iso(utcnow()))).lastrowid
            db.executemany("INSERT INTO room_members (room_id, user_id) VALUES (?, ?)", [(room_id, u) for u in ids])
        self.log.info("room opened room_id=%s members=%s request_id=%s", room_id, len(ids), rid)
        return {"id": room_id, "name": name, "members": ids}

    def post_message(self, principal: Principal, room_id: int, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        _reject_unknown(body, ("body",))
        text = _text_fields(body, ("body",), required=("body",))["body"]
        created = iso(utcnow())
        with self.store.transaction() as db:
            self._require_member(db, principal, room_id)
            message_id = db.execute(
                "INSERT INTO messages (room_id, user_id, body, created_at) VALUES (?, ?, ?, ?)",
                (room_id, principal.user_id, text, created),
            ).lastrowid
        self.log.info("message posted room_id=%s message_id=%s request_id=%s", room_id, message_id, rid)
        return {"id": message_id, "room_id": room_id, "created_at": created}

    def room_messages(self, principal: Principal, room_id: int) -> dict[str, Any]:
        with self.store.reading() as db:
            self._require_member(db, principal, room_id)
            rows = db.execute(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE room_id = ? ORDER BY id",
                              (room_id,)).fetchall()
        return {"messages": [dict(r) for r in rows]}

    @staticmethod
    def _require_member(db: sqlite3.Connection, principal: Principal, room_id: int) -> None:
        if principal.user_id is None or db.execute(
                "SELECT 1 FROM room_members WHERE room_id = ? AND user_id = ?", (room_id, principal.user_id)
        ).fetchone() is None:
            raise ApiError(404, "no such room")

    def price(self, principal: Principal, user_id: int) -> dict[str, Any]:
        self._authorize_user(principal, user_id)
        with self.store.reading() as db:
            user = self._user_row(db, user_id, live=True)
        if user is None:
            raise ApiError(404, "no such user")
        if "discriminate" in self.flaws and user["opted_out"]:
            return dict(PENALTY_PRICE)
        return dict(STANDARD_PRICE)

    # ---- privacy requests -----------------------------------------------------------------

    def create_request(self, principal: Principal, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        _reject_unknown(body, ("type", "user_id", "fields", "received_at"))
        kind = body.get("type")
        if kind not in REQUEST_TYPES:
            raise ApiError(400, f"type must be one of: {', '.join(REQUEST_TYPES)}")
        if body.get("user_id") is not None:
            user_id = parse_id(body["user_id"])
        elif principal.admin:
            raise ApiError(400, "user_id is required with the admin token")
        else:
            user_id = principal.user_id
        assert user_id is not None
        self._authorize_user(principal, user_id)
        received = utcnow()
        if body.get("received_at") is not None:
            if not principal.admin:
                raise ApiError(403, "received_at may only be set with the admin token")
            received = self._parse_time(body["received_at"], "received_at")
        corrections = None
        if kind == "correct":
            requested = body.get("fields")
            if not isinstance(requested, dict) or not requested:
                raise ApiError(400, "a correct request needs a non-empty 'fields' object")
            _reject_unknown(requested, EDITABLE)
            corrections = _text_fields(requested, EDITABLE)
        needs_code = kind in VERIFIED_TYPES or (kind == "opt_out" and "opt_out_requires_verification" in self.flaws)
        request_id = str(uuid.uuid4())
        now = iso(utcnow())
        # The receipt message goes out as the request is stored, so a back-dated (control) request
        # is acknowledged at the receipt time it claims.
        acknowledged = None if "no_acknowledgement" in self.flaws else iso(received)
        label = REQUEST_LABELS[kind]
        with self.store.transaction() as db:
            user = self._user_row(db, user_id, live=True)
            if user is None:
                raise ApiError(404, "no such user")
            db.execute(
                "INSERT INTO privacy_requests (id, user_id, type, status, received_at, due_at, "
                "acknowledged_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id, user_id, kind, "verifying" if needs_code else "completed", iso(received),
                    iso(received + timedelta(days=RESPONSE_DAYS)), acknowledged, None if needs_code else now,
                ),
            )
            if acknowledged:
                self._mail(
                    db, user["email"], f"We received your {label} request",
                    f"We received your {label} request {request_id} and will respond within {RESPONSE_DAYS} days.",
                    request_id=request_id, at=acknowledged,
                )
            if needs_code:
                code = f"{secrets.randbelow(10**6):06d}"
                db.execute(
                    "INSERT INTO verifications (request_id, user_id, code_hash, payload) VALUES (?, ?, ?, ?)",
                    (request_id, user_id, _sha256(code), json.dumps(corrections) if corrections else None),
                )
                self._mail(
                    db, user["email"], f"Confirm your {label} request",
                    f"Your verification code for request {request_id} is {code}.", code=code,
                    request_id=request_id,
                )
            else:
                self._apply_choice(db, user_id, kind)
                self._mail(db, user["email"], f"Your {label} request is complete", None, request_id=request_id)
            row = self._request_row(db, request_id)
        self.log.info("privacy request received request=%s type=%s user_id=%s request_id=%s",
                      request_id, kind, user_id, rid)
        return self._request_view(row)

    def verify_request(self, principal: Principal, request_id: str, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        code = body.get("code")
        if not isinstance(code, str):
            raise ApiError(400, "missing required field 'code'")
        with self.store.transaction() as db:
            request = self._request_row(db, request_id)
            if request is None:
                raise ApiError(404, "no such privacy request")
            self._authorize_user(principal, request["user_id"])
            if request["status"] != "verifying":
                raise ApiError(409, f"request is {request['status']}, not awaiting verification")
            pending = db.execute("SELECT * FROM verifications WHERE request_id = ?", (request_id,)).fetchone()
            correct = hmac.compare_digest(_sha256(code.strip()), pending["code_hash"])
            correct = correct or "skip_verification" in self.flaws
            if correct:
                db.execute("UPDATE privacy_requests SET status = 'processing' WHERE id = ?", (request_id,))
            elif pending["attempts"] + 1 >= MAX_CODE_ATTEMPTS:
                db.execute(
                    "UPDATE privacy_requests SET status = 'denied', completed_at = ? WHERE id = ?",
                    (iso(utcnow()), request_id),
                )
                db.execute("DELETE FROM verifications WHERE request_id = ?", (request_id,))
            else:
                db.execute("UPDATE verifications SET attempts = attempts + 1 WHERE request_id = ?", (request_id,))
        if not correct:
            self.log.info("privacy request verification failed request=%s request_id=%s", request_id, rid)
            raise ApiError(403, "wrong verification code")
        self.log.info("privacy request verified request=%s request_id=%s", request_id, rid)
        return {"id": request_id, "status": "processing"}

    def get_request(self, principal: Principal, request_id: str) -> dict[str, Any]:
        with self.store.reading() as db:
            row = self._request_row(db, request_id)
        if row is None:
            raise ApiError(404, "no such privacy request")
        self._authorize_user(principal, row["user_id"])
        return self._request_view(row)

    def list_requests(self, principal: Principal, page: int) -> dict[str, Any]:
        self._require_admin(principal)
        with self.store.reading() as db:
            rows = db.execute(
                f"SELECT {', '.join(REQUEST_COLUMNS)} FROM privacy_requests ORDER BY received_at, id "
                "LIMIT ? OFFSET ?",
                (PAGE_SIZE + 1, (page - 1) * PAGE_SIZE),
            ).fetchall()
        more = len(rows) > PAGE_SIZE
        return {
            "items": [self._request_view(row) for row in rows[:PAGE_SIZE]],
            "next": f"/api/privacy-requests?page={page + 1}" if more else None,
        }

    def extend_request(self, principal: Principal, request_id: str, body: Mapping[str, Any], rid: str) -> dict[str, Any]:
        """11 CCR §7021(b): up to 45 more days, with notice and the reason, before the first period ends."""
        self._require_admin(principal)
        days, reason = body.get("days"), body.get("reason")
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_EXTENSION_DAYS:
            raise ApiError(400, f"days must be an integer from 1 to {MAX_EXTENSION_DAYS}")
        if not isinstance(reason, str) or not reason.strip():
            raise ApiError(400, "missing required field 'reason'")
        with self.store.transaction() as db:
            row = self._request_row(db, request_id)
            if row is None:
                raise ApiError(404, "no such privacy request")
            if row["status"] in ("completed", "denied") or row["extended_until"]:
                raise ApiError(409, "request is closed or already extended")
            until = iso(datetime.fromisoformat(row["due_at"]) + timedelta(days=days))
            silent = "extension_without_notice" in self.flaws
            db.execute(
                "UPDATE privacy_requests SET extended_until = ?, extension_reason = ?, extension_notice_at = ? "
                "WHERE id = ?",
                (until, None if silent else reason, None if silent else iso(utcnow()), request_id),
            )
            user = self._user_row(db, row["user_id"], live=True)
            if user is not None and not silent:
                self._mail(
                    db, user["email"], "We need more time for your request",
                    f"We will respond to request {request_id} by {until}: {reason}", request_id=request_id,
                )
            row = self._request_row(db, request_id)
        self.log.info("privacy request extended request=%s request_id=%s", request_id, rid)
        return self._request_view(row)

    def export(self, principal: Principal, request_id: str) -> dict[str, Any]:
        """The subject's data, to the subject only: the admin token is not a verified consumer."""
        if principal.admin:
            raise ApiError(403, "exports are delivered to the subject's own session only")
        with self.store.reading() as db:
            request = self._request_row(db, request_id)
            if request is None or request["type"] != "access":
                raise ApiError(404, "no such access request")
            self._authorize_user(principal, request["user_id"])
            if request["status"] != "completed":
                raise ApiError(409, f"request is {request['status']}")
            user = self._user_row(db, request["user_id"], live=True)
            if user is None:
                raise ApiError(404, "no such user")
            # export_other_subject: the rows are picked by the user's courses, so everyone enrolled leaks in
            owner = ("course IN (SELECT course FROM activity WHERE user_id = ?)"
                     if "export_other_subject" in self.flaws else "user_id = ?")
            activity = db.execute(
                f"SELECT {', '.join(ACTIVITY_COLUMNS)} FROM activity WHERE {owner} ORDER BY id",
                (user["id"],),
            ).fetchall()
            recipients = [r["recipient"] for r in db.execute(
                "SELECT recipient FROM deliveries WHERE user_id = ? ORDER BY recipient", (user["id"],)
            )]
            tickets = db.execute(
                f"SELECT {', '.join(TICKET_COLUMNS)} FROM tickets WHERE user_id = ? ORDER BY id", (user["id"],)
            ).fetchall()
            # the subject's own messages; export_includes_shared_space: every message of the rooms
            # the subject is in, other people's included
            mine = ("room_id IN (SELECT room_id FROM room_members WHERE user_id = ?)"
                    if "export_includes_shared_space" in self.flaws else "user_id = ?")
            messages = db.execute(
                f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE {mine} ORDER BY id", (user["id"],)
            ).fetchall()
            if "export_skips_own_messages" in self.flaws:
                messages = [m for m in messages if m["user_id"] != user["id"]]
            orders = [dict(r) for r in db.execute(
                f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE user_id = ? ORDER BY id", (user["id"],))]
            # 11 CCR §7024(d): a financial account number is never disclosed; its last four say which card
            payments = [{"order_id": r["order_id"], "amount": r["amount"], "card": f"**** {r['card_number'][-4:]}"}
                        for r in db.execute("SELECT order_id, amount, card_number FROM payments WHERE user_id = ? "
                                            "ORDER BY id", (user["id"],))]
            logins = [{"at": datetime.fromisoformat(r["at"]).replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")}
                      for r in db.execute("SELECT at FROM logins WHERE user_id = ? ORDER BY id", (user["id"],))]
        if "export_includes_password" in self.flaws:
            shown = dict(user)
        else:
            # 11 CCR §7024(d): say that a password is held, never disclose it (or its hash)
            shown = {**self._public_user(user), "password": "[held as a salted hash; not disclosed]"}
        if "export_incomplete" in self.flaws:
            for name in ("postal_address", "chat_username"):
                shown.pop(name, None)
        export: dict[str, Any] = {
            "user": shown,
            "activity": [dict(row) for row in activity],
            "messages": [dict(row) for row in messages],
            "orders": orders,
            "payments": payments,
            "logins": logins,
            "categories": ["A"] if "export_categories_incomplete" in self.flaws else list(CATEGORIES),
            "disclosed_to": [{"recipient": r, "role": RECIPIENT_ROLES.get(r, "other")} for r in recipients],
        }
        if "export_skips_tickets" not in self.flaws:
            export["tickets"] = [dict(row) for row in tickets]
        return export

    @staticmethod
    def export_zip(data: Mapping[str, Any]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, columns, rows in (
                ("users.csv", (*PUBLIC_USER, "deleted"), [data["user"]]),
                ("activity.csv", ACTIVITY_COLUMNS, data["activity"]),
                *((("tickets.csv", TICKET_COLUMNS, data["tickets"]),) if "tickets" in data else ()),
                ("orders.csv", ORDER_COLUMNS, data.get("orders", [])),
                ("payments.csv", ("order_id", "amount", "card"), data.get("payments", [])),
                ("logins.csv", ("at",), data.get("logins", [])),
            ):
                text = io.StringIO()
                writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
                archive.writestr(name, text.getvalue())
        return buffer.getvalue()

    @staticmethod
    def export_html(data: Mapping[str, Any]) -> bytes:
        """A page for people to read: what the export_html_only flaw serves instead of data."""
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in data["user"].items()
        )
        for section in ("activity", "tickets", "messages", "orders", "payments", "logins"):
            rows += "".join(f"<tr><th>{section}</th><td>{html.escape(json.dumps(item))}</td></tr>"
                            for item in data.get(section, []))
        return f"<!DOCTYPE html><html><body><h1>Your data</h1><table>{rows}</table></body></html>".encode()

    def outbox(self, principal: Principal, to: str | None, request_id: str | None) -> dict[str, Any]:
        self._require_admin(principal)
        clauses, params = [], []
        if to:
            clauses.append("lower(recipient) = lower(?)")
            params.append(to)
        if request_id:
            clauses.append("request_id = ?")
            params.append(request_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self.store.reading() as db:
            rows = db.execute(
                "SELECT id, recipient, subject, body, code, request_id, created_at FROM outbox "
                f"{where} ORDER BY id DESC LIMIT 200",
                params,
            ).fetchall()
        return {"messages": [dict(row) for row in rows]}

    # ---- request history -------------------------------------------------------------------

    def _seed_request_log(self) -> None:
        """The requests real users filed before the framework came: what a request-log audit judges.

        Their accounts are closed (user_id 0 never exists); the request records stay, as 11 CCR §7101
        requires for 24 months. Every answer is within every deadline (opt-outs within 5 days, the rest
        within 25, under one month), and one access request is open under a valid 90-day extension.
        The deadline flaws change exactly that history: overdue_requests leaves three of them
        unanswered, no_acknowledgement drops every acknowledgement, extension_without_notice drops the
        extension's notice and reason.
        """
        now = utcnow()
        acknowledge = "no_acknowledgement" not in self.flaws
        rows: list[tuple] = []
        kinds = ("access", "delete", "correct", "opt_out", "limit", "object")
        # (type, age in days, completed after n days or None, extended to n days, notice after n days, reason)
        for i in range(55):
            rows.append((kinds[i % len(kinds)], 10 + i, 2, None, None, None))
        unanswered = "overdue_requests" in self.flaws
        for kind, age, answered_after in (("access", 70, 25), ("delete", 50, 20), ("opt_out", 40, 5)):
            rows.append((kind, age, None if unanswered else answered_after, None, None, None))
        silent = "extension_without_notice" in self.flaws
        rows.append(("access", 60, None, 90, None if silent else 14,
                     None if silent else "identity documents sent by post are still under review"))
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM privacy_requests LIMIT 1").fetchone():
                return
            for kind, age, done_after, extended_to, notice_after, reason in rows:
                received = now - timedelta(days=age)
                db.execute(
                    "INSERT INTO privacy_requests (id, user_id, type, status, received_at, due_at, acknowledged_at, "
                    "completed_at, extended_until, extension_reason, extension_notice_at) "
                    "VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(uuid.uuid4()), kind, "completed" if done_after is not None else "verifying",
                        iso(received), iso(received + timedelta(days=RESPONSE_DAYS)),
                        iso(received) if acknowledge else None,
                        iso(received + timedelta(days=done_after)) if done_after is not None else None,
                        iso(received + timedelta(days=extended_to)) if extended_to else None,
                        reason,
                        iso(received + timedelta(days=notice_after)) if notice_after is not None else None,
                    ),
                )

    # ---- asynchronous work (called from the worker thread only) ---------------------------

    def process_pending_requests(self) -> None:
        with self.store.reading() as db:
            ids = [r["id"] for r in db.execute(
                "SELECT id FROM privacy_requests WHERE status = 'processing' ORDER BY received_at, id"
            )]
        for request_id in ids:
            if request_id in self._awaiting_notices:
                self._finish_deletion_when_notified(request_id)
            else:
                self._process(request_id)

    def due_deliveries(self, limit: int = 50) -> list[sqlite3.Row]:
        with self.store.reading() as db:
            return db.execute(
                "SELECT id, user_id, recipient, path, payload, attempts FROM outbound_queue "
                "WHERE next_attempt_ms <= ? ORDER BY id LIMIT ?",
                (_now_ms(), limit),
            ).fetchall()

    def payload_of(self, row: sqlite3.Row) -> str:
        """A queued delivery's body, with what was kept in memory only put back in."""
        with self._transit_lock:
            extra = self._in_transit.get(row["id"])
        return json.dumps({**json.loads(row["payload"]), **extra}) if extra else row["payload"]

    def delivery_done(self, row: sqlite3.Row, ok: bool) -> None:
        # the body as queued: what a delivery carries only in memory (sensitive personal
        # information passing through, see _passing_through) is never written to a store
        sent = (row["payload"] if ok and self.copies and row["user_id"] is not None
                and row["path"].startswith("/") else None)
        if ok or row["attempts"] + 1 >= MAX_DELIVERY_ATTEMPTS:
            with self._transit_lock:
                self._in_transit.pop(row["id"], None)
        with self.store.transaction() as db:
            if ok:
                db.execute("DELETE FROM outbound_queue WHERE id = ?", (row["id"],))
                user = self._user_row(db, row["user_id"], live=True) if sent is not None else None
                if user is not None and _current(sent, user):
                    self.copies.delivered(row["user_id"], row["recipient"], row["path"], sent)
                if row["user_id"] is not None:
                    # the user may have been deleted while the POST was in flight
                    db.execute(
                        "INSERT OR IGNORE INTO deliveries (user_id, recipient) "
                        "SELECT ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)",
                        (row["user_id"], row["recipient"], row["user_id"]),
                    )
            elif row["attempts"] + 1 >= MAX_DELIVERY_ATTEMPTS:
                db.execute("DELETE FROM outbound_queue WHERE id = ?", (row["id"],))
            else:
                db.execute(
                    "UPDATE outbound_queue SET attempts = attempts + 1, next_attempt_ms = ? WHERE id = ?",
                    (_now_ms() + 100 * 2 ** row["attempts"], row["id"]),
                )
        if not ok and row["attempts"] + 1 >= MAX_DELIVERY_ATTEMPTS:
            self.log.warning("delivery abandoned queue_id=%s recipient=%s", row["id"], row["recipient"])

    def _process(self, request_id: str) -> None:
        with self.store.transaction() as db:
            request = self._request_row(db, request_id)
            pending = db.execute("SELECT payload FROM verifications WHERE request_id = ?", (request_id,)).fetchone()
            db.execute("DELETE FROM verifications WHERE request_id = ?", (request_id,))
            kind, user_id = request["type"], request["user_id"]
            label = REQUEST_LABELS[kind]
            if kind == "delete":
                email, notices = self._execute_deletion(db, request_id, user_id)
                if notices:
                    self._awaiting_notices[request_id] = email or ""
                else:
                    self._complete(db, request_id, email, f"Your {label} request is complete")
            else:
                user = self._user_row(db, user_id, live=True)
                if user is None:
                    db.execute(
                        "UPDATE privacy_requests SET status = 'denied', completed_at = ? WHERE id = ?",
                        (iso(utcnow()), request_id),
                    )
                    return
                if kind == "correct" and pending and pending["payload"]:
                    try:
                        with _savepoint(db):
                            self._apply_update(db, user_id, json.loads(pending["payload"]), correction=True)
                    except (ApiError, sqlite3.IntegrityError):
                        self._complete(db, request_id, user["email"], f"Your {label} request was denied",
                                       status="denied")
                        return
                    user = self._user_row(db, user_id)
                elif kind in CHOICES:
                    self._apply_choice(db, user_id, kind)
                subject = f"Your {label} request is complete"
                if kind == "access" and "refuse_second_access" in self.flaws and db.execute(
                    "SELECT 1 FROM privacy_requests WHERE user_id = ? AND type = 'access' AND status = 'completed' "
                    "AND id != ? AND received_at >= ?", (user_id, request_id, iso(utcnow() - timedelta(days=365))),
                ).fetchone():
                    self._complete(db, request_id, user["email"], f"Your {label} request was denied",
                                   status="denied")
                    return
                if kind == "access":
                    subject = "Your data is ready"
                self._complete(db, request_id, user["email"], subject)
        if kind == "delete":
            self.store.checkpoint()
        self.log.info("privacy request processed request=%s type=%s", request_id, kind)

    def _finish_deletion_when_notified(self, request_id: str) -> None:
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM outbound_queue WHERE request_id = ? LIMIT 1", (request_id,)).fetchone():
                return
            email = self._awaiting_notices.pop(request_id)
            self._complete(db, request_id, email or None, "Your deletion request is complete")
        self.store.checkpoint()
        self.log.info("privacy request completed request=%s type=delete", request_id)

    def _complete(
        self, db: sqlite3.Connection, request_id: str, email: str | None, subject: str, status: str = "completed"
    ) -> None:
        db.execute(
            "UPDATE privacy_requests SET status = ?, completed_at = ? WHERE id = ?",
            (status, iso(utcnow()), request_id),
        )
        if email:
            # after a deletion this message is the one record kept: 11 CCR §7101 (24 months)
            self._mail(db, email, subject, f"Request {request_id} is {status}.", request_id=request_id)

    def _execute_deletion(self, db: sqlite3.Connection, request_id: str, user_id: int) -> tuple[str | None, int]:
        user = self._user_row(db, user_id)
        if user is None:
            return None, 0
        email = user["email"]
        marks = ",".join("?" * len(NOTICE_RECIPIENTS))
        recipients = sorted(r["recipient"] for r in db.execute(
            f"SELECT recipient FROM deliveries WHERE user_id = ? AND recipient IN ({marks}) UNION "
            f"SELECT recipient FROM outbound_queue WHERE user_id = ? AND recipient IN ({marks})",
            (user_id, *NOTICE_RECIPIENTS, user_id, *NOTICE_RECIPIENTS),
        ))
        if "soft_delete" in self.flaws:
            db.execute("UPDATE users SET deleted = 1 WHERE id = ?", (user_id,))
        else:
            if "delete_removes_shared_thread" in self.flaws:
                # the rooms the subject opened go, with everyone's replies in them
                owned = "SELECT id FROM rooms WHERE owner_id = ?"
                db.execute(f"DELETE FROM messages WHERE room_id IN ({owned})", (user_id,))
                db.execute(f"DELETE FROM room_members WHERE room_id IN ({owned})", (user_id,))
                db.execute("DELETE FROM rooms WHERE owner_id = ?", (user_id,))
            self._purge(
                db, user_id,
                keep_search="keep_in_search_index" in self.flaws,
                keep_fts="keep_in_fts" in self.flaws,
                rewrite_visits="rewrite_rows_on_delete" in self.flaws,
                keep_analytics="keep_in_analytics" in self.flaws,
            )
            db.execute("DELETE FROM outbox WHERE lower(recipient) = lower(?)", (email,))
            if self.copies:
                # inside the transaction: the request is completed only once the copies are gone
                self.copies.user_deleted(user_id)
            if "delete_hits_other_subject" in self.flaws:
                victim = db.execute(
                    "SELECT id, email FROM users WHERE id != ? ORDER BY id DESC LIMIT 1", (user_id,)
                ).fetchone()
                if victim is not None:
                    self._purge(db, victim["id"], keep_search=False, keep_analytics=False)
                    db.execute("DELETE FROM outbox WHERE lower(recipient) = lower(?)", (victim["email"],))
                    if self.copies:
                        self.copies.user_deleted(victim["id"])
        notices = 0
        if self.sharing and "no_downstream_delete" not in self.flaws:
            for recipient in recipients:
                if recipient == "newsletter":
                    self._enqueue(db, None, recipient, f"mailto:{NEWSLETTER_PRIVACY}", _mail_payload(
                        f"Erasure request {request_id}", f"Please erase the subscriber {email} and all data you "
                        f"hold about them (request {request_id})."), request_id=request_id)
                else:
                    self._enqueue(db, None, recipient, f"/{recipient}/deletions",
                                  {"user_id": user_id, "email": email}, request_id=request_id)
                notices += 1
        return email, notices

    # ---- helpers ------------------------------------------------------------------------------

    def _purge(self, db: sqlite3.Connection, user_id: int, keep_search: bool, keep_analytics: bool,
               keep_fts: bool = False, rewrite_visits: bool = False) -> None:
        user = self._user_row(db, user_id)
        for table in ("activity", "tickets", "messages", "room_members", "sessions", "outbound_queue", "deliveries",
                      "verifications"):
            db.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))
        if "keep_card_number" not in self.flaws:
            db.execute("DELETE FROM payments WHERE user_id = ?", (user_id,))
        if "keep_login_times" in self.flaws:
            # "anonymised": the user id goes, the device's login times stay
            db.execute("UPDATE logins SET user_id = NULL WHERE user_id = ?", (user_id,))
        else:
            db.execute("DELETE FROM logins WHERE user_id = ?", (user_id,))
        if "orphan_orders" not in self.flaws:
            db.execute("DELETE FROM orders WHERE user_id = ?", (user_id,))
        # a room the user opened stays for the others in it; one nobody is left in goes
        db.execute("UPDATE rooms SET owner_id = NULL WHERE owner_id = ?", (user_id,))
        db.execute("DELETE FROM rooms WHERE id NOT IN (SELECT room_id FROM room_members)")
        if not keep_search:
            if not keep_fts:
                self._unindex(db, user_id)
                # a 'delete' only adds a tombstone: the terms stay in the index's segment blobs
                # until they are merged; optimize merges them now, and secure_delete zeroes the
                # freed pages, so the deleted document leaves no bytes in the file
                db.execute("INSERT INTO search.documents_fts (documents_fts) VALUES ('optimize')")
            db.execute("DELETE FROM search.documents WHERE user_id = ?", (user_id,))
        if rewrite_visits:
            # "Compacts" the visit log by rewriting it newest first: every surviving row gets a new
            # physical row id, and the rewrite keeps the deleted user's visits too.
            rows = db.execute("SELECT user_id, username, course, seen_ms FROM analytics.visits "
                              "ORDER BY seen_ms DESC").fetchall()
            db.execute("DELETE FROM analytics.visits")
            db.executemany("INSERT INTO analytics.visits (user_id, username, course, seen_ms) VALUES (?, ?, ?, ?)",
                           [tuple(r) for r in rows])
        else:
            db.execute("DELETE FROM analytics.visits WHERE user_id = ?", (user_id,))
        if keep_analytics and user is not None:
            db.execute(
                "UPDATE analytics.events SET email = ?, ip_address = NULL WHERE user_id = ?",
                (_sha256(user["email"].lower()), user_id),
            )
        else:
            db.execute("DELETE FROM analytics.events WHERE user_id = ?", (user_id,))
        db.execute("DELETE FROM users WHERE id = ?", (user_id,))

    def _apply_choice(self, db: sqlite3.Connection, user_id: int, kind: str) -> None:
        column, flaw = CHOICES[kind]
        if flaw in self.flaws:
            return
        db.execute(f"UPDATE users SET {column} = 1 WHERE id = ?", (user_id,))
        # leads queued before the choice was made carry exactly what the choice withholds
        db.execute("DELETE FROM outbound_queue WHERE user_id = ? AND recipient = 'partner'", (user_id,))
        if kind != "limit" and not (kind == "opt_out" and "mail_marketing_after_opt_out" in self.flaws):
            db.execute("DELETE FROM outbound_queue WHERE user_id = ? AND recipient = 'newsletter'", (user_id,))

    def _apply_update(
        self, db: sqlite3.Connection, user_id: int, fields: Mapping[str, str], correction: bool = False
    ) -> None:
        self._check_unique(db, fields, exclude=user_id)
        assignments = ", ".join(f"{name} = ?" for name in fields)
        db.execute(f"UPDATE users SET {assignments} WHERE id = ?", (*fields.values(), user_id))
        user = self._user_row(db, user_id)
        if self.copies:
            self.copies.user_written(user)
            self.copies.forget_deliveries(user_id)
        if not (correction and "partial_correction" in self.flaws):
            self._reindex(db, user_id)
        db.execute("UPDATE analytics.events SET email = ? WHERE user_id = ?", (user["email"], user_id))
        db.execute("UPDATE tickets SET name = ?, email = ? WHERE user_id = ?",
                   (user["full_name"], user["email"], user_id))
        if not self.sharing or (correction and "no_correction_notice" in self.flaws):
            return
        # a correction reaches everyone who holds the old data (GDPR art. 19; 11 CCR §7023(c))
        contact = {name: user[name] for name in ("full_name", "email", "company", "department", "phone")}
        self._enqueue(db, user_id, "crm", "/crm/updates", {"user_id": user_id, **contact})
        self._enqueue(db, user_id, "email", "/email/updates",
                      {"user_id": user_id, "email": user["email"], "full_name": user["full_name"]})
        received = db.execute(
            "SELECT 1 FROM deliveries WHERE user_id = ? AND recipient = 'partner'", (user_id,)
        ).fetchone()
        if received and self._may_share_with_partner(user):
            self._enqueue(db, user_id, "partner", "/partner/updates", self._lead(user, user["ip_address"]))
        mailed = db.execute(
            "SELECT 1 FROM deliveries WHERE user_id = ? AND recipient = 'newsletter'", (user_id,)
        ).fetchone()
        if mailed and self.mailing:
            self._enqueue(db, user_id, "newsletter", f"mailto:{NEWSLETTER}", _mail_payload(
                f"Subscriber update: {user['full_name']}",
                f"Please update the subscriber to {user['full_name']} <{user['email']}> of {user['company']}."))

    @staticmethod
    def _check_unique(db: sqlite3.Connection, fields: Mapping[str, str], exclude: int | None = None) -> None:
        if "username" in fields or "email" in fields:
            clash = db.execute(
                "SELECT 1 FROM users WHERE (username = ? OR lower(email) = lower(?)) AND id IS NOT ?",
                (fields.get("username"), fields.get("email"), exclude),
            ).fetchone()
            if clash:
                raise ApiError(409, "username or email already registered")

    @staticmethod
    def _may_share_with_partner(user: sqlite3.Row, gpc: bool = False) -> bool:
        return not (user["opted_out"] or user["objected"] or gpc)

    def _may_mail_newsletter(self, user: sqlite3.Row, gpc: bool = False) -> bool:
        # mail_marketing_after_opt_out: the newsletter's list ignores the opted_out flag an
        # opt-out request sets; a Sec-GPC header on the request itself still stops it
        opted_out = user["opted_out"] and "mail_marketing_after_opt_out" not in self.flaws
        return not (opted_out or user["objected"] or gpc)

    def _passing_through(self, body: Mapping[str, Any], fields: dict[str, str]) -> dict[str, str]:
        """What goes to the partner in memory only: the pass-through fields of `body`, and the
        visit's coordinates under shares_geolocation. The coordinates leave `fields` (so they
        are never stored) unless undisclosed_geolocation stores them."""
        passing = _text_fields(body, PASS_THROUGH) if body else {}
        location = fields.get("geolocation") if "undisclosed_geolocation" in self.flaws else fields.pop(
            "geolocation", None)
        if location and "shares_geolocation" in self.flaws:
            passing["geolocation"] = location
        return passing

    @staticmethod
    def _lead(user: sqlite3.Row, ip: str | None) -> dict[str, Any]:
        lead = {
            "email": user["email"], "full_name": user["full_name"], "company": user["company"],
            "ip_address": ip,
        }
        if not user["limited"]:
            lead["phone"] = user["phone"]
            lead["custom_field"] = user["custom_field"]
        return lead

    def _share(
        self, db: sqlite3.Connection, user: sqlite3.Row, event: str, ip: str, course: str | None, gpc: bool = False,
        passing: Mapping[str, str] | None = None,
    ) -> None:
        if not self.sharing:
            return
        user_id = user["id"]
        self._enqueue(db, user_id, "crm", "/crm/contacts", {
            "event": event, "user_id": user_id, "full_name": user["full_name"], "email": user["email"],
            "company": user["company"], "department": user["department"], "phone": user["phone"],
        })
        self._enqueue(db, user_id, "email", "/email/subscribers", {
            "event": event, "user_id": user_id, "email": user["email"], "full_name": user["full_name"],
        })
        if self._may_share_with_partner(user, gpc):
            queued = self._enqueue(db, user_id, "partner", "/partner/leads", {"event": event, **self._lead(user, ip)})
            if passing and not user["limited"]:
                # sensitive personal information: in memory until delivered, never written to a
                # store (see _passing_through), and withheld once a limit request is honoured
                with self._transit_lock:
                    self._in_transit[queued] = dict(passing)
        if self.mailing and self._may_mail_newsletter(user, gpc):
            self._enqueue(db, user_id, "newsletter", f"mailto:{NEWSLETTER}", _mail_payload(
                f"New subscriber: {user['full_name']}",
                f"Please add {user['full_name']} <{user['email']}> of {user['company']} ({event}).",
            ))
        if self.mailing and "mail_undeclared_recipient" in self.flaws and event == "signup":
            self._enqueue(db, user_id, "archive", f"mailto:{SIGNUP_ARCHIVE}", _mail_payload(
                "signup", f"{user['full_name']} <{user['email']}> signed up from {ip}."))
        if "sells_data" in self.flaws and event == "signup":
            self._enqueue(db, user_id, "databroker", "/databroker/purchase", self._public_user(user))
        if "shares_with_undeclared" in self.flaws:
            self._enqueue(db, user_id, "adtech", "/adtech/audience", {
                "event": event, "email": user["email"], "ip_address": ip, "course": course,
            })

    @staticmethod
    def _enqueue(
        db: sqlite3.Connection, user_id: int | None, recipient: str, path: str, payload: Mapping[str, Any],
        request_id: str | None = None,
    ) -> int:
        return db.execute(
            "INSERT INTO outbound_queue (user_id, request_id, recipient, path, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, request_id, recipient, path, json.dumps(payload), iso(utcnow())),
        ).lastrowid

    @staticmethod
    def _mail(
        db: sqlite3.Connection, recipient: str, subject: str, body: str | None, code: str | None = None,
        request_id: str | None = None, at: str | None = None,
    ) -> None:
        db.execute(
            "INSERT INTO outbox (recipient, subject, body, code, request_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (recipient, subject, body, code, request_id, at or iso(utcnow())),
        )

    @staticmethod
    def _reindex(db: sqlite3.Connection, user_id: int) -> None:
        user = db.execute(
            "SELECT full_name, email, company, department, custom_field FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        notes = db.execute("SELECT course, note FROM activity WHERE user_id = ? ORDER BY id", (user_id,)).fetchall()
        parts = [user["email"], user["company"], user["department"], user["custom_field"]]
        parts += [f"{row['course']}: {row['note'] or ''}" for row in notes]
        DemoApp._unindex(db, user_id)
        db.execute("DELETE FROM search.documents WHERE user_id = ?", (user_id,))
        title, body = user["full_name"], "\n".join(p for p in parts if p)
        doc_id = db.execute(
            "INSERT INTO search.documents (user_id, title, body) VALUES (?, ?, ?)", (user_id, title, body)
        ).lastrowid
        db.execute("INSERT INTO search.documents_fts (rowid, title, body) VALUES (?, ?, ?)", (doc_id, title, body))

    @staticmethod
    def _unindex(db: sqlite3.Connection, user_id: int) -> None:
        """Take the user's documents out of the full-text index: an external-content FTS5 index
        forgets a document only when told, with the values it indexed."""
        for doc in db.execute("SELECT id, title, body FROM search.documents WHERE user_id = ?", (user_id,)).fetchall():
            db.execute("INSERT INTO search.documents_fts (documents_fts, rowid, title, body) VALUES ('delete', ?, ?, ?)",
                       (doc["id"], doc["title"], doc["body"]))

    @staticmethod
    def _user_row(db: sqlite3.Connection, user_id: int, live: bool = False) -> sqlite3.Row | None:
        query = "SELECT * FROM users WHERE id = ?" + (" AND deleted = 0" if live else "")
        return db.execute(query, (user_id,)).fetchone()

    @staticmethod
    def _request_row(db: sqlite3.Connection, request_id: str) -> sqlite3.Row | None:
        return db.execute(
            f"SELECT {', '.join(REQUEST_COLUMNS)} FROM privacy_requests WHERE id = ?", (request_id,)
        ).fetchone()

    @staticmethod
    def _public_user(user: sqlite3.Row) -> dict[str, Any]:
        out: dict[str, Any] = {name: user[name] for name in PUBLIC_USER}
        out["date_of_birth"] = user["birth_date"]
        for flag in ("opted_out", "limited", "objected"):
            out[flag] = bool(out[flag])
        out["deleted"] = bool(user["deleted"])
        return out

    @staticmethod
    def _request_view(row: sqlite3.Row) -> dict[str, Any]:
        view = dict(row)
        view["export_url"] = (
            f"/api/privacy-requests/{row['id']}/export?format=json"
            if row["type"] == "access" and row["status"] == "completed" else None
        )
        return view

    @staticmethod
    def _parse_time(value: Any, name: str) -> datetime:
        try:
            moment = datetime.fromisoformat(value)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, f"{name} must be an ISO 8601 date-time") from exc
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def _log_subject(self, event: str, user: sqlite3.Row, rid: str) -> None:
        if "pii_in_logs" in self.flaws:
            self.log.info("%s user_id=%s request_id=%s email=%s name=%s",
                          event, user["id"], rid, user["email"], user["full_name"])
        else:
            self.log.info("%s user_id=%s request_id=%s", event, user["id"], rid)


class _savepoint:
    """A nested transaction, so a failed correction does not undo the request's own bookkeeping."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("SAVEPOINT correction")
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            self.db.execute("ROLLBACK TO correction")
        self.db.execute("RELEASE correction")


def _current(payload: str, user: sqlite3.Row) -> bool:
    """Whether a delivery's body holds only the account's current values (one queued before an
    update and sent after it holds the old ones: the delivery record does not keep it)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return True
    return not isinstance(body, dict) or all(
        str(user[k]) == str(v) for k, v in body.items() if k in CONTACT_FIELDS and user[k] is not None)
