"""Calendars, period arithmetic and SLA judgements.

Every expected date below was worked out by hand (the reasoning is in the comment beside it),
never by calling the code under test. A period "ends with day D" means it ends at the last
instant of D in the counting zone, written here as eod(D).
"""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from privacy_checks.deadlines import (
    CALIFORNIA,
    CCPA_ACKNOWLEDGE,
    CCPA_LIMIT,
    CCPA_OPT_OUT,
    CCPA_RESPOND,
    CCPA_RESPOND_EXTENDED,
    EU_WORKING_DAYS,
    GDPR_RESPOND,
    GDPR_RESPOND_EXTENDED,
    BusinessDays,
    CalendarDays,
    InvalidRequestDates,
    NoRule,
    RequestRecord,
    add_business_days,
    add_months,
    add_months_1182_71,
    applicable_rules,
    california_business_days,
    california_state_holidays,
    judge,
    judge_acknowledgement,
    load_holidays,
)

LA = ZoneInfo("America/Los_Angeles")


def eod(y, m, d, tz=UTC):
    return datetime(y, m, d, 23, 59, 59, 999999, tzinfo=tz)


def at(y, m, d, hh=12, mm=0, ss=0, tz=UTC):
    return datetime(y, m, d, hh, mm, ss, tzinfo=tz)


DEFAULT_RECEIVED = at(2025, 11, 30)


def req(type="access", received=DEFAULT_RECEIVED, **kw):
    return RequestRecord(id="r1", type=type, received_at=received, **kw)


# --------------------------------------------------------------------------- California holidays


def test_california_state_holidays_2026():
    # 2026-01-01 is a Thursday. MLK: Mondays of Jan are 5, 12, 19. Presidents': Feb 1 is a Sunday,
    # Mondays 2, 9, 16. Memorial: May 31 is a Sunday, so the last Monday is May 25. Labor: Sep 1 is
    # a Tuesday, first Monday Sep 7. Thanksgiving: Nov 1 is a Sunday, Thursdays 5, 12, 19, 26.
    # July 4 is a Saturday: CalHR moves no Saturday holiday except Veterans Day, so no Friday off.
    assert california_state_holidays(2026) == {
        date(2026, 1, 1): "New Year's Day",
        date(2026, 1, 19): "Martin Luther King Jr. Day",
        date(2026, 2, 16): "Presidents' Day",
        date(2026, 3, 31): "Cesar Chavez Day",
        date(2026, 5, 25): "Memorial Day",
        date(2026, 7, 4): "Independence Day",
        date(2026, 9, 7): "Labor Day",
        date(2026, 11, 11): "Veterans Day",
        date(2026, 11, 26): "Thanksgiving Day",
        date(2026, 11, 27): "Day after Thanksgiving",
        date(2026, 12, 25): "Christmas Day",
    }


def test_california_state_holidays_2027():
    # 2027-01-01 is a Friday. MLK Jan 18; Presidents' Feb 15; Memorial May 31 (a Monday);
    # July 4 is a Sunday -> observed Monday July 5; Labor Sep 6; Thanksgiving Nov 25 (Nov 1 is a
    # Monday, Thursdays 4, 11, 18, 25); Christmas is a Saturday -> not moved.
    assert california_state_holidays(2027) == {
        date(2027, 1, 1): "New Year's Day",
        date(2027, 1, 18): "Martin Luther King Jr. Day",
        date(2027, 2, 15): "Presidents' Day",
        date(2027, 3, 31): "Cesar Chavez Day",
        date(2027, 5, 31): "Memorial Day",
        date(2027, 7, 4): "Independence Day",
        date(2027, 7, 5): "Independence Day (observed)",
        date(2027, 9, 6): "Labor Day",
        date(2027, 11, 11): "Veterans Day",
        date(2027, 11, 25): "Thanksgiving Day",
        date(2027, 11, 26): "Day after Thanksgiving",
        date(2027, 12, 25): "Christmas Day",
    }


def test_veterans_day_on_saturday_is_observed_on_friday():
    # 2028-01-01 is a Saturday; Nov 11 is day 316 of the leap year, 315 = 45 weeks later: Saturday.
    holidays = california_state_holidays(2028)
    assert holidays[date(2028, 11, 10)] == "Veterans Day (observed)"


def test_holiday_on_sunday_is_observed_on_monday():
    # 2029-11-11: 2029-01-01 is a Monday; Nov 11 is day 315, 314 days later = 44 weeks + 6 days: Sunday.
    assert california_state_holidays(2029)[date(2029, 11, 12)] == "Veterans Day (observed)"


def test_saturday_holiday_leaves_friday_a_business_day():
    assert CALIFORNIA.is_working_day(date(2026, 7, 3))
    assert not CALIFORNIA.is_working_day(date(2027, 7, 5))


def test_juneteenth_and_native_american_day_are_not_built_in():
    # Not on CalHR's paid state-holiday list we could confirm (see california_state_holidays).
    assert CALIFORNIA.is_working_day(date(2026, 6, 19))
    assert CALIFORNIA.is_working_day(date(2026, 9, 25))


# --------------------------------------------------------------------------- business days


def test_business_days_across_thanksgiving_2026():
    # From Mon 2026-11-23: Tue 24 (1), Wed 25 (2), Thu 26 + Fri 27 holidays, weekend,
    # Mon 30 (3), Dec 1 (4), 2 (5), 3 (6), 4 (7), Mon 7 (8), 8 (9), Wed 9 (10).
    assert add_business_days(date(2026, 11, 23), 10, CALIFORNIA) == date(2026, 12, 9)


def test_business_days_without_holidays():
    # Same start, weekends only: Nov 24, 25, 26, 27 (4), Nov 30 .. Dec 4 (9), Mon Dec 7 (10).
    assert add_business_days(date(2026, 11, 23), 10, BusinessDays()) == date(2026, 12, 7)


def test_default_calendar_is_california():
    assert add_business_days(date(2026, 11, 23), 10) == date(2026, 12, 9)


def test_fifteen_business_days_from_friday_before_thanksgiving():
    # From Fri 2026-11-20: Nov 23 (1), 24 (2), 25 (3), [26, 27 holidays], Nov 30 (4), Dec 1-4 (5-8),
    # Dec 7-11 (9-13), Mon Dec 14 (14), Tue Dec 15 (15).
    assert add_business_days(date(2026, 11, 20), 15) == date(2026, 12, 15)


def test_business_days_over_christmas_and_new_year():
    # From Thu 2026-12-24: Fri 25 holiday, Mon 28 (1), 29 (2), 30 (3), 31 (4), Fri Jan 1 holiday,
    # Mon 2027-01-04 (5).
    assert add_business_days(date(2026, 12, 24), 3) == date(2026, 12, 30)
    assert add_business_days(date(2026, 12, 24), 5) == date(2027, 1, 4)


def test_business_days_over_observed_independence_day_2027():
    # Fri 2027-07-02 -> weekend, Mon July 5 observed holiday -> Tue July 6.
    assert add_business_days(date(2027, 7, 2), 1) == date(2027, 7, 6)


def test_business_days_from_a_weekend_start():
    assert add_business_days(date(2026, 11, 28), 1) == date(2026, 11, 30)
    assert add_business_days(date(2026, 11, 25), 1) == date(2026, 11, 30)
    assert add_business_days(date(2026, 11, 28), 0) == date(2026, 11, 28)


def test_calendar_days():
    # 2026-01-31 + 30: Feb has 28 days, Jan 31 + 28 = Feb 28, + 2 = Mar 2.
    assert CalendarDays().add(date(2026, 1, 31), 30) == date(2026, 3, 2)
    assert add_business_days(date(2026, 11, 26), 1, CalendarDays()) == date(2026, 11, 27)


def test_business_day_arguments_are_checked():
    with pytest.raises(ValueError, match="non-negative"):
        add_business_days(date(2026, 1, 5), -1)
    with pytest.raises(TypeError):
        add_business_days(at(2026, 1, 5), 1)


# --------------------------------------------------------------------------- holidays from YAML


def test_load_holidays(tmp_path):
    path = tmp_path / "extra.yaml"
    path.write_text("holidays:\n  - date: 2026-06-19\n    name: Juneteenth\n  - 2026-09-25\n")
    assert load_holidays(path) == {date(2026, 6, 19): "Juneteenth", date(2026, 9, 25): "holiday from extra.yaml"}


def test_extra_holidays_join_the_california_calendar(tmp_path):
    path = tmp_path / "extra.yaml"
    path.write_text("- {date: '2026-06-19', name: Juneteenth}\n")
    calendar = california_business_days(path)
    # Thu 2026-06-18 + 1: Fri 19 is now a holiday, weekend -> Mon 22.
    assert calendar.add(date(2026, 6, 18), 1) == date(2026, 6, 22)
    assert calendar.holiday_name(date(2026, 11, 26)) == "Thanksgiving Day"
    assert CALIFORNIA.is_working_day(date(2026, 6, 19))


def test_bad_holiday_date_names_file_and_entry(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("holidays:\n  - 2026-06-19\n  - date: 2026-02-30\n")
    with pytest.raises(ValueError) as info:
        load_holidays(path)
    assert str(path) in str(info.value)
    assert "holiday entry 2" in str(info.value)
    assert "'2026-02-30'" in str(info.value)


@pytest.mark.parametrize("text", ["- next friday\n", "- 20260619\n", "- 2026-W25-5\n", "- 12\n",
                                  "- {day: 2026-06-19}\n"])
def test_holiday_entries_that_are_not_dates(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.yaml: holiday entry 1"):
        load_holidays(path)


def test_holiday_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="missing.yaml: cannot read"):
        load_holidays(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("holidays: [2026-01-01\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        load_holidays(broken)
    shaped = tmp_path / "shaped.yaml"
    shaped.write_text("2026-06-19: Juneteenth\n")
    with pytest.raises(ValueError, match="shaped.yaml: expected a list"):
        load_holidays(shaped)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_holidays(empty) == {}


# --------------------------------------------------------------------------- months (1182/71)


def test_add_months_clamps_to_month_end():
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2028, 2, 29), 12) == date(2029, 2, 28)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_1182_71_same_date_next_month():
    # Received Sun 2026-03-15; the 15th is not counted, the period ends with Wed 2026-04-15.
    assert add_months_1182_71(at(2026, 3, 15, 10), 1) == eod(2026, 4, 15)


def test_1182_71_month_end_clamps_then_rolls_past_the_weekend():
    # Received 2026-01-31: February has no 31st, so the last day is Feb 28, a Saturday
    # (Feb 1 is a Sunday, so Feb 28 is a Saturday): the period ends with Monday 2026-03-02.
    assert add_months_1182_71(at(2026, 1, 31, 10), 1) == eod(2026, 3, 2)


def test_1182_71_leap_year():
    # 2028-01-31 + 1 month -> Feb 29, 2028, a Tuesday (2028-01-01 is a Saturday, Feb 29 is 59 days later).
    assert add_months_1182_71(at(2028, 1, 31), 1) == eod(2028, 2, 29)
    # 2024-02-29 + 1 month -> Mar 29, 2024, a Friday.
    assert add_months_1182_71(at(2024, 2, 29), 1) == eod(2024, 3, 29)


def test_1182_71_clamps_to_a_friday():
    # 2027-03-31 + 1 month -> April has no 31st -> Apr 30, 2027, a Friday.
    assert add_months_1182_71(at(2027, 3, 31), 1) == eod(2027, 4, 30)


def test_1182_71_public_holidays():
    # 2026-03-15 + 1 -> Wed Apr 15; if that is a public holiday, the next working day, Thu Apr 16.
    assert add_months_1182_71(at(2026, 3, 15), 1, [date(2026, 4, 15)]) == eod(2026, 4, 16)
    # 2026-09-04 + 1 -> Sun Oct 4 -> Mon Oct 5, a holiday here -> Tue Oct 6.
    assert add_months_1182_71(at(2026, 9, 4), 1, {date(2026, 10, 5): "Feast"}) == eod(2026, 10, 6)


def test_1182_71_counts_days_in_the_zone_of_the_event():
    received = datetime(2026, 3, 15, 23, 30, tzinfo=LA)  # = 2026-03-16T06:30Z
    # In Los Angeles the event day is Mar 15 -> ends with Apr 15 PDT (UTC-7) = Apr 16 06:59:59Z.
    assert add_months_1182_71(received, 1) == eod(2026, 4, 15, LA)
    assert add_months_1182_71(received, 1).astimezone(UTC) == datetime(2026, 4, 16, 6, 59, 59, 999999, tzinfo=UTC)
    # In UTC the event day is Mar 16 -> ends with Thu Apr 16.
    assert add_months_1182_71(received.astimezone(UTC), 1) == eod(2026, 4, 16)


def test_1182_71_rejects_naive_datetimes():
    with pytest.raises(ValueError, match="has no time zone"):
        add_months_1182_71(datetime(2026, 3, 15, 10), 1)


# --------------------------------------------------------------------------- CCPA respond (45 days)


def test_ccpa_45_days_pending():
    # Received 2025-11-30: Nov 30 + 30 = Dec 30, + 15 = Jan 14, 2026.
    j = judge(req(), now=at(2026, 1, 10), regime="ccpa")
    assert j.outcome == "pending"
    assert j.rule is CCPA_RESPOND
    assert j.due_at == eod(2026, 1, 14)
    assert j.days_late is None
    assert j.message == "pending, due 2026-01-14T23:59:59+00:00 (UTC)"


def test_ccpa_completed_on_the_last_second_passes():
    j = judge(req(completed_at=datetime(2026, 1, 14, 23, 59, 59, tzinfo=UTC)), now=at(2026, 2, 1))
    assert j.outcome == "passed"


def test_ccpa_completed_one_second_after_the_day_is_a_day_late():
    j = judge(req(completed_at=at(2026, 1, 15, 0, 0, 1)), now=at(2026, 2, 1))
    assert (j.outcome, j.days_late) == ("failed", 1)
    assert j.message == "completed 1 day late (due 2026-01-14T23:59:59+00:00)"


def test_ccpa_completed_three_days_late():
    j = judge(req(type="delete", completed_at=at(2026, 1, 17, 9)), now=at(2026, 2, 1))
    assert (j.outcome, j.days_late) == ("failed", 3)
    assert j.message == "completed 3 days late (due 2026-01-14T23:59:59+00:00)"


def test_ccpa_open_past_due():
    j = judge(req(type="correct"), now=at(2026, 1, 20, 8))
    assert (j.outcome, j.days_late) == ("failed", 6)
    assert j.message == "open 6 days past due 2026-01-14T23:59:59+00:00"


def test_ccpa_verification_does_not_stop_the_clock():
    # Acknowledged late and verified later still leaves the due date 45 days after receipt.
    j = judge(req(acknowledged_at=at(2025, 12, 20)), now=at(2026, 1, 15, 1))
    assert j.due_at == eod(2026, 1, 14)
    assert j.outcome == "failed"


def test_ccpa_45_days_across_dst_shown_in_utc():
    # Received 2026-02-20T18:00Z = 10:00 PST on Feb 20 in Los Angeles. Feb 20 + 8 = Feb 28,
    # + 31 = Mar 31, + 6 = Apr 6 (45 days). DST began Mar 8, so Apr 6 ends at 23:59:59 PDT (UTC-7)
    # = 2026-04-07T06:59:59Z.
    j = judge(req(received=at(2026, 2, 20, 18)), now=at(2026, 3, 1), zone=LA)
    assert j.due_at == datetime(2026, 4, 7, 6, 59, 59, 999999, tzinfo=UTC)
    assert j.due_at.tzinfo is UTC
    assert j.message == "pending, due 2026-04-06T23:59:59-07:00 (America/Los_Angeles)"


def test_ccpa_receipt_day_depends_on_the_zone():
    # 2026-02-21T05:00Z is still Feb 20 (21:00 PST) in Los Angeles -> same due as above;
    # counted in UTC it is Feb 21 -> Feb 21 + 7 = Feb 28, + 31 = Mar 31, + 7 = Apr 7.
    received = at(2026, 2, 21, 5)
    assert judge(req(received=received), now=at(2026, 3, 1), zone=LA).due_at == datetime(
        2026, 4, 7, 6, 59, 59, 999999, tzinfo=UTC)
    assert judge(req(received=received), now=at(2026, 3, 1)).due_at == eod(2026, 4, 7)


def test_ccpa_accepts_non_utc_instants():
    received = datetime(2025, 11, 30, 4, 0, tzinfo=LA)  # 12:00Z
    assert judge(req(received=received), now=at(2026, 1, 10)).due_at == eod(2026, 1, 14)


# --------------------------------------------------------------------------- CCPA extension


EXT_RECEIVED = at(2026, 1, 1, 9)
# First period: Jan 1 + 45 -> Jan 31 is +30, Feb 15 is +45.
# Extended: Jan 1 + 90 -> Jan 31 (+30), Feb 28 (+58), Mar 31 (+89), Apr 1 (+90).


def test_ccpa_valid_extension():
    r = req(received=EXT_RECEIVED, extension_notice_at=at(2026, 2, 10), extension_reason="backlog",
            extended_until=eod(2026, 4, 1), completed_at=at(2026, 3, 20))
    j = judge(r, now=at(2026, 4, 10))
    assert j.outcome == "passed"
    assert j.rule is CCPA_RESPOND_EXTENDED
    assert j.due_at == eod(2026, 4, 1)


def test_ccpa_valid_extension_open_past_90_days():
    r = req(received=EXT_RECEIVED, extension_notice_at=at(2026, 2, 10), extension_reason="backlog")
    j = judge(r, now=at(2026, 4, 3))
    assert j.message == "open 2 days past due 2026-04-01T23:59:59+00:00"
    assert j.days_late == 2


def test_ccpa_notice_at_the_last_instant_of_the_first_period_is_valid():
    r = req(received=EXT_RECEIVED, extension_notice_at=datetime(2026, 2, 15, 23, 59, 59, tzinfo=UTC),
            extension_reason="backlog")
    assert judge(r, now=at(2026, 3, 1)).rule is CCPA_RESPOND_EXTENDED


def test_ccpa_extension_without_notice_is_invalid():
    # Original due Feb 15; completed Mar 20: Feb 15 -> Feb 28 is 13 days, + 20 = 33 days late.
    r = req(received=EXT_RECEIVED, extended_until=eod(2026, 4, 1), extension_reason="backlog",
            completed_at=at(2026, 3, 20))
    j = judge(r, now=at(2026, 4, 10))
    assert (j.outcome, j.days_late, j.rule) == ("failed", 33, CCPA_RESPOND)
    assert j.message == ("completed 33 days late (due 2026-02-15T23:59:59+00:00); "
                         "extension without notice; the original due date applies")


def test_ccpa_extension_notice_after_the_first_45_days_is_invalid():
    r = req(received=EXT_RECEIVED, extension_notice_at=at(2026, 2, 16, 10), extension_reason="backlog")
    j = judge(r, now=at(2026, 2, 20))
    assert j.due_at == eod(2026, 2, 15)
    assert (j.outcome, j.days_late) == ("failed", 5)
    assert "extension without notice within the first period" in j.message


def test_ccpa_extension_without_reason_is_invalid():
    r = req(received=EXT_RECEIVED, extension_notice_at=at(2026, 2, 10), extension_reason="  ")
    j = judge(r, now=at(2026, 2, 1))
    assert j.rule is CCPA_RESPOND
    assert j.message == ("pending, due 2026-02-15T23:59:59+00:00 (UTC); "
                         "extension without a reason given to the consumer; the original due date applies")


def test_ccpa_extension_beyond_90_days_is_noted():
    r = req(received=EXT_RECEIVED, extension_notice_at=at(2026, 2, 10), extension_reason="backlog",
            extended_until=eod(2026, 4, 30))
    j = judge(r, now=at(2026, 3, 1))
    assert j.due_at == eod(2026, 4, 1)
    assert "beyond the longest extension" in j.message


# --------------------------------------------------------------------------- CCPA opt-out / limit


def test_ccpa_opt_out_15_business_days():
    # Received Fri 2026-11-20 -> 15 business days -> Tue 2026-12-15 (see the business-day test).
    r = req(type="opt_out", received=at(2026, 11, 20, 15), completed_at=at(2026, 12, 16, 1))
    j = judge(r, now=at(2026, 12, 20))
    assert j.rule is CCPA_OPT_OUT
    assert j.due_at == eod(2026, 12, 15)
    assert (j.outcome, j.days_late) == ("failed", 1)
    assert CCPA_OPT_OUT.clause == "11 CCR §7026(f)"


def test_ccpa_opt_out_allows_no_extension():
    r = req(type="opt_out", received=at(2026, 11, 20, 15), extension_notice_at=at(2026, 11, 23),
            extension_reason="busy")
    j = judge(r, now=at(2026, 12, 1))
    assert j.due_at == eod(2026, 12, 15)
    assert "extension ignored" in j.message


def test_ccpa_limit_uses_15_business_days_and_says_why():
    r = req(type="limit", received=at(2026, 11, 20, 15))
    j = judge(r, now=at(2026, 12, 1))
    assert j.rule is CCPA_LIMIT
    assert j.due_at == eod(2026, 12, 15)
    assert "7026(f)" in CCPA_LIMIT.clause and "1798.121" in CCPA_LIMIT.clause


def test_ccpa_holidays_from_the_calendar_passed_in():
    # With weekends only, Fri 2026-11-20 + 15 -> Nov 23-27 (5), Nov 30-Dec 4 (10), Dec 7-11 (15).
    r = req(type="opt_out", received=at(2026, 11, 20, 15))
    assert judge(r, now=at(2026, 12, 1), calendar=BusinessDays()).due_at == eod(2026, 12, 11)


def test_ccpa_object_and_portability_have_no_rule():
    with pytest.raises(NoRule, match="no CCPA deadline for a 'object' request"):
        judge(req(type="object"), now=at(2026, 1, 1))
    with pytest.raises(NoRule, match="part of a request to know"):
        judge(req(type="portability"), now=at(2026, 1, 1))


# --------------------------------------------------------------------------- CCPA acknowledgement


ACK_RECEIVED = at(2026, 11, 23, 17)  # Mon; 10 business days -> Wed 2026-12-09 (Thanksgiving test)


def test_acknowledgement_at_exactly_10_business_days_passes():
    j = judge_acknowledgement(req(received=ACK_RECEIVED, acknowledged_at=datetime(2026, 12, 9, 23, 59, 59,
                                                                                  tzinfo=UTC)), now=at(2026, 12, 20))
    assert j.outcome == "passed"
    assert j.rule is CCPA_ACKNOWLEDGE
    assert j.due_at == eod(2026, 12, 9)


def test_acknowledgement_late():
    j = judge_acknowledgement(req(received=ACK_RECEIVED, acknowledged_at=at(2026, 12, 10, 0, 0, 1)),
                              now=at(2026, 12, 20))
    assert (j.outcome, j.days_late) == ("failed", 1)
    assert j.message == "acknowledged 1 day late (due 2026-12-09T23:59:59+00:00)"


def test_acknowledgement_missing_past_due():
    j = judge_acknowledgement(req(received=ACK_RECEIVED), now=at(2026, 12, 11))
    assert (j.outcome, j.days_late) == ("failed", 2)
    assert j.message == "not acknowledged, 2 days past due 2026-12-09T23:59:59+00:00"


def test_acknowledgement_missing_within_deadline_is_pending():
    j = judge_acknowledgement(req(received=ACK_RECEIVED), now=at(2026, 12, 9, 20))
    assert j.outcome == "pending"
    assert j.message.endswith("pending, due 2026-12-09T23:59:59+00:00 (UTC)")


def test_answer_within_10_business_days_counts_as_acknowledgement():
    j = judge_acknowledgement(req(received=ACK_RECEIVED, completed_at=at(2026, 12, 1)), now=at(2026, 12, 20))
    assert j.outcome == "passed"
    assert "without a separate acknowledgement" in j.message


def test_acknowledgement_not_required_for_opt_out():
    with pytest.raises(NoRule):
        judge_acknowledgement(req(type="opt_out"), now=at(2026, 1, 1))


# --------------------------------------------------------------------------- GDPR


def test_gdpr_month_end_on_a_saturday_rolls_to_monday():
    # Received 2026-01-31 -> Feb 28 (clamped), a Saturday -> ends with Mon 2026-03-02.
    j = judge(req(received=at(2026, 1, 31, 10), completed_at=at(2026, 3, 2, 20)), now=at(2026, 3, 5),
              regime="gdpr")
    assert j.rule is GDPR_RESPOND
    assert j.due_at == eod(2026, 3, 2)
    assert j.outcome == "passed"


def test_gdpr_one_day_late():
    # Received 2026-03-15 -> ends with Wed 2026-04-15; completed Apr 16.
    j = judge(req(type="delete", received=at(2026, 3, 15), completed_at=at(2026, 4, 16, 8)),
              now=at(2026, 5, 1), regime="gdpr")
    assert (j.outcome, j.days_late) == ("failed", 1)
    assert j.message == "completed 1 day late (due 2026-04-15T23:59:59+00:00)"


def test_gdpr_valid_extension():
    # Received 2026-03-15 + 3 months -> Mon 2026-06-15 (Jun 15 is day 166; 165 = 23 weeks + 4 days
    # after Thursday Jan 1 -> Monday).
    r = req(type="object", received=at(2026, 3, 15), extension_notice_at=at(2026, 4, 10),
            extension_reason="complex request across many systems")
    j = judge(r, now=at(2026, 6, 1), regime="gdpr")
    assert j.rule is GDPR_RESPOND_EXTENDED
    assert j.message == "pending, due 2026-06-15T23:59:59+00:00 (UTC)"


def test_gdpr_extension_notice_after_the_first_month_is_invalid():
    r = req(type="portability", received=at(2026, 3, 15), extension_notice_at=at(2026, 4, 16),
            extension_reason="complex")
    j = judge(r, now=at(2026, 4, 20), regime="gdpr")
    assert j.due_at == eod(2026, 4, 15)
    assert (j.outcome, j.days_late) == ("failed", 5)
    assert "extension without notice within the first period" in j.message


def test_gdpr_public_holidays_from_the_calendar():
    calendar = BusinessDays({date(2026, 4, 15): "public holiday"})
    j = judge(req(received=at(2026, 3, 15)), now=at(2026, 4, 1), regime="gdpr", calendar=calendar)
    assert j.due_at == eod(2026, 4, 16)


def test_gdpr_default_calendar_has_no_public_holidays():
    assert EU_WORKING_DAYS.is_working_day(date(2026, 12, 25))


def test_applicable_rules():
    assert applicable_rules("ccpa", "delete") == (CCPA_ACKNOWLEDGE, CCPA_RESPOND, CCPA_RESPOND_EXTENDED)
    assert applicable_rules("ccpa", "opt_out") == (CCPA_OPT_OUT,)
    assert applicable_rules("gdpr", "opt_out") == (GDPR_RESPOND, GDPR_RESPOND_EXTENDED)


def test_rules_cite_their_sources():
    assert CCPA_ACKNOWLEDGE.clause == "11 CCR §7021(a)"
    assert CCPA_RESPOND.clause == "11 CCR §7021(b); Cal. Civ. Code §1798.130(a)(2)(A)"
    assert GDPR_RESPOND.clause == "GDPR Art. 12(3)"
    assert [r.display for r in CCPA_RESPOND.refs] == ["11 CCR §7021(b)", "Cal. Civ. Code §1798.130(a)(2)(A)"]


# --------------------------------------------------------------------------- errors


def test_naive_received_at():
    with pytest.raises(InvalidRequestDates, match=r"request r1: received_at 2026-01-01T12:00:00 has no time zone"):
        judge(req(received=datetime(2026, 1, 1, 12)), now=at(2026, 1, 2))


def test_naive_now():
    with pytest.raises(ValueError, match="now 2026-01-02T00:00:00 has no time zone"):
        judge(req(), now=datetime(2026, 1, 2))


@pytest.mark.parametrize("field", ["completed_at", "acknowledged_at", "extended_until", "extension_notice_at"])
def test_times_before_receipt(field):
    r = req(received=at(2026, 1, 10), **{field: at(2026, 1, 9)})
    with pytest.raises(InvalidRequestDates, match=rf"request r1: {field} 2026-01-09T12:00:00\+00:00 is before received_at"):
        judge(r, now=at(2026, 2, 1))


def test_naive_optional_field():
    with pytest.raises(InvalidRequestDates, match="request r1: completed_at .* has no time zone"):
        judge(req(completed_at=datetime(2026, 1, 1)), now=at(2026, 2, 1))


def test_completed_status_without_completion_time():
    with pytest.raises(InvalidRequestDates, match="completed_at is missing"):
        judge(req(status="completed"), now=at(2026, 2, 1))


def test_unknown_type_and_regime():
    with pytest.raises(ValueError, match="unknown type 'erase'"):
        req(type="erase")
    with pytest.raises(ValueError, match="unknown regime 'lgpd'"):
        judge(req(), now=at(2026, 1, 1), regime="lgpd")


def test_request_from_a_ledger_row():
    row = {"request_id": "del-7", "kind": "delete", "received_at": "2025-11-30T12:00:00+00:00",
           "acknowledged_at": None, "completed_at": "2026-01-17T09:00:00+00:00", "extended_until": None,
           "extension_notice_at": None, "extension_reason": None, "status": "completed"}
    j = judge(RequestRecord.from_row(row), now=at(2026, 2, 1))
    assert (j.outcome, j.days_late) == ("failed", 3)


def test_ledger_row_with_bad_or_naive_time():
    with pytest.raises(InvalidRequestDates, match="request del-7: completed_at 'yesterday' is not an ISO 8601 time"):
        RequestRecord.from_row({"request_id": "del-7", "kind": "delete", "received_at": "2026-01-01T00:00:00Z",
                                "completed_at": "yesterday"})
    naive = RequestRecord.from_row({"request_id": "del-8", "kind": "delete", "received_at": "2026-01-01T00:00:00"})
    with pytest.raises(InvalidRequestDates, match="request del-8: received_at .* has no time zone"):
        judge(naive, now=at(2026, 2, 1))
