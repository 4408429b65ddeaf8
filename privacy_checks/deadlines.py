"""Calendars and the response-time rules (SLAs) applied to the ledger's privacy requests.

Every rule cites its source (see ``Rule.clause``). Days are counted in one time zone, the
business's (``zone``, UTC unless the caller says otherwise); every instant handed in must be
timezone-aware, and every instant handed back is UTC. A period "ends with the day" means it ends
at the last instant of that day in the counting zone.

Conventions, each a reading of the source that a reviewer should be able to check:

* The day of receipt is not counted (Cal. Civ. Code §10 "excluding the first day, and including
  the last"; Regulation 1182/71 Art. 3(1)), so "45 calendar days after receipt" of a request
  received on 1 January ends with 15 February.
* CCPA calendar-day periods do not roll forward over weekends or holidays: 11 CCR §7021(b) says
  "no later than 45 calendar days". (Cal. Civ. Code §10 would exclude a last day that is a
  holiday; applying it would only make a deadline later, never earlier.)
* Business days are Monday to Friday except the holidays of the calendar given; the default is
  the California state holidays (``california_state_holidays``).
"""

from __future__ import annotations

import calendar as _calendar
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Protocol

import yaml

from privacy_checks.clauses import ClauseRef, resolve

REQUEST_TYPES = ("access", "delete", "correct", "opt_out", "limit", "object", "portability")
REGIMES = ("ccpa", "gdpr")

Outcome = Literal["passed", "failed", "pending"]


# ---------------------------------------------------------------------------------------------
# Calendars


class Calendar(Protocol):
    name: str

    def is_working_day(self, day: date) -> bool: ...

    def add(self, start: date, n: int) -> date: ...


@dataclass(frozen=True)
class CalendarDays:
    """Every day counts."""

    name: str = "calendar days"

    def is_working_day(self, day: date) -> bool:
        return True

    def add(self, start: date, n: int) -> date:
        _check_count(n)
        return _as_date(start) + timedelta(days=n)


class BusinessDays:
    """Monday to Friday, except holidays.

    ``holidays`` are fixed dates (a mapping date -> name, or just dates); ``rules`` computes a
    year's holidays on demand, so a calendar built from rules works for any year.
    """

    def __init__(
        self,
        holidays: Mapping[date, str] | Iterable[date] = (),
        *,
        rules: Callable[[int], Mapping[date, str]] | None = None,
        name: str = "business days",
    ) -> None:
        if isinstance(holidays, Mapping):
            fixed = {_as_date(d): str(n) for d, n in holidays.items()}
        else:
            fixed = {_as_date(d): "holiday" for d in holidays}
        self._fixed = fixed
        self._rules = rules
        self._by_year: dict[int, Mapping[date, str]] = {}
        self.name = name

    def __repr__(self) -> str:
        return f"BusinessDays(name={self.name!r}, fixed holidays={len(self._fixed)})"

    def holidays_in(self, year: int) -> dict[date, str]:
        found = dict(self._year_rules(year))
        found.update({d: n for d, n in self._fixed.items() if d.year == year})
        return dict(sorted(found.items()))

    def holiday_name(self, day: date) -> str | None:
        day = _as_date(day)
        return self._fixed.get(day) or self._year_rules(day.year).get(day)

    def is_working_day(self, day: date) -> bool:
        day = _as_date(day)
        return day.weekday() < 5 and self.holiday_name(day) is None

    def next_working_day(self, day: date) -> date:
        """``day`` itself if it is a working day, else the first working day after it."""
        day = _as_date(day)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add(self, start: date, n: int) -> date:
        """The n-th working day after ``start`` (``start`` itself is never counted)."""
        _check_count(n)
        day = _as_date(start)
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return day

    def with_holidays(self, extra: Mapping[date, str] | Iterable[date], name: str | None = None) -> BusinessDays:
        fixed: dict[date, str] = dict(self._fixed)
        if isinstance(extra, Mapping):
            fixed.update({_as_date(d): str(n) for d, n in extra.items()})
        else:
            fixed.update({_as_date(d): "holiday" for d in extra})
        return BusinessDays(fixed, rules=self._rules, name=name or self.name)

    def _year_rules(self, year: int) -> Mapping[date, str]:
        if self._rules is None:
            return {}
        if year not in self._by_year:
            self._by_year[year] = MappingProxyType(dict(self._rules(year)))
        return self._by_year[year]


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year, month, _calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def california_state_holidays(year: int) -> dict[date, str]:
    """The days California state offices close, by the rules on CalHR's state holiday list.

    CalHR's list is narrower than Gov. Code §6700, which also names Lincoln Day, Admission Day,
    Columbus Day, Native American Day (4th Friday of September), Juneteenth (added by AB 1655,
    2022) and others: those are not paid state-office holidays. CalHR's 2013 and 2014 lists and the
    State's 2024 list (as republished) omit them, Juneteenth and Native American Day included. We
    could not confirm a CalHR list for 2026 or 2027, so they are left out; a business that closes
    on them adds them with ``load_holidays``.

    Observed dates (Gov. Code §6701 and CalHR's notes): a holiday on a Sunday is observed on the
    Monday after; a holiday on a Saturday is not moved (state workers get holiday credit instead,
    offices stay open on the Friday), except Veterans Day, observed on the Friday before.
    """
    mon, thu = 0, 3
    fixed = {
        date(year, 1, 1): "New Year's Day",
        date(year, 3, 31): "Cesar Chavez Day",
        date(year, 7, 4): "Independence Day",
        date(year, 11, 11): "Veterans Day",
        date(year, 12, 25): "Christmas Day",
    }
    days: dict[date, str] = {
        _nth_weekday(year, 1, mon, 3): "Martin Luther King Jr. Day",
        _nth_weekday(year, 2, mon, 3): "Presidents' Day",
        _last_weekday(year, 5, mon): "Memorial Day",
        _nth_weekday(year, 9, mon, 1): "Labor Day",
    }
    thanksgiving = _nth_weekday(year, 11, thu, 4)
    days[thanksgiving] = "Thanksgiving Day"
    days[thanksgiving + timedelta(days=1)] = "Day after Thanksgiving"
    for day, name in fixed.items():
        if day.weekday() == 6:
            days[day + timedelta(days=1)] = f"{name} (observed)"
        elif day.weekday() == 5 and name == "Veterans Day":
            days[day - timedelta(days=1)] = f"{name} (observed)"
        days[day] = name
    return dict(sorted(days.items()))


CALIFORNIA = BusinessDays(rules=california_state_holidays, name="California state business days")

# 1182/71 Art. 2(1): public holidays are those of the Member State or institution where action is
# to be taken; none is assumed, so only Saturdays and Sundays move a GDPR deadline unless the
# caller supplies that state's holidays.
EU_WORKING_DAYS = BusinessDays(name="working days (Mon-Fri, no public holidays configured)")


def california_business_days(extra: str | Path | Mapping[date, str] | Iterable[date] | None = None) -> BusinessDays:
    """California state business days, plus the business's own holidays (a YAML path or dates)."""
    if extra is None:
        return CALIFORNIA
    if isinstance(extra, (str, Path)):
        extra = load_holidays(extra)
    return CALIFORNIA.with_holidays(extra)


class _NoTimestampLoader(yaml.SafeLoader):
    """Leaves dates as text, so a bad one is reported by us with its entry, not by the YAML parser."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def load_holidays(path: str | Path) -> dict[date, str]:
    """Extra holidays from YAML: a list (optionally under a ``holidays:`` key) whose entries are
    either a date (``2026-06-19``) or a mapping ``{date: 2026-06-19, name: Juneteenth}``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read holidays file: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_NoTimestampLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and set(data) == {"holidays"}:
        data = data["holidays"]
    if data is None:
        return {}
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of holidays (optionally under 'holidays:'), "
                         f"got {type(data).__name__}")
    found: dict[date, str] = {}
    for index, entry in enumerate(data, start=1):
        where = f"{path}: holiday entry {index}"
        if isinstance(entry, dict):
            unknown = set(entry) - {"date", "name"}
            if unknown or "date" not in entry:
                raise ValueError(f"{where} ({entry!r}): expected keys 'date' and optional 'name'")
            raw, name = entry["date"], entry.get("name")
        else:
            raw, name = entry, None
        if not isinstance(raw, str) or not _ISO_DATE.match(raw.strip()):
            raise ValueError(f"{where}: {raw!r} is not a date in the form YYYY-MM-DD")
        try:
            day = date.fromisoformat(raw.strip())
        except ValueError as exc:
            raise ValueError(f"{where}: {raw!r} is not a valid date ({exc})") from None
        found[day] = str(name) if name else f"holiday from {path.name}"
    return found


# ---------------------------------------------------------------------------------------------
# Period arithmetic


def add_business_days(start: date, n: int, calendar: Calendar | None = None) -> date:
    """The n-th working day of ``calendar`` after ``start`` (default: California state business days)."""
    if isinstance(start, datetime):
        raise TypeError("add_business_days takes a date: convert the instant to the business's zone first")
    return (calendar or CALIFORNIA).add(start, n)


def add_months(day: date, months: int) -> date:
    """Same day of the month ``months`` later, or that month's last day if it has no such day."""
    if isinstance(day, datetime):
        raise TypeError("add_months takes a date")
    if not isinstance(months, int) or months < 0:
        raise ValueError(f"months must be a non-negative integer, not {months!r}")
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, _calendar.monthrange(year, month)[1]))


def end_of_day(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time.max, tzinfo=zone)


def add_months_1182_71(
    received: datetime,
    months: int,
    holidays: BusinessDays | Mapping[date, str] | Iterable[date] = (),
) -> datetime:
    """When a period of ``months`` from the event at ``received`` ends, per Regulation (EEC,
    Euratom) No 1182/71.

    Art. 3(1): the day of the event is not counted. Art. 3(2)(c): the period ends with the expiry
    of the last hour of the day in the last month with the same date as the event's day, or of that
    month's last day if it has no such date. Art. 3(4): if that day is a Saturday, Sunday or public
    holiday, the period ends with the expiry of the last hour of the following working day.

    Days are those of ``received``'s own time zone, and the result is in that zone. ``holidays``
    are the public holidays where the action is to be taken (Art. 2(1)); none by default.
    """
    _require_zone(received, "received")
    calendar = holidays if isinstance(holidays, BusinessDays) else BusinessDays(holidays)
    last = add_months(received.date(), months)
    return end_of_day(calendar.next_working_day(last), received.tzinfo)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True)
class Rule:
    id: str
    regulation: str
    clause: str
    description: str
    refs: tuple[ClauseRef, ...] = ()
    # (receipt in the counting zone, calendar) -> end of the period, in the counting zone
    _due: Callable[[datetime, Calendar], datetime] | None = field(default=None, repr=False, compare=False)

    def due_at(self, received_at: datetime, calendar: Calendar | None = None, zone: tzinfo = UTC) -> datetime:
        """The instant (UTC) the period ends for a request received at ``received_at``."""
        _require_zone(received_at, "received_at")
        if self._due is None:
            raise ValueError(f"rule {self.id} has no due-date computation")
        calendar = calendar or (EU_WORKING_DAYS if self.regulation == "gdpr" else CALIFORNIA)
        return self._due(received_at.astimezone(zone), calendar).astimezone(UTC)


def _calendar_days(n: int) -> Callable[[datetime, Calendar], datetime]:
    return lambda received, _cal: end_of_day(received.date() + timedelta(days=n), received.tzinfo)  # type: ignore[arg-type]


def _business_days(n: int) -> Callable[[datetime, Calendar], datetime]:
    return lambda received, cal: end_of_day(cal.add(received.date(), n), received.tzinfo)  # type: ignore[arg-type]


def _months(n: int) -> Callable[[datetime, Calendar], datetime]:
    def due(received: datetime, cal: Calendar) -> datetime:
        holidays = cal if isinstance(cal, BusinessDays) else ()
        return add_months_1182_71(received, n, holidays)

    return due


def _refs(*pairs: tuple[str, str]) -> tuple[ClauseRef, ...]:
    return tuple(resolve(family, ref) for family, ref in pairs)


def _rule(id: str, regulation: str, refs: tuple[ClauseRef, ...], description: str, due, clause: str = "") -> Rule:
    return Rule(id, regulation, clause or "; ".join(r.display for r in refs), description, refs, due)


CCPA_ACKNOWLEDGE = _rule(
    "ccpa.acknowledge", "ccpa", _refs(("ccpa_regs", "7021(a)")),
    "Confirm receipt of a request to delete, correct or know, and explain how it will be processed, "
    "no later than 10 business days after receiving it (unless already granted or denied).",
    _business_days(10),
)
CCPA_RESPOND = _rule(
    "ccpa.respond", "ccpa", _refs(("ccpa_regs", "7021(b)"), ("ccpa", "1798.130(a)(2)(A)")),
    "Respond to a request to delete, correct or know no later than 45 calendar days after receipt; "
    "the period runs from receipt even while verification is pending.",
    _calendar_days(45),
)
CCPA_RESPOND_EXTENDED = _rule(
    "ccpa.respond.extended", "ccpa", _refs(("ccpa_regs", "7021(b)"), ("ccpa", "1798.130(a)(2)(A)")),
    "One extension of up to 45 more calendar days, 90 in total from receipt, only with notice and an "
    "explanation of the reason given within the first 45 days.",
    _calendar_days(90),
)
CCPA_OPT_OUT = _rule(
    "ccpa.opt_out", "ccpa", _refs(("ccpa_regs", "7026(f)"), ("ccpa", "1798.120")),
    "Comply with a request to opt out of sale/sharing as soon as feasibly possible, no later than "
    "15 business days from receipt.",
    _business_days(15),
    clause="11 CCR §7026(f)",
)
# The regulation on requests to limit (11 CCR §7027, whose subsection (g) says how to comply)
# is not in our reference table, and we could not confirm the text of its deadline; the same
# 15-business-day period as for opt-out is applied and the citation says so.
CCPA_LIMIT = _rule(
    "ccpa.limit", "ccpa", _refs(("ccpa", "1798.121"), ("ccpa_regs", "7026(f)")),
    "Comply with a request to limit the use of sensitive personal information within 15 business "
    "days from receipt: the period 11 CCR §7026(f) sets for opt-out, applied by analogy (the "
    "deadline in 11 CCR §7027(g) is not confirmed here).",
    _business_days(15),
    clause="Cal. Civ. Code §1798.121; 15 business days as in 11 CCR §7026(f)",
)
GDPR_RESPOND = _rule(
    "gdpr.respond", "gdpr", _refs(("gdpr", "Art. 12(3)")),
    "Provide information on action taken on a request under Articles 15 to 22 without undue delay "
    "and in any event within one month of receipt (period per Regulation (EEC, Euratom) No 1182/71).",
    _months(1),
)
# "Extended by two further months": counted, like the first month, from receipt (three months
# in all), which never ends earlier than counting two months from the end of the first.
GDPR_RESPOND_EXTENDED = _rule(
    "gdpr.respond.extended", "gdpr", _refs(("gdpr", "Art. 12(3)")),
    "Extended by two further months where necessary, only if the data subject was informed of the "
    "extension, with the reasons for the delay, within one month of receipt.",
    _months(3),
)

# request type -> (rule, rule once validly extended or None, acknowledgement rule or None)
_CCPA_RULES: dict[str, tuple[Rule, Rule | None, Rule | None]] = {
    "access": (CCPA_RESPOND, CCPA_RESPOND_EXTENDED, CCPA_ACKNOWLEDGE),
    "delete": (CCPA_RESPOND, CCPA_RESPOND_EXTENDED, CCPA_ACKNOWLEDGE),
    "correct": (CCPA_RESPOND, CCPA_RESPOND_EXTENDED, CCPA_ACKNOWLEDGE),
    "opt_out": (CCPA_OPT_OUT, None, None),
    "limit": (CCPA_LIMIT, None, None),
}
_CCPA_NO_RULE = {
    "portability": "the CCPA has no separate portability request: the portable copy is part of a "
                   "request to know ('access')",
    "object": "the CCPA has no request to object: use 'opt_out' or 'limit'",
}
# Art. 12(3) covers requests under Articles 15 to 22: access, rectification, erasure, restriction
# ('limit'), portability and objection (including to direct marketing, 'opt_out').
_GDPR_RULES: dict[str, tuple[Rule, Rule | None, Rule | None]] = {
    t: (GDPR_RESPOND, GDPR_RESPOND_EXTENDED, None) for t in REQUEST_TYPES
}


class NoRule(ValueError):
    """No deadline rule applies to this request type under this regime."""


def applicable_rules(regime: str, request_type: str) -> tuple[Rule, ...]:
    """The rules a request of this type is judged by (extended variants included)."""
    base, extended, ack = _rules_for(regime, request_type)
    return tuple(r for r in (ack, base, extended) if r is not None)


def _rules_for(regime: str, request_type: str) -> tuple[Rule, Rule | None, Rule | None]:
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; known: {', '.join(REGIMES)}")
    if request_type not in REQUEST_TYPES:
        raise ValueError(f"unknown request type {request_type!r}; known: {', '.join(REQUEST_TYPES)}")
    table = _CCPA_RULES if regime == "ccpa" else _GDPR_RULES
    if request_type not in table:
        raise NoRule(f"no CCPA deadline for a {request_type!r} request: {_CCPA_NO_RULE[request_type]}")
    return table[request_type]


# ---------------------------------------------------------------------------------------------
# Judging requests


class InvalidRequestDates(ValueError):
    """A request's recorded times are impossible (no zone, or before the request was received)."""


@dataclass(frozen=True)
class RequestRecord:
    id: str
    type: str
    received_at: datetime
    acknowledged_at: datetime | None = None
    completed_at: datetime | None = None
    extended_until: datetime | None = None
    extension_notice_at: datetime | None = None
    extension_reason: str | None = None
    status: str = "open"

    def __post_init__(self) -> None:
        if self.type not in REQUEST_TYPES:
            raise ValueError(f"request {self.id}: unknown type {self.type!r}; known: {', '.join(REQUEST_TYPES)}")

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> RequestRecord:
        """A request from a ledger row (``request_id``, ``kind`` and ISO 8601 text for the times)."""
        rid = str(row.get("request_id") or row.get("id"))
        times: dict[str, datetime | None] = {}
        for name in ("received_at", "acknowledged_at", "completed_at", "extended_until", "extension_notice_at"):
            raw = row.get(name)
            if raw is None or isinstance(raw, datetime):
                times[name] = raw
                continue
            try:
                times[name] = datetime.fromisoformat(str(raw))
            except ValueError:
                raise InvalidRequestDates(f"request {rid}: {name} {raw!r} is not an ISO 8601 time") from None
        return cls(
            id=rid,
            type=str(row.get("kind") or row.get("type")),
            extension_reason=row.get("extension_reason"),  # type: ignore[arg-type]
            status=str(row.get("status") or "open"),
            **times,  # type: ignore[arg-type]
        )

    @property
    def claims_extension(self) -> bool:
        return any(v is not None for v in (self.extended_until, self.extension_notice_at, self.extension_reason))

    def check_dates(self) -> None:
        """Raise InvalidRequestDates naming the request and the field if any time is impossible."""
        instants = ("received_at", "acknowledged_at", "completed_at", "extended_until", "extension_notice_at")
        for name in instants:
            value = getattr(self, name)
            if value is None:
                if name == "received_at":
                    raise InvalidRequestDates(f"request {self.id}: received_at is missing")
                continue
            if not isinstance(value, datetime):
                raise InvalidRequestDates(f"request {self.id}: {name} must be a datetime, not {type(value).__name__}")
            if value.tzinfo is None or value.utcoffset() is None:
                raise InvalidRequestDates(f"request {self.id}: {name} {value.isoformat()} has no time zone")
        for name in instants[1:]:
            value = getattr(self, name)
            if value is not None and value < self.received_at:
                raise InvalidRequestDates(
                    f"request {self.id}: {name} {_iso(value)} is before received_at {_iso(self.received_at)}"
                )
        if self.status == "completed" and self.completed_at is None:
            raise InvalidRequestDates(f"request {self.id}: status is 'completed' but completed_at is missing")


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    rule: Rule
    due_at: datetime
    days_late: int | None
    message: str


def judge(
    request: RequestRecord,
    now: datetime,
    regime: str = "ccpa",
    calendar: Calendar | None = None,
    *,
    zone: tzinfo = UTC,
) -> Judgement:
    """Was the request answered in time, is it late, or is it still within its deadline?"""
    base, extended, _ack = _rules_for(regime, request.type)
    request.check_dates()
    _require_zone(now, "now")
    calendar = calendar or (CALIFORNIA if regime == "ccpa" else EU_WORKING_DAYS)

    rule, due = base, base.due_at(request.received_at, calendar, zone)
    notes: list[str] = []
    if request.claims_extension:
        if extended is None:
            notes.append(f"extension ignored: {base.clause} allows none")
        else:
            problem = _extension_problem(request, due, zone)
            if problem:
                notes.append(f"{problem}; the original due date applies")
            else:
                rule, due = extended, extended.due_at(request.received_at, calendar, zone)
                if request.extended_until is not None and request.extended_until > due:
                    notes.append(f"extended_until {_iso(request.extended_until, zone)} is beyond the "
                                 f"longest extension the rule allows")
    suffix = "".join(f"; {n}" for n in notes)

    if request.completed_at is not None:
        if request.completed_at <= due:
            return Judgement("passed", rule, due, None,
                             f"completed {_iso(request.completed_at, zone)}, due {_iso(due, zone)}{suffix}")
        late = _days_after(request.completed_at, due, zone)
        return Judgement("failed", rule, due, late,
                         f"completed {_days(late)} late (due {_iso(due, zone)}){suffix}")
    if now <= due:
        return Judgement("pending", rule, due, None, f"pending, due {_iso(due, zone)} ({_zone_name(zone)}){suffix}")
    late = _days_after(now, due, zone)
    return Judgement("failed", rule, due, late, f"open {_days(late)} past due {_iso(due, zone)}{suffix}")


def judge_acknowledgement(
    request: RequestRecord,
    now: datetime,
    calendar: Calendar | None = None,
    *,
    zone: tzinfo = UTC,
) -> Judgement:
    """11 CCR §7021(a): was receipt of a CCPA request to delete, correct or know confirmed in time?

    A response (grant or denial) also confirms receipt, as §7021(a) exempts a business that has
    already granted or denied the request.
    """
    _base, _extended, rule = _rules_for("ccpa", request.type)
    if rule is None:
        raise NoRule(f"no acknowledgement deadline for a CCPA {request.type!r} request "
                     f"(11 CCR §7021(a) covers requests to delete, correct and know)")
    request.check_dates()
    _require_zone(now, "now")
    due = rule.due_at(request.received_at, calendar or CALIFORNIA, zone)
    confirmations = [t for t in (request.acknowledged_at, request.completed_at) if t is not None]
    if confirmations:
        confirmed = min(confirmations)
        how = "acknowledged" if confirmed == request.acknowledged_at else "answered without a separate acknowledgement"
        if confirmed <= due:
            return Judgement("passed", rule, due, None, f"{how} {_iso(confirmed, zone)}, due {_iso(due, zone)}")
        late = _days_after(confirmed, due, zone)
        return Judgement("failed", rule, due, late, f"{how} {_days(late)} late (due {_iso(due, zone)})")
    if now <= due:
        return Judgement("pending", rule, due, None,
                         f"not yet acknowledged; pending, due {_iso(due, zone)} ({_zone_name(zone)})")
    late = _days_after(now, due, zone)
    return Judgement("failed", rule, due, late, f"not acknowledged, {_days(late)} past due {_iso(due, zone)}")


def _extension_problem(request: RequestRecord, first_due: datetime, zone: tzinfo) -> str | None:
    notice = request.extension_notice_at
    if notice is None:
        return "extension without notice"
    if notice > first_due:
        return (f"extension without notice within the first period (notice {_iso(notice, zone)}, "
                f"first period ended {_iso(first_due, zone)})")
    if not (request.extension_reason or "").strip():
        return "extension without a reason given to the consumer"
    return None


# ---------------------------------------------------------------------------------------------
# helpers


def _require_zone(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone")


def _as_date(value: date) -> date:
    if isinstance(value, datetime):
        raise TypeError("expected a date, got a datetime: take its date in the business's zone")
    if not isinstance(value, date):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return value


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"number of days must be a non-negative integer, not {n!r}")


def _days_after(instant: datetime, due: datetime, zone: tzinfo) -> int:
    """Calendar days from the due day to the day of ``instant``, in the counting zone (at least 1)."""
    return max(1, (instant.astimezone(zone).date() - due.astimezone(zone).date()).days)


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _iso(instant: datetime, zone: tzinfo = UTC) -> str:
    return instant.astimezone(zone).isoformat(timespec="seconds")


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)
