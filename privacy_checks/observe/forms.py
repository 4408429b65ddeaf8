"""The forms in which a store may keep a subject's value, and finding them in text.

A canary is ``MARKER`` followed by ten characters of ``[a-z2-7]``. Every non-hash form of a
canary-bearing value still contains either the marker (exact, lower-cased, URL-encoded: the
marker is plain lower-case ASCII, which none of them alter) or one of the base64 renderings of
the marker, so stores can pick candidates with a few predicates whatever the number of
subjects. Hashes carry no marker and are compared as whole values against digests computed here.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.parse
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

MARKER = "pcqz"
CANARY_RE = re.compile(MARKER + r"[a-z2-7]{10}")

TEXT_FORMS = ("exact", "casefold", "urlencoded", "base64")
HASH_FORMS = ("md5", "sha1", "sha256")
ALL_FORMS = TEXT_FORMS + HASH_FORMS

# Looking ahead lets a canary that starts inside a preceding "pcqz…" run still be seen.
_ANCHOR_RE = re.compile(f"(?=({CANARY_RE.pattern}))")
_HEX_RUN_RE = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,64}(?![0-9A-Fa-f])")
_HEX_LENGTHS = {32, 40, 64}


@dataclass(frozen=True)
class Needle:
    subject_id: str
    field: str
    value: str
    weak: bool = False


@dataclass(frozen=True)
class Form:
    """One rendering of a needle's value that a store may hold.

    ``pattern`` is searched as a substring (``case_sensitive`` or not), except for hash forms,
    whose ``pattern`` is a lower-case hex digest that must make up a whole value or hex token.
    """

    needle: Needle
    kind: str
    pattern: str
    case_sensitive: bool = True


@dataclass(frozen=True)
class Match:
    needle: Needle
    form: str
    start: int
    end: int


def check_forms(forms: Collection[str] | None) -> tuple[str, ...]:
    if forms is None:
        return ALL_FORMS
    unknown = sorted(set(forms) - set(ALL_FORMS))
    if unknown:
        raise ValueError(f"unknown form(s) {', '.join(unknown)}; known: {', '.join(ALL_FORMS)}")
    return tuple(f for f in ALL_FORMS if f in forms)


def base64_cores(data: bytes) -> list[str]:
    """The base64 substrings that ``data`` produces wherever it sits in a longer encoded text.

    For each of the three positions ``data`` can start at within a 3-byte group, encode it behind
    that many filler bytes and keep only the characters that depend on ``data`` alone. Dropping
    leading bytes instead would lose the two characters a partial first group still fixes; for the
    4-byte marker that is the difference between a 2-character core (matching almost anything)
    and a 5-character one. Standard and URL-safe alphabets are both returned when they differ.
    """
    cores: list[str] = []
    for lead in range(3):
        encoded = base64.b64encode(b"\0" * lead + data).decode("ascii").rstrip("=")
        total = lead + len(data)
        # Characters touched by filler: lead 1 -> the first 2; lead 2 -> the first 3.
        start = {0: 0, 1: 2, 2: 3}[lead]
        full_groups, rest = divmod(total, 3)
        # A trailing partial group fixes 1 char (1 byte) or 2 chars (2 bytes); the next one
        # mixes in whatever follows.
        end = full_groups * 4 + {0: 0, 1: 1, 2: 2}[rest]
        core = encoded[start:end]
        if core:
            cores.append(core)
            urlsafe = core.replace("+", "-").replace("/", "_")
            if urlsafe != core:
                cores.append(urlsafe)
    return list(dict.fromkeys(cores))


def candidate_patterns(marker: str = MARKER) -> list[str]:
    """Substrings that every non-hash form of every canary contains (one of them, at least).

    The marker itself (case-insensitively) covers exact, casefold and urlencoded; the base64
    cores of the marker (case-sensitive) cover base64.
    """
    return [marker, *base64_cores(marker.encode("utf-8"))]


_GMAIL = ("gmail.com", "googlemail.com")


def hash_digests(value: str) -> dict[str, str]:
    """``{hex digest: form}`` of the normalised value (trimmed, lower-cased) and, when it differs,
    of the value as given: systems hash before or after normalising. A Gmail address also in the
    form ad networks' "advanced matching" normalise it to (dots and any +tag gone from the local
    part, as Google's enhanced conversions and UID2 specify)."""
    out: dict[str, str] = {}
    variants = [value.strip().lower()]
    if value != variants[0]:
        variants.append(value)
    local, at, domain = variants[0].rpartition("@")
    if at and local and domain in _GMAIL:
        variants.append(local.split("+", 1)[0].replace(".", "") + "@" + domain)
    for variant in variants:
        raw = variant.encode("utf-8")
        for kind in HASH_FORMS:
            out.setdefault(hashlib.new(kind, raw).hexdigest(), kind)
    return out


def expand(needles: Iterable[Needle], forms: Collection[str] | None = None) -> list[Form]:
    """Every form of every needle. Weak needles have only their exact form."""
    wanted = check_forms(forms)
    out: list[Form] = []
    for needle in needles:
        value = needle.value
        if not value:
            continue
        if needle.weak:
            if "exact" in wanted:
                out.append(Form(needle, "exact", value))
            continue
        if "exact" in wanted:
            out.append(Form(needle, "exact", value))
        if "casefold" in wanted:
            out.append(Form(needle, "casefold", value.lower(), case_sensitive=False))
        if "urlencoded" in wanted:
            for encoded in dict.fromkeys(
                (
                    urllib.parse.quote(value, safe=""),
                    urllib.parse.quote(value),
                    urllib.parse.quote_plus(value),
                )
            ):
                if encoded != value:
                    # Percent-escapes may be written in either case (RFC 3986 2.1).
                    out.append(Form(needle, "urlencoded", encoded, case_sensitive=False))
        if "base64" in wanted:
            for core in base64_cores(value.encode("utf-8")):
                out.append(Form(needle, "base64", core))
        for digest, kind in hash_digests(value).items():
            if kind in wanted:
                out.append(Form(needle, kind, digest, case_sensitive=False))
    return out


def _mask(context: str) -> str:
    pieces, last = [], 0
    for m in CANARY_RE.finditer(context):
        pieces.append(re.sub(r"[^\W_]", "•", context[last:m.start()]))
        pieces.append(m.group(0))
        last = m.end()
    pieces.append(re.sub(r"[^\W_]", "•", context[last:]))
    return "".join(pieces)


def excerpt(text: str, start: int, end: int, width: int = 40) -> str:
    """About ``width`` characters of context around text[start:end], the match between « »."""
    side = width // 2
    # The context may be somebody else's data (a real user's row, a log line): keep its shape
    # for the engineer, but mask its letters and digits; only our own canaries stay readable.
    before = _mask(text[max(0, start - side) : start])
    after = _mask(text[end : end + side])
    out = ("…" if start > side else "") + before + "«" + text[start:end] + "»" + after
    out += "…" if end + side < len(text) else ""
    return re.sub(r"[\x00-\x1f\x7f]", " ", out)


class Matcher:
    """Finds every form of a fixed set of needles in texts; built once, used on many texts.

    Each kind of form is looked up from something cheap found in the text first (a canary, a
    base64 marker core, a hex token, a weak value), so the cost per text does not grow with the
    number of needles.
    """

    def __init__(self, needles: Iterable[Needle], forms: Collection[str] | None = None):
        self.forms = check_forms(forms)
        self.needles = list(dict.fromkeys(n for n in needles if n.value))
        self._by_anchor: dict[str, list[tuple[Needle, re.Pattern[str], list[re.Pattern[str]]]]] = {}
        self._unanchored: list[tuple[Needle, re.Pattern[str], list[re.Pattern[str]]]] = []
        self._base64: list[tuple[Needle, str]] = []
        self._hashes: dict[str, list[tuple[Needle, str]]] = {}
        self._weak: dict[str, list[Needle]] = {}
        self.marker_cores = base64_cores(MARKER.encode("ascii"))
        text_wanted = {"exact", "casefold"} & set(self.forms)
        for needle in self.needles:
            if needle.weak:
                if "exact" in self.forms:
                    self._weak.setdefault(needle.value, []).append(needle)
                continue
            plain = re.compile(re.escape(needle.value), re.IGNORECASE) if text_wanted else None
            urls = [
                re.compile(re.escape(f.pattern), re.IGNORECASE)
                for f in expand([needle], ["urlencoded"] if "urlencoded" in self.forms else [])
            ]
            entry = (needle, plain, urls)
            anchor = CANARY_RE.search(needle.value.lower())
            if anchor:
                self._by_anchor.setdefault(anchor.group(), []).append(entry)
            else:
                self._unanchored.append(entry)
            if "base64" in self.forms:
                for core in base64_cores(needle.value.encode("utf-8")):
                    self._base64.append((needle, core))
            for digest, kind in hash_digests(needle.value).items():
                if kind in self.forms:
                    self._hashes.setdefault(digest, []).append((needle, kind))
        self._weak_re = None
        if self._weak:
            alternatives = "|".join(re.escape(v) for v in sorted(self._weak, key=len, reverse=True))
            # Weak values are short (a phone number, an IP): a bare substring test would find
            # 192.0.2.1 inside 192.0.2.15.
            self._weak_re = re.compile(f"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")

    def find(self, text: str) -> list[Match]:
        if not text:
            return []
        found: dict[tuple[Needle, str, int], Match] = {}

        def add(needle: Needle, form: str, start: int, end: int) -> None:
            found.setdefault((needle, form, start), Match(needle, form, start, end))

        entries = list(self._unanchored)
        lowered = text.lower() if self._by_anchor else ""
        if MARKER in lowered:
            for anchor in dict.fromkeys(_ANCHOR_RE.findall(lowered)):
                entries.extend(self._by_anchor.get(anchor, ()))
        for needle, plain, urls in entries:
            if plain is not None:
                for m in plain.finditer(text):
                    if m.group() == needle.value and "exact" in self.forms:
                        add(needle, "exact", m.start(), m.end())
                    elif "casefold" in self.forms:
                        add(needle, "casefold", m.start(), m.end())
            for pattern in urls:
                for m in pattern.finditer(text):
                    add(needle, "urlencoded", m.start(), m.end())
        if self._base64 and (self._unanchored or any(c in text for c in self.marker_cores)):
            for needle, core in self._base64:
                at = text.find(core)
                while at >= 0:
                    add(needle, "base64", at, at + len(core))
                    at = text.find(core, at + 1)
        if self._hashes and len(text) >= 32:
            for m in _HEX_RUN_RE.finditer(text):
                if len(m.group()) in _HEX_LENGTHS:
                    for needle, kind in self._hashes.get(m.group().lower(), ()):
                        add(needle, kind, m.start(), m.end())
        if self._weak_re is not None:
            for m in self._weak_re.finditer(text):
                for needle in self._weak[m.group()]:
                    add(needle, "exact", m.start(), m.end())
        return sorted(found.values(), key=lambda m: (m.start, m.needle.subject_id, m.needle.field, m.form))


@lru_cache(maxsize=32)
def _matcher(needles: tuple[Needle, ...], forms: tuple[str, ...]) -> Matcher:
    return Matcher(needles, forms)


def match_text(text: str, needles: Sequence[Needle], forms: Collection[str] | None = None) -> list[Match]:
    """Every needle/form found in ``text``. For many texts, build a ``Matcher`` once instead."""
    return _matcher(tuple(needles), check_forms(forms)).find(text)
