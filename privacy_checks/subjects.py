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
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from .observe.forms import LITERAL, MARKER, Needle, canary_needles, short_canary

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
}
# Not in the policy's field lists: only a profile that names them gets them.
_OPT_IN_FIELDS = ("geolocation", "drivers_license")

# Strategies whose values are not unique enough to prove presence on their own.
WEAK_STRATEGIES = {"phone", "ip", "weak", "choice", "fixed"}
STRATEGIES = ("canary", "email", "password", "phone", "ip", "geolocation", "weak", "fixed", "choice", "content")
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
        out = []
        for name in wanted:
            value = self.fields.get(name)
            if not value:
                continue
            out.append(Needle(self.id, name, value, self.strategies.get(name) in WEAK_STRATEGIES))
        if fields is None:
            strong = [v for f, v in self.fields.items() if self.strategies.get(f) not in WEAK_STRATEGIES]
            out += canary_needles(self.id, [self.canary, *strong])
        return out

    def strong_fields(self) -> list[str]:
        return [f for f in self.fields if self.strategies.get(f) not in WEAK_STRATEGIES]

    def categories(self, field_name: str) -> list[str]:
        return list(category_table().get(field_name, {}).get("categories", []))

    def is_sensitive(self, field_name: str) -> bool:
        return bool(category_table().get(field_name, {}).get("sensitive", False))

    def template_context(self) -> dict[str, Any]:
        return {"id": self.id, "canary": self.canary, **self.fields}

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
                 extra_fields: list[str] | None = None) -> None:
        self.seed = str(seed)
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
        return _fit(name, spec, [self._canary_text(name, fake, first, last, TOKEN_SLOT), TOKEN_SLOT], token)

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
