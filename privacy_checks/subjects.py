"""Synthetic subjects: per-field strategies, canaries and the category table.

A subject is a fictitious person whose free-text fields each carry a canary: the shared
marker plus a token derived from the seed, the test id and a per-run nonce. The token is
deterministic for a given (seed, test id, nonce, index) so a failing run can be replayed,
and the nonce is fresh for every run so that leftovers of an earlier run can never satisfy
this run's checks.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from .observe.forms import LITERAL, MARKER, Needle, canary_needles, short_canary
from .observe.typed import TypedNeedle

# Fields the MediaPRO policy lists for registered users and LMS users ("What specific
# information is collected?"), each with the strategy that fills it.
DEFAULT_STRATEGIES: dict[str, str] = {
    "full_name": "canary",
    "email": "email",
    "username": "canary",
    "password": "password",
    "company": "canary",
    "department": "canary",
    "phone": "phone",
    "postal_address": "canary",
    "chat_username": "canary",
    "ip_address": "ip",
    "custom_field": "canary",
    "geolocation": "geolocation",
    "drivers_license": "canary",
    "card_number": "card_number",
    "date_of_birth": "date_of_birth",
    "moment": "timestamp",
}
# Not in the policy's field lists: only a profile that names them gets them.
_OPT_IN_FIELDS = ("geolocation", "drivers_license", "card_number", "date_of_birth", "moment")

# Strategies whose values are not unique enough to prove presence on their own: a date of birth
# or an amount is shared by many real people (docs/profile.md, "Typed values").
WEAK_STRATEGIES = {"phone", "ip", "weak", "choice", "fixed", "date_of_birth", "date", "amount"}
# Strategies whose values are numbers, dates or instants (observe/typed.py), by typed kind.
TYPED_STRATEGIES = {"card_number": "card_number", "date_of_birth": "date", "date": "date", "timestamp": "timestamp",
                    "integer": "integer", "amount": "amount"}
STRATEGIES = ("canary", "email", "password", "phone", "ip", "geolocation", "weak", "fixed", "choice", "content",
              *TYPED_STRATEGIES)
# Text the subject writes (a message, a support ticket): canary-bearing like any field, but not
# an account field a policy lists, so suites/policy does not classify it (see docs/profile.md).
CONTENT_STRATEGY = "content"


def subject_fields(spec: dict | None) -> list[str]:
    """The fields a profile's `subject` section gives every subject: `fields` (or the built-in
    defaults) followed by `extra_fields`."""
    spec = spec or {}
    base = list(spec.get("fields") or [f for f in DEFAULT_STRATEGIES if f not in _OPT_IN_FIELDS])
    return base + [f for f in spec.get("extra_fields") or [] if f not in base]

# Documentation ranges (RFC 5737); never routed, so never somebody's address.
_DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]

_B32 = "abcdefghijklmnopqrstuvwxyz234567"

# Card numbers: major industry identifier 0 is "ISO/TC 68 and other industry assignments"
# (ISO/IEC 7812-1), a range no card issuer's cards are numbered in; 16 digits, Luhn-valid.
DEFAULT_IIN = "009391"
# Birth dates of adults: 1940-01-01 .. 2004-12-31 (23,742 days).
_BIRTH_FIRST, _BIRTH_DAYS = date(1940, 1, 1), (date(2004, 12, 31) - date(1940, 1, 1)).days + 1
# Integers fit a 32-bit INTEGER column: 1,000,000,000 .. 2,147,483,647.
_INT_FIRST, _INT_SPAN = 1_000_000_000, 2_147_483_647 - 1_000_000_000 + 1


def luhn_digit(digits: str) -> str:
    """The check digit that makes ``digits`` + it pass the Luhn test."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) > 1 and luhn_digit(number[:-1]) == number[-1]
# Strategies whose value depends only on the subject's token, not on the field's name.
_ONE_VALUE = frozenset({"email", "password"})


@cache
def category_table() -> dict[str, dict[str, Any]]:
    import yaml

    text = resources.files("privacy_checks.data").joinpath("field_categories.yaml").read_text()
    return yaml.safe_load(text)["fields"]


def new_run_nonce() -> str:
    return secrets.token_hex(6)


def canary_token(seed: str, test_id: str, nonce: str, index: int) -> str:
    """``MARKER`` and a ten-character body (observe/forms.py explains the format)."""
    digest = hashlib.sha256(f"{seed}|{test_id}|{nonce}|{index}".encode()).digest()
    # 10 base32 characters, the first a letter: ~49 bits, so collisions across every run a
    # company will ever make are negligible. A letter first keeps a short canary's body from
    # reading as the rest of the marker (its run of 4s).
    body = base64.b32encode(digest).decode().lower()
    return MARKER + _B32[:26][digest[-1] % 26] + body[1:10]


def subject_id_for(token: str) -> str:
    """A subject's id, derived from its canary: whoever sees the canary (in a mail address, say)
    knows whose it is without asking the process that created the subject."""
    return str(uuid.UUID(bytes=hashlib.sha256(token.encode()).digest()[:16]))


@dataclass
class Subject:
    """One synthetic person, as created (or about to be created) on the target."""

    id: str
    test_id: str
    canary: str
    fields: dict[str, str]
    strategies: dict[str, str]
    role: str = "subject"  # subject | control | decoy
    captured: dict[str, Any] = field(default_factory=dict)

    def needles(self, fields: list[str] | None = None) -> list[Needle]:
        """The needles of ``fields`` (default: every field, and the subject's canaries alone, so a
        sweep also finds a bare canary: see forms.canary_needles)."""
        wanted = fields if fields is not None else list(self.fields)
        out: list[Needle] = []
        for name in wanted:
            value = self.fields.get(name)
            if not value:
                continue
            strategy = self.strategies.get(name)
            weak = strategy in WEAK_STRATEGIES
            kind = TYPED_STRATEGIES.get(strategy or "")
            out.append(TypedNeedle(self.id, name, value, weak, kind) if kind else Needle(self.id, name, value, weak))
        if fields is None:
            # a typed value (a card number) carries no canary: only text values' canaries count
            strong = [v for f, v in self.fields.items()
                      if self.strategies.get(f) not in WEAK_STRATEGIES and self.strategies.get(f) not in TYPED_STRATEGIES]
            out += canary_needles(self.id, [self.canary, *strong])
        return out

    def strong_fields(self) -> list[str]:
        return [f for f in self.fields if self.strategies.get(f) not in WEAK_STRATEGIES]

    def categories(self, field_name: str) -> list[str]:
        return list(category_table().get(field_name, {}).get("categories", []))

    def is_sensitive(self, field_name: str) -> bool:
        return bool(category_table().get(field_name, {}).get("sensitive", False))

    def template_context(self) -> dict[str, Any]:
        """Field values for templates; an integer field is an int, an amount a float, so a
        template that is a whole JSON value sends a number."""
        typed: dict[str, Any] = {}
        for name, value in self.fields.items():
            strategy = self.strategies.get(name)
            if strategy == "integer" and value:
                typed[name] = int(value)
            elif strategy == "amount" and value:
                typed[name] = float(value)
        return {"id": self.id, "canary": self.canary, **self.fields, **typed}

    def describe(self) -> str:
        return f"{self.role} {self.canary} ({self.test_id})"


# Strategies whose values carry the subject's canary, and so take `short` and `max_length`.
CANARY_STRATEGIES = ("canary", "email", "password", CONTENT_STRATEGY)
TOKEN_SLOT = "\0"


def _fit(name: str, spec: dict, shapes: list[str], token: str) -> str:
    """The first of ``shapes`` (decorated first, ``TOKEN_SLOT`` standing for the canary) that fits
    the field's ``max_length``: with the full canary, then with the short one unless ``short``
    asks for the short one only. The full canary is found in every in-text form by one literal;
    a short one is found in base64 only by a search per value (docs/profile.md)."""
    limit = spec.get("max_length")
    tokens = [short_canary(token)] if spec.get("short") else [token, short_canary(token)]
    options = [shape.replace(TOKEN_SLOT, t) for t in tokens for shape in shapes]
    for option in options:
        if limit is None or len(option) <= limit:
            return option
    raise ValueError(f"subject field {name!r}: max_length {limit} is shorter than its shortest value "
                     f"({len(options[-1])} characters: {options[-1]!r})")


def shortest_length(strategy: str, spec: dict, email_domain: str = "example.com") -> int:
    """The fewest characters a canary-bearing strategy can fill a field with (its short canary
    alone, or with what the strategy cannot drop: an email's domain, a password's classes)."""
    short = len(LITERAL) + 10
    if strategy == "email":
        return short + 1 + len(str(spec.get("domain", email_domain)))
    if strategy == "password":
        return short + len("Pw--9!Xq")
    return short


class SubjectFactory:
    """Builds subjects for one run; each call gets the next index so tokens never repeat."""

    def __init__(self, *, seed: str, nonce: str, locale: str = "en_US", email_domain: str = "example.com",
                 fields: list[str] | None = None, strategies: dict[str, dict] | None = None,
                 extra_fields: list[str] | None = None, now: datetime | None = None,
                 taken: Callable[[str], set[str]] | None = None) -> None:
        self.seed = str(seed)
        # Instants are placed just before the run started, one subject a few seconds apart.
        self.started = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        # Values of a field other live subjects of the target hold (the ledger's), not reused.
        self.taken = taken
        self._used: dict[str, set[str]] = {}
        self.nonce = nonce
        self.locale = locale
        self.email_domain = email_domain
        self.fields = subject_fields({"fields": fields, "extra_fields": extra_fields})
        self.overrides = strategies or {}
        self._count = 0

    def _strategy(self, name: str) -> tuple[str, dict]:
        spec = dict(self.overrides.get(name) or {})
        return spec.pop("strategy", None) or DEFAULT_STRATEGIES.get(name, "canary"), spec

    def build(self, test_id: str, role: str = "subject") -> Subject:
        from faker import Faker

        index = self._count
        self._count += 1
        token = canary_token(self.seed, test_id, self.nonce, index)
        fake = Faker(self.locale)
        # Faker's own seeding: the same (seed, test, nonce, index) gives the same person.
        fake.seed_instance(int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big"))
        first, last = fake.first_name(), fake.last_name()
        values: dict[str, str] = {}
        strategies: dict[str, str] = {}
        used: dict[str, str] = {}
        for name in self.fields:
            strategy, spec = self._strategy(name)
            strategies[name] = strategy
            if spec.get("same_as"):
                continue
            # A second email or password field gets its own canary (the other strategies already
            # derive each value from the field's name): two fields holding one value could never
            # tell the places that keep them apart.
            own = token if strategy not in _ONE_VALUE or used.setdefault(strategy, name) == name else canary_token(
                self.seed, f"{test_id}|{name}", self.nonce, index)
            values[name] = self._value(name, strategy, spec, fake, first, last, own)
        for name in self.fields:
            same = (self.overrides.get(name) or {}).get("same_as")
            if same:
                values[name] = values.get(same, "")
                strategies[name] = strategies.get(same, "canary")
        values = {name: values[name] for name in self.fields}
        for name, value in values.items():
            self._used.setdefault(name, set()).add(value)
        return Subject(id=subject_id_for(token), test_id=test_id, canary=token, fields=values,
                       strategies=strategies, role=role)

    def _value(self, name: str, strategy: str, spec: dict, fake, first: str, last: str, token: str) -> str:
        rnd = int.from_bytes(hashlib.sha256(f"{token}|{name}".encode()).digest()[:8], "big")
        if strategy == "email":
            local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            domain = spec.get("domain", self.email_domain)
            return _fit(name, spec, [f"{local}.{TOKEN_SLOT}@{domain}", f"{TOKEN_SLOT}@{domain}"], token)
        if strategy == "password":
            # Long, mixed classes so common password policies accept it; the canary proves
            # whether it is ever stored or sent in a recoverable form.
            return _fit(name, spec, [f"Pw-{TOKEN_SLOT}-9!Xq"], token)
        if strategy == "phone":
            # NANP numbers 555-0100..0199 are reserved for fiction in every area code.
            area = 201 + rnd % 700
            return f"+1{area}555{100 + (rnd >> 10) % 100:04d}"
        if strategy == "ip":
            net = _DOC_NETS[rnd % len(_DOC_NETS)]
            return str(net.network_address + 1 + (rnd >> 8) % 254)
        if strategy == "geolocation":
            # Distinctive trailing digits make stored coordinates findable by value.
            lat = 37.0 + (rnd % 10_000) / 100_000
            lon = -122.0 - ((rnd >> 16) % 10_000) / 100_000
            return f"{lat:.5f}7391,{lon:.5f}7391"
        if strategy in ("choice", "weak"):
            choices = spec.get("choices") or ["Engineering", "Sales", "Finance"]
            return str(choices[rnd % len(choices)])
        if strategy == "fixed":
            return str(spec.get("value", ""))
        # The decoration is drawn once (Faker's stream must not move), then filled with a token.
        if strategy == CONTENT_STRATEGY:
            sentence = fake.sentence(nb_words=6).rstrip(".")
            return _fit(name, spec, [f"{name.replace('_', ' ')} {TOKEN_SLOT}: {sentence}", TOKEN_SLOT], token)
        if strategy in TYPED_STRATEGIES:
            return self._typed(name, strategy, spec, token)
        return _fit(name, spec, [self._canary_text(name, fake, first, last, TOKEN_SLOT), TOKEN_SLOT], token)

    def _draw(self, name: str, token: str) -> int:
        """A 64-bit number from the token and the field: the same subject gets the same value."""
        return int.from_bytes(hashlib.sha256(f"{token}|{name}|typed".encode()).digest()[:8], "big")

    def _unused(self, name: str, candidates) -> str:
        """The first candidate no subject of this run and no other live subject holds."""
        held = set(self._used.get(name, set()))
        if self.taken is not None:
            held |= self.taken(name)
        first = None
        for value in candidates:
            first = first or value
            if value not in held:
                return value
        return first  # every candidate taken (never in practice): a weak value may repeat

    def _typed(self, name: str, strategy: str, spec: dict, token: str) -> str:
        rnd = self._draw(name, token)
        if strategy == "card_number":
            iin = str(spec.get("iin", DEFAULT_IIN))
            body = f"{rnd % 10 ** (15 - len(iin)):0{15 - len(iin)}d}"
            return iin + body + luhn_digit(iin + body)
        if strategy in ("date_of_birth", "date"):
            first = date.fromisoformat(str(spec["first"])) if spec.get("first") else _BIRTH_FIRST
            last = date.fromisoformat(str(spec["last"])) if spec.get("last") else _BIRTH_FIRST + timedelta(
                days=_BIRTH_DAYS - 1)
            span = (last - first).days + 1
            return self._unused(name, ((first + timedelta(days=(rnd + 7919 * i) % span)).isoformat()
                                       for i in range(64)))
        if strategy == "timestamp":
            index = self._count
            micro = 100_001 + rnd % 899_998
            if micro % 1000 == 0:  # the microseconds below the millisecond stay distinctive too
                micro += 7
            moment = self.started - timedelta(seconds=3 * index + 3) + timedelta(microseconds=micro)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if strategy == "integer":
            return self._unused(name, (str(_INT_FIRST + (rnd + 104_729 * i) % _INT_SPAN) for i in range(64)))
        # amount: cents never 00 or a multiple of 10, so the rendering keeps two digits
        low, high = Decimal(str(spec.get("min", "10.00"))), Decimal(str(spec.get("max", "999.99")))
        span = int((high - low) * 100) + 1
        cents = [int(low * 100) + (rnd + 7 * i) % span for i in range(64)]
        return self._unused(name, (f"{Decimal(c) / 100:.2f}" for c in cents if c % 10))

    @staticmethod
    def _canary_text(name: str, fake, first: str, last: str, token: str) -> str:
        if name == "full_name":
            return f"{first} {last} {token}"
        if name == "username":
            return f"{first.lower()}_{token}"
        if name == "chat_username":
            return f"@{last.lower()}_{token}"
        if name == "company":
            return f"{fake.company()} {token}"
        if name == "department":
            return f"Training {token}"
        if name == "postal_address":
            return f"{fake.street_address()} {token}, {fake.city()}, CA 9{fake.numerify('####')}"
        if name == "custom_field":
            return f"note {token} {fake.word()}"
        if name == "drivers_license":
            return f"D{fake.numerify('#######')}-{token}"
        return f"{name} {token}"
