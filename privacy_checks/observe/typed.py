"""Typed canaries: a subject's card number, dates, instants and numbers, and how stores keep them.

A text canary is found by its token wherever it sits. A number or a date has no token: it is
found by value, in the column's own type (an INTEGER equal to the card number, a TIMESTAMP equal
to the instant, a DATE equal to the birth date) or as one of the texts systems write it as
(``4000 1234 …``, ``03/14/1985``, ``2026-11-29T10:11:12.739Z``, epoch milliseconds). This
module turns each typed needle into those values once per sweep (``TypedPlan``) and decides,
for a value a store returned, which needle and form it is.

What a match proves is part of each form (``Meaning.weak``): the card number and an instant to
the millisecond are proof; a birth date, an amount, an instant to the second and a card's last
four digits are supporting evidence only (real people and real events share them).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from .forms import Match, Needle

# kind -> whether a match of the value itself (not its coarser forms) proves presence
KINDS: dict[str, bool] = {"card_number": True, "date": False, "timestamp": True, "integer": True, "amount": False}

# The column families a typed value is compared in (see observe/stores/sql_typed.py).
FAMILIES = ("int", "decimal", "float", "date", "datetime", "time")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# SQLite's julianday() of the Unix epoch, in milliseconds (its own integer arithmetic).
_JULIAN_EPOCH_MS = 210866760000000
# Doubles are exact for integers below 2**53: larger values (a 16-digit card) are never floats.
_FLOAT_EXACT = 2**53
_BIGINT = 2**63


@dataclass(frozen=True)
class TypedNeedle(Needle):
    """A needle whose value is a number, a date or an instant, written canonically in ``value``:
    card digits, ``YYYY-MM-DD``, ISO 8601 UTC with microseconds and ``Z``, an integer, a decimal."""

    kind: str = "integer"


@dataclass(frozen=True)
class Meaning:
    """What a stored value equal to one of the plan's values means."""

    needle: TypedNeedle
    form: str
    weak: bool


def parse_moment(text: str) -> datetime:
    """An ISO 8601 instant as an aware UTC datetime (a value without a zone is UTC)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def card_groups(digits: str, sep: str) -> str:
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def _floats(x: float) -> list[float]:
    """The double nearest ``x``, its neighbours (arithmetic may land one step off), and the same as
    a 4-byte float read back as a double (a REAL column of PostgreSQL)."""
    single = struct.unpack("f", struct.pack("f", x))[0]
    return list(dict.fromkeys([x, math.nextafter(x, math.inf), math.nextafter(x, -math.inf), single]))


def _ms_floor(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _neighbours(moment: datetime, step: timedelta, floor: datetime) -> list[datetime]:
    """The instant truncated to a precision and rounded up to it (engines do either)."""
    return list(dict.fromkeys([floor, floor + step])) if floor != moment else [moment]


@dataclass
class _Values:
    """Typed values with what each means, by comparison key (``key_of``)."""

    by_key: dict[tuple, list[Meaning]] = field(default_factory=dict)
    # family -> the Python values a column of that family is compared with
    literals: dict[str, list[Any]] = field(default_factory=dict)
    texts: dict[str, list[Meaning]] = field(default_factory=dict)
    # family -> the same values as a dict, for membership: a list searched per value made a
    # plan of 50 subjects' values (2,100 literals) quadratic
    _seen: dict[str, dict[Any, None]] = field(default_factory=dict)

    def add(self, family: str, value: Any, meaning: Meaning) -> None:
        key = key_of(value)
        if key is None:
            return
        found = self.by_key.setdefault(key, [])
        if meaning not in found:
            found.append(meaning)
        seen = self._seen.setdefault(family, {})
        if value not in seen:
            seen[value] = None
            self.literals.setdefault(family, []).append(value)

    def text(self, rendering: str, meaning: Meaning) -> None:
        found = self.texts.setdefault(rendering, [])
        if meaning not in found:
            found.append(meaning)
        self.by_key.setdefault(("text", rendering), found)


def key_of(value: Any) -> tuple | None:
    """The comparison key of a value as a store returns it (driver types vary: SQLite gives
    text and numbers, PostgreSQL dates, Decimals and aware datetimes)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return ("datetime", value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value)
    if isinstance(value, date):
        return ("date", value)
    if isinstance(value, time):
        return ("time", value.replace(tzinfo=None))
    if isinstance(value, int):
        return ("num", Decimal(value))
    if isinstance(value, Decimal):
        return ("num", value.normalize()) if value.is_finite() else None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return ("num", Decimal(int(value))) if value.is_integer() and abs(value) < _FLOAT_EXACT else ("float", value)
    if isinstance(value, str):
        return ("text", value)
    return None


def keys_of(value: Any) -> list[tuple]:
    """Every key a returned value may match: a double also as the decimal it prints as."""
    key = key_of(value)
    if key is None:
        return []
    keys = [key]
    if key[0] == "float":
        try:
            keys.append(("num", Decimal(repr(value)).normalize()))
        except InvalidOperation:
            pass
    if key[0] == "num" and key[1] == key[1].to_integral_value():
        keys.append(("num", key[1].quantize(Decimal(1))))
    return keys


class TypedPlan:
    """Every typed needle's values and renderings, computed once per sweep.

    ``literals[family]`` are the values a column of that family is compared with inside the
    engine and ``proof_text_values`` the whole texts a text column is compared with: both only
    the values whose match is proof. ``text_values`` are every rendering (weak ones too), for
    kinds that search texts themselves; ``find`` locates renderings inside a longer text;
    ``meanings`` decodes a value a store returned, weak or not.
    """

    def __init__(self, needles: Iterable[TypedNeedle]):
        self.needles = [n for n in dict.fromkeys(needles) if n.value]
        self._values = _Values()
        self.cards: dict[str, list[TypedNeedle]] = {}  # subject -> its card numbers (for the last four)
        for needle in self.needles:
            adder = _ADDERS.get(needle.kind)
            if adder is not None:
                adder(needle, self._values)
            if needle.kind == "card_number":
                self.cards.setdefault(needle.subject_id, []).append(needle)
        self.text_values = sorted(self._values.texts)
        # What an engine compares: only values that prove something alone. A row returned for
        # one comes back whole, and ``find``/``meanings`` then name every value in it, weak ones
        # (a birth date, an amount, an instant to the second) included; a weak value alone
        # would only add a line of supporting evidence, at the cost of a longer list per column.
        self.literals = {
            fam: [v for v in values if self._proves(key_of(v))] for fam, values in self._values.literals.items()
        }
        self.proof_text_values = [t for t in self.text_values if self._proves(("text", t))]
        # Columns of these families come back with a candidate row (a weak value beside proof is
        # named), whether or not the family has a value to compare.
        self.read_families = {fam for fam, values in self._values.literals.items() if values}
        self._text_re = None
        if self.text_values:
            # A number inside a longer run of digits is another number.
            self._text_re = re.compile(f"(?<![0-9])(?:{trie_pattern(self.text_values)})(?![0-9])")

    def __bool__(self) -> bool:
        return bool(self.needles)

    def _proves(self, key: tuple | None) -> bool:
        return any(not m.weak for m in self._values.by_key.get(key, [])) if key is not None else False

    def compared(self, family: str) -> list[Any]:
        """The values a column of ``family`` is compared with, as Python values of that family's
        own type (every store kind renders them in its engine's types): an integer column with the
        integers (within 64 bits), a decimal column with those and the non-integral decimals, a
        floating-point column with the doubles and the integers a double holds exactly."""
        lit = self.literals
        numbers = [v for v in lit.get("int", []) if -_BIGINT < v < _BIGINT]
        if family == "int":
            return numbers
        if family == "decimal":
            return numbers + [v for v in lit.get("decimal", []) if v != v.to_integral_value()]
        if family == "float":
            return [float(v) for v in numbers if abs(v) < _FLOAT_EXACT] + list(lit.get("float", []))
        return list(lit.get(family, []))

    def meanings(self, value: Any) -> list[Meaning]:
        out: list[Meaning] = []
        for key in keys_of(value):
            out += [m for m in self._values.by_key.get(key, []) if m not in out]
        return out

    def find(self, text: str) -> list[Match]:
        """Renderings of typed values inside ``text`` (a whole value or part of a longer one)."""
        if self._text_re is None or not text:
            return []
        out = []
        for m in self._text_re.finditer(text):
            for meaning in self._values.texts[m.group()]:
                out.append(TypedMatch(meaning.needle, meaning.form, m.start(), m.end(), meaning.weak))
        return out

    def last_four(self, subject_id: str, value: Any) -> TypedNeedle | None:
        """The subject's card whose last four digits ``value`` is (alone, or behind a mask such as
        ``**** 1234``); read only in a row that holds the subject's canary."""
        for needle in self.cards.get(subject_id, []):
            last = needle.value[-4:]
            if isinstance(value, int) and not isinstance(value, bool) and value == int(last):
                return needle
            if isinstance(value, str) and re.fullmatch(rf"[^0-9]{{0,24}}{last}", value.strip()):
                return needle
        return None


def trie_pattern(words: Iterable[str]) -> str:
    """One regular expression matching exactly ``words``, longest first, written as a prefix tree.

    Fifty subjects' typed values have about 2,600 renderings. As a flat alternation Python's
    engine tries each at every position: 10.9 ms to search a 300-character text (measured); as a
    tree it follows one branch per character: 0.11 ms, and it compiles in about half the time."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy: the longer word is tried first

    return emit(trie)


@dataclass(frozen=True)
class TypedMatch(Match):
    weak: bool = False


def _card(needle: TypedNeedle, v: _Values) -> None:
    digits = needle.value
    proof = Meaning(needle, "exact", False)
    v.text(digits, proof)
    for sep, form in ((" ", "spaced"), ("-", "dashed")):
        v.text(card_groups(digits, sep), Meaning(needle, form, False))
    as_int = int(digits)
    integer = Meaning(needle, "integer", False)
    v.add("int", as_int, integer)
    v.add("decimal", Decimal(as_int), integer)
    if str(as_int) != digits:  # leading zeros lost on the way through a number
        v.text(str(as_int), integer)


_DATE_FORMATS = (
    ("%Y-%m-%d", "ISO text"), ("%m/%d/%Y", "text (month/day/year)"), ("%d/%m/%Y", "text (day/month/year)"),
    ("%d.%m.%Y", "text (day.month.year)"), ("%Y/%m/%d", "text (year/month/day)"), ("%Y%m%d", "text (yyyymmdd)"),
    ("%B %d, %Y", "text (month name)"), ("%d %b %Y", "text (month name)"), ("%b %d, %Y", "text (month name)"),
    ("%Y-%m-%d 00:00:00", "text (midnight)"), ("%Y-%m-%dT00:00:00", "text (midnight)"),
)


def _date(needle: TypedNeedle, v: _Values) -> None:
    day = date.fromisoformat(needle.value)
    v.add("date", day, Meaning(needle, "date", True))
    v.add("datetime", datetime(day.year, day.month, day.day), Meaning(needle, "midnight timestamp", True))
    for fmt, form in _DATE_FORMATS:
        v.text(day.strftime(fmt), Meaning(needle, form, True))
    compact = int(day.strftime("%Y%m%d"))
    v.add("int", compact, Meaning(needle, "integer (yyyymmdd)", True))
    v.add("decimal", Decimal(compact), Meaning(needle, "integer (yyyymmdd)", True))


def _timestamp(needle: TypedNeedle, v: _Values) -> None:
    moment = parse_moment(needle.value)
    naive = moment.replace(tzinfo=None)
    exact = Meaning(needle, "timestamp", False)
    to_ms = Meaning(needle, "timestamp (ms)", False)
    to_s = Meaning(needle, "timestamp (s)", True)
    ms = _neighbours(naive, timedelta(milliseconds=1), _ms_floor(naive))
    seconds = _neighbours(naive, timedelta(seconds=1), naive.replace(microsecond=0))
    v.add("datetime", naive, exact)
    for m in ms:
        v.add("datetime", m, exact if m == naive else to_ms)
    for s in seconds:
        v.add("datetime", s, to_s)
    v.add("time", naive.time(), Meaning(needle, "time of day", True))
    # epoch numbers: integers of µs, ms and s; a double of seconds with a fraction; Julian days
    micros = (moment - _EPOCH) // timedelta(microseconds=1)
    v.add("int", micros, Meaning(needle, "epoch µs", False))
    v.add("decimal", Decimal(micros), Meaning(needle, "epoch µs", False))
    for m in ms:
        epoch_ms = (m.replace(tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
        v.add("int", epoch_ms, Meaning(needle, "epoch ms", False))
        v.add("decimal", Decimal(epoch_ms), Meaning(needle, "epoch ms", False))
        v.text(str(epoch_ms), Meaning(needle, "epoch ms", False))
        for x in _floats((epoch_ms + _JULIAN_EPOCH_MS) / 86400000.0):
            v.add("float", x, Meaning(needle, "julian day", False))
    for s in seconds:
        epoch_s = int((s.replace(tzinfo=UTC) - _EPOCH).total_seconds())
        v.add("int", epoch_s, Meaning(needle, "epoch s", True))
        v.add("decimal", Decimal(epoch_s), Meaning(needle, "epoch s", True))
    fractional = Decimal(micros) / Decimal(1_000_000)
    v.add("decimal", fractional, Meaning(needle, "epoch s (fractional)", False))
    v.text(f"{fractional:f}", Meaning(needle, "epoch s (fractional)", False))
    for x in _floats(micros / 1_000_000):
        v.add("float", x, Meaning(needle, "epoch s (fractional)", False))
    # ISO 8601 and the SQL rendering, to the microsecond and the millisecond
    renderings = [(naive, "%f", exact)] + [(m, "ms", exact if m == naive else to_ms) for m in ms]
    for m, digits, meaning in renderings:
        fraction = f"{m.microsecond:06d}" if digits == "%f" else f"{m.microsecond // 1000:03d}"
        base = m.strftime("%Y-%m-%d") + "{sep}" + m.strftime("%H:%M:%S") + "." + fraction
        for sep in ("T", " "):
            for zone in ("Z", "+00:00", ""):
                v.text(base.format(sep=sep) + zone, Meaning(needle, "ISO text" if meaning is exact else
                                                              "ISO text (ms)", meaning.weak))
    for s in seconds:
        for sep in ("T", " "):
            for zone in ("Z", "+00:00", ""):
                v.text(s.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + zone, Meaning(needle, "ISO text (s)", True))


def _integer(needle: TypedNeedle, v: _Values) -> None:
    number = int(needle.value)
    meaning = Meaning(needle, "integer", False)
    v.add("int", number, meaning)
    v.add("decimal", Decimal(number), meaning)
    if abs(number) < _FLOAT_EXACT:
        v.add("float", float(number), meaning)
    v.text(str(number), Meaning(needle, "text", False))
    if abs(number) >= 1000:
        v.text(f"{number:,}", Meaning(needle, "text", False))


def _amount(needle: TypedNeedle, v: _Values) -> None:
    amount = Decimal(needle.value)
    meaning = Meaning(needle, "amount", True)
    v.add("decimal", amount, meaning)
    for x in _floats(float(amount)):
        v.add("float", x, meaning)
    cents = int((amount * 100).to_integral_value())
    v.add("int", cents, Meaning(needle, "cents", True))
    v.add("decimal", Decimal(cents), Meaning(needle, "cents", True))
    for text in (f"{amount:.2f}", f"{amount:,.2f}", f"${amount:,.2f}", f"{amount:.2f}".rstrip("0").rstrip(".")):
        v.text(text, Meaning(needle, "text", True))


_ADDERS = {"card_number": _card, "date": _date, "timestamp": _timestamp, "integer": _integer, "amount": _amount}

# A card's last four digits beside the subject's canary (observe/stores/base.py: last_four_hits).
LAST_FOUR = "last four"
# A value of each kind, only to ask the adders above which forms they write.
_SAMPLE = {"card_number": "0093910000000018", "date": "1985-03-14", "timestamp": "2026-11-29T10:11:12.739123Z",
           "integer": "1573259275", "amount": "131.97"}


@lru_cache(maxsize=1)
def forms_by_kind() -> dict[str, tuple[str, ...]]:
    """Every form a finding of each typed kind can carry (what ``form:`` of a retention exception
    may name), read off the renderings themselves so the list never drifts from the sweep."""
    out = {}
    for kind, adder in _ADDERS.items():
        values = _Values()
        adder(TypedNeedle("sample", kind, _SAMPLE[kind], kind=kind), values)
        forms = dict.fromkeys(m.form for found in values.by_key.values() for m in found)
        if kind == "card_number":
            forms[LAST_FOUR] = None
        out[kind] = tuple(forms)
    return out


def split_typed(needles: Iterable[Needle]) -> tuple[list[Needle], list[TypedNeedle]]:
    """(text needles, typed needles)."""
    text, typed = [], []
    for n in needles:
        (typed if isinstance(n, TypedNeedle) else text).append(n)
    return text, typed
