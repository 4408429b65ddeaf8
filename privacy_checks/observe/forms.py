"""The canary format, the forms in which a store may keep a subject's value, and finding them.

The canary format
-----------------
A canary is ``MARKER`` followed by a body of ten characters ``[a-z][a-z2-7]{9}`` (50 bits from
the seed, test id, run nonce and index): ``q0nd44444kx7pqa2mzt``. Its short form, for fields a
target keeps short, is ``LITERAL`` followed by the same body: ``q0ndkx7pqa2mzt``.

``LITERAL`` (``q0nd``) is the point of the design: every in-text form of a value that carries a
canary holds it, in some letter case, so one case-insensitive substring test per value finds the
candidates of every subject, in every in-text form, at once:

- exact, casefold (lower, upper, title or any mix) and urlencoded: the literal is ASCII letters
  and digits, which case mappings change only in case and percent-encoding leaves alone;
- base64, standard and URL-safe, padded or not, wherever the canary sits in the encoded bytes:
  the marker ends in a run of five ``4``; base64 renders ``444`` as ``NDQ0``, and at each of the
  three byte alignments the run (with the ``q0nd`` before it) encodes to text holding ``Q0ND``;
- token: the canary itself, alone, in any case (a word index, a tsvector).

Hashes carry no literal; they are compared as whole values (or hex tokens) against digests
computed here. Not covered by the literal, and said so in docs/profile.md: a short-form canary
in base64 (searched for per value, at a cost per subject); base64 whose line wrapping falls
inside the four characters of the literal (3 of every 76 wrap positions; the Matcher joins
wrapped lines once a value is a candidate for another reason); encodings other than these
(``\\uXXXX`` JSON escapes are undone for PostgreSQL ``json`` columns by the SQL sweep).
tests/test_canary_format.py enumerates every alignment, case and encoding.

Canaries of the previous format (``pcqz`` and ten characters of ``[a-z2-7]``) stay in ledgers of
earlier runs; ``LEGACY_MARKER`` and its base64 cores are searched for whenever a sweep is given
such a value, so cleanup and retention re-checks still find them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.parse
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

LITERAL = "q0nd"
MARKER = LITERAL + "44444"
LEGACY_MARKER = "pcqz"
_BODY = r"[a-z][a-z2-7]{9}"
# Lower-case text: a full or short canary of this format, or one of the previous format.
CANARY_RE = re.compile(rf"{LITERAL}(?:44444)?{_BODY}|{LEGACY_MARKER}[a-z2-7]{{10}}")

TEXT_FORMS = ("exact", "casefold", "urlencoded", "base64", "token")
HASH_FORMS = ("md5", "sha1", "sha256")
ALL_FORMS = TEXT_FORMS + HASH_FORMS
# A row that still holds an identifier the target gave the subject (observe/stores/sql_links.py).
LINKED_ROW = "linked row"

# Looking ahead lets a canary that starts inside a preceding canary-like run still be seen.
_ANCHOR_RE = re.compile(f"(?=({CANARY_RE.pattern}))")
_HEX_RUN_RE = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,64}(?![0-9A-Fa-f])")
_HEX_LENGTHS = {32, 40, 64}
# A line break inside base64 (MIME wraps at 76, PEM at 64), with the indentation that may follow.
_WRAP_RE = re.compile(r"(?<=[A-Za-z0-9+/=_-])\r?\n[ \t]*(?=[A-Za-z0-9+/=_-])")
TOKEN_FIELD = "canary"


def token_key(token: str) -> str:
    """The part of a canary that names its subject: the body behind the marker, whatever the
    form (full, short) or case it was written in."""
    token = token.lower()
    if token.startswith(MARKER) and len(token) == len(MARKER) + 10:
        return token[len(MARKER):]
    if token.startswith(LITERAL) and len(token) == len(LITERAL) + 10:
        return token[len(LITERAL):]
    return token


def is_legacy(token: str) -> bool:
    return token.lower().startswith(LEGACY_MARKER)


def short_canary(token: str) -> str:
    """The short form of a canary of this format (the literal and the body)."""
    return LITERAL + token_key(token) if not is_legacy(token) else token


@dataclass(frozen=True)
class Needle:
    subject_id: str
    field: str
    value: str
    weak: bool = False


def canary_needles(subject_id: str, values: Iterable[str]) -> list[Needle]:
    """The needles of a subject's canaries alone (field ``TOKEN_FIELD``): every canary the values
    carry, once. A sweep given them also reports the bare canary (form ``token``: a word index, a
    tsvector) wherever none of the subject's values is found whole around it. Give them when the
    question is about the subject as a whole (is it gone?), not about some of its values (was
    this one corrected?): every other value still carries the same canary."""
    seen: dict[str, str] = {}
    for value in values:
        for m in CANARY_RE.finditer((value or "").lower()):
            seen.setdefault(token_key(m.group()), m.group())
    return [Needle(subject_id, TOKEN_FIELD, token) for token in seen.values()]


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


def candidate_patterns(marker: str = MARKER) -> list[tuple[str, bool]]:
    """``(substring, case_insensitive)`` pairs, one of which every in-text form of every canary
    that starts with ``marker`` contains. For this format that is the literal alone; for the
    legacy marker, the marker (any case) and its base64 cores (exact case)."""
    if marker.lower().startswith(LITERAL):
        return [(LITERAL, True)]
    return [(marker, True), *[(core, False) for core in base64_cores(marker.encode("utf-8"))]]


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


def _url_forms(value: str) -> list[str]:
    return [
        encoded
        for encoded in dict.fromkeys(
            (urllib.parse.quote(value, safe=""), urllib.parse.quote(value), urllib.parse.quote_plus(value))
        )
        if encoded != value
    ]


def expand(needles: Iterable[Needle], forms: Collection[str] | None = None) -> list[Form]:
    """Every form of every needle. Weak needles have only their exact form; the token form is
    the canary alone, found by ``Matcher`` wherever no other form of its subject covers it."""
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
            # Percent-escapes may be written in either case (RFC 3986 2.1).
            out += [Form(needle, "urlencoded", e, case_sensitive=False) for e in _url_forms(value)]
        if "base64" in wanted:
            for core in base64_cores(value.encode("utf-8")):
                out.append(Form(needle, "base64", core))
        for digest, kind in hash_digests(value).items():
            if kind in wanted:
                out.append(Form(needle, kind, digest, case_sensitive=False))
    return out


# A JSON object key that names a field ("email": ...): part of the target's schema, not
# personal data, so it stays readable. Only identifier-like names: a key holding an address, a
# number or spaces (a map keyed by people's values) is masked like any value.
_JSON_KEY = re.compile(r'"([A-Za-z_][A-Za-z0-9_-]{0,63})"(?=\s*:)')


def mask(context: str) -> str:
    """``context`` with every letter and digit masked, except our own canaries and JSON keys."""
    keep = [(m.start(), m.end()) for m in CANARY_RE.finditer(context.lower())]
    keep += [(m.start(), m.end()) for m in _JSON_KEY.finditer(context)
             if not any(a < m.end() and m.start() < b for a, b in keep)]
    pieces, last = [], 0
    for start, end in sorted(keep):
        pieces.append(re.sub(r"[^\W_]", "•", context[last:start]))
        pieces.append(context[start:end])
        last = end
    pieces.append(re.sub(r"[^\W_]", "•", context[last:]))
    return "".join(pieces)


def excerpt(text: str, start: int, end: int, width: int = 40) -> str:
    """About ``width`` characters of context around text[start:end], the match between « »."""
    side = width // 2
    # The context may be somebody else's data (a real user's row, a log line): keep its shape
    # for the engineer, but mask its letters and digits; only our own canaries stay readable.
    # Masked over a wider window (masking keeps lengths), so a canary cut by the window's edge
    # is still recognised and stays readable.
    reach = len(MARKER) + 10
    wide_before = text[max(0, start - side - reach) : start]
    wide_after = text[end : end + side + reach]
    cut_before, cut_after = max(0, len(wide_before) - side), min(side, len(wide_after))
    # A canary the window's edge would cut is shown whole.
    for m in CANARY_RE.finditer(wide_before.lower()):
        if m.start() < cut_before < m.end():
            cut_before = m.start()
    for m in CANARY_RE.finditer(wide_after.lower()):
        if m.start() < cut_after < m.end():
            cut_after = m.end()
    before = mask(wide_before)[cut_before:]
    after = mask(wide_after)[:cut_after]
    out = ("…" if start > len(before) else "") + before + "«" + text[start:end] + "»" + after
    out += "…" if end + len(after) < len(text) else ""
    return re.sub(r"[\x00-\x1f\x7f]", " ", out)


def _unwrapped(text: str) -> tuple[str, list[int]] | None:
    """``text`` with the line breaks inside base64 runs removed, and each character's index in
    ``text``; None when nothing is wrapped."""
    if "\n" not in text:
        return None
    pieces: list[str] = []
    index: list[int] = []
    last = 0
    for m in _WRAP_RE.finditer(text):
        pieces.append(text[last:m.start()])
        index.extend(range(last, m.start()))
        last = m.end()
    if last == 0:
        return None
    pieces.append(text[last:])
    index.extend(range(last, len(text)))
    return "".join(pieces), index


def utf16_bytes(pattern: str) -> bytes:
    """The bytes of ASCII ``pattern`` in UTF-16, little- or big-endian."""
    # Little- and big-endian UTF-16 of ASCII differ by where the NUL of each character sits;
    # dropping the last (little-endian) or first (big-endian) byte leaves the same bytes.
    return pattern.encode("utf-16-le")[:-1]


def byte_patterns(pattern: str, case_insensitive: bool) -> list[bytes]:
    """The byte strings a stored copy of ``pattern`` holds: UTF-8 and UTF-16 (either byte order),
    in every letter case when ``case_insensitive``. Used on BLOB/bytea columns and raw files."""
    variants = [pattern]
    if case_insensitive:
        letters = [i for i, ch in enumerate(pattern) if ch.isascii() and ch.isalpha()]
        variants = []
        for mask in range(1 << len(letters)):
            chars = list(pattern.lower())
            for bit, i in enumerate(letters):
                if mask >> bit & 1:
                    chars[i] = chars[i].upper()
            variants.append("".join(chars))
    out: list[bytes] = []
    for v in variants:
        out += [v.encode("utf-8"), utf16_bytes(v)]
    return list(dict.fromkeys(out))


def texts_of_bytes(data: bytes) -> list[str]:
    """How to read stored bytes as text: UTF-8, and UTF-16 where a canary occurs in UTF-16 (a BLOB
    written by a Windows program, a file embedding it).

    UTF-16 is read little-endian from the canary's byte parity. For text of U+0000..U+00FF that
    also reads big-endian bytes correctly (each character is its low byte beside a NUL, the
    NUL after it instead of before), and a NUL appended at the end completes the last one;
    decoding both byte orders would read ASCII twice, once shifted by a character."""
    texts = [data.decode("utf-8", errors="replace")]
    if b"\0" in data:
        lowered = data.lower()
        for probe in (utf16_bytes(LITERAL), utf16_bytes(LEGACY_MARKER)):
            at = lowered.find(probe)
            if at >= 0:
                piece = data[at % 2:]
                texts.append((piece + b"\0" * (len(piece) % 2)).decode("utf-16-le", errors="replace"))
    return list(dict.fromkeys(texts))


class Matcher:
    """Finds every form of a fixed set of needles in texts; built once, used on many texts.

    Each kind of form is looked up from something cheap found in the text first (a canary, a
    base64 literal, a hex token, a weak value), so the cost per text does not grow with the
    number of needles.
    """

    def __init__(self, needles: Iterable[Needle], forms: Collection[str] | None = None):
        self.forms = check_forms(forms)
        self.needles = list(dict.fromkeys(n for n in needles if n.value))
        self._by_anchor: dict[str, list[tuple[Needle, re.Pattern[str] | None, list[re.Pattern[str]]]]] = {}
        self._unanchored: list[tuple[Needle, re.Pattern[str] | None, list[re.Pattern[str]]]] = []
        self._base64: list[tuple[Needle, str]] = []
        self._hashes: dict[str, list[tuple[Needle, str]]] = {}
        self._weak: dict[str, list[Needle]] = {}
        # token key -> the needle of a subject's canary alone (field TOKEN_FIELD; see canary_needles)
        self._tokens: dict[str, Needle] = {}
        text_wanted = {"exact", "casefold"} & set(self.forms)
        legacy = False
        for needle in self.needles:
            if needle.weak:
                if "exact" in self.forms:
                    self._weak.setdefault(needle.value, []).append(needle)
                continue
            anchor = CANARY_RE.search(needle.value.lower())
            legacy = legacy or bool(anchor and is_legacy(anchor.group()))
            if needle.field == TOKEN_FIELD:
                if anchor and "token" in self.forms:
                    self._tokens.setdefault(token_key(anchor.group()), needle)
                if anchor and "base64" in self.forms:
                    # The canary alone, base64-encoded (in either of its forms).
                    for form in dict.fromkeys((anchor.group(), short_canary(anchor.group()))):
                        self._base64 += [(needle, core) for core in base64_cores(form.encode())]
                continue
            plain = re.compile(re.escape(needle.value), re.IGNORECASE) if text_wanted else None
            urls = [
                re.compile(re.escape(encoded), re.IGNORECASE)
                for encoded in (_url_forms(needle.value) if "urlencoded" in self.forms else [])
            ]
            entry = (needle, plain, urls)
            if anchor:
                self._by_anchor.setdefault(token_key(anchor.group()), []).append(entry)
            else:
                self._unanchored.append(entry)
            if "base64" in self.forms:
                for core in base64_cores(needle.value.encode("utf-8")):
                    self._base64.append((needle, core))
            for digest, kind in hash_digests(needle.value).items():
                if kind in self.forms:
                    self._hashes.setdefault(digest, []).append((needle, kind))
        self._b64_probes = [p for p, _ in candidate_patterns(MARKER)]
        # Every base64 core of a value holding this format's marker holds the literal (any case)
        # at a fixed offset: from each place the literal occurs, one dictionary lookup per
        # (offset, length) tells which cores start there, where a search per core cost a pass
        # over the text each (450 searches per candidate value with 50 subjects).
        self._b64_at: dict[tuple[int, int], dict[str, list[Needle]]] = {}
        self._b64_rest: list[tuple[Needle, str]] = []
        for needle, core in self._base64:
            offset = core.lower().find(LITERAL)
            if offset < 0:
                self._b64_rest.append((needle, core))
            else:
                self._b64_at.setdefault((offset, len(core)), {}).setdefault(core, []).append(needle)
        if legacy:
            self._b64_probes += [p for p, ci in candidate_patterns(LEGACY_MARKER) if not ci]
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
        lowered = text.lower()
        canaries = []
        if (self._by_anchor or self._tokens) and (LITERAL in lowered or LEGACY_MARKER in lowered):
            canaries = [m for m in _ANCHOR_RE.finditer(lowered)]
            for key in dict.fromkeys(token_key(m.group(1)) for m in canaries):
                entries.extend(self._by_anchor.get(key, ()))
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
        if self._base64 and (
            self._unanchored or any(p in (lowered if p.islower() else text) for p in self._b64_probes)
            or "\n" in text
        ):
            self._find_base64(text, add)
        if self._hashes and len(text) >= 32:
            for m in _HEX_RUN_RE.finditer(text):
                if len(m.group()) in _HEX_LENGTHS:
                    for needle, kind in self._hashes.get(m.group().lower(), ()):
                        add(needle, kind, m.start(), m.end())
        if self._weak_re is not None:
            for m in self._weak_re.finditer(text):
                for needle in self._weak[m.group()]:
                    add(needle, "exact", m.start(), m.end())
        if self._tokens and canaries:
            self._find_tokens(canaries, found, add)
        # A token or base64 token inside a value already found says nothing more.
        spans = [(m.needle.subject_id, m.start, m.end) for m in found.values() if m.needle.field != TOKEN_FIELD]
        kept = [
            m for m in found.values()
            if m.needle.field != TOKEN_FIELD
            or not any(s == m.needle.subject_id and a <= m.start and m.end <= b for s, a, b in spans)
        ]
        return sorted(kept, key=lambda m: (m.start, m.needle.subject_id, m.needle.field, m.form))

    def _find_base64(self, text: str, add) -> None:
        views: list[tuple[str, list[int] | None]] = [(text, None)]
        unwrapped = _unwrapped(text)
        if unwrapped is not None:
            views.append(unwrapped)
        for view, index in views:

            def found(needle: Needle, at: int, length: int, index=index) -> None:
                if index is None:
                    add(needle, "base64", at, at + length)
                else:
                    add(needle, "base64", index[at], index[at + length - 1] + 1)

            if self._b64_at:
                lowered = view.lower()
                probe = lowered.find(LITERAL)
                while probe >= 0:
                    for (offset, length), cores in self._b64_at.items():
                        start = probe - offset
                        if start >= 0:
                            for needle in cores.get(view[start:start + length], ()):
                                found(needle, start, length)
                    probe = lowered.find(LITERAL, probe + 1)
            for needle, core in self._b64_rest:
                at = view.find(core)
                while at >= 0:
                    found(needle, at, len(core))
                    at = view.find(core, at + 1)

    def _find_tokens(self, canaries, found, add) -> None:
        for m in canaries:
            token = self._tokens.get(token_key(m.group(1)))
            if token is not None:
                add(token, "token", m.start(1), m.end(1))


@lru_cache(maxsize=32)
def _matcher(needles: tuple[Needle, ...], forms: tuple[str, ...]) -> Matcher:
    return Matcher(needles, forms)


def match_text(text: str, needles: Sequence[Needle], forms: Collection[str] | None = None) -> list[Match]:
    """Every needle/form found in ``text``. For many texts, build a ``Matcher`` once instead."""
    return _matcher(tuple(needles), check_forms(forms)).find(text)
