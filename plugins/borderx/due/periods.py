"""The periods of a due rule: each ends at a due moment, and is late once its grace has passed too.

A period runs from the moment the one before it became late to the moment it becomes late itself, so every
time belongs to exactly one period and an extract taken in during the grace counts for the period it was
late for. `every: month, by_day: 5` is due at the end of the 5th (00:00 UTC on the 6th); a shorter month
than by_day ends it on its last day. `every: week, by_day: 1` is due at the end of Monday.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from borderx.config.models import Due, cron_of

UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    due_by: dt.datetime
    late_after: dt.datetime

    def holds(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.late_after


def describe(rule: Due) -> str:
    """The rule in a few words, for a table."""
    grace = f", grace {rule.grace}" if rule.grace_period else ""
    if rule.cron:
        return f"cron {rule.cron}{grace}"
    if rule.every == "month":
        return f"monthly by day {rule.by_day}{grace}"
    return f"weekly by {calendar.day_name[rule.by_day - 1]}{grace}"


def next_moment(rule: Due, after: dt.datetime) -> dt.datetime:
    """The first due moment strictly after `after`."""
    if rule.cron:
        from croniter import croniter

        return croniter(cron_of(rule.cron), after).get_next(dt.datetime)
    moment = _first_candidate(rule, after)
    while moment <= after:
        moment = _step(rule, moment, +1)
    return moment


def prev_moment(rule: Due, before: dt.datetime) -> dt.datetime:
    """The last due moment strictly before `before`."""
    if rule.cron:
        from croniter import croniter

        return croniter(cron_of(rule.cron), before).get_prev(dt.datetime)
    moment = next_moment(rule, before)
    while moment >= before:
        moment = _step(rule, moment, -1)
    return moment


def period_at(rule: Due, moment: dt.datetime) -> Period:
    """The period that `moment` falls in."""
    grace = rule.grace_period
    due_by = next_moment(rule, moment - grace)
    return Period(prev_moment(rule, due_by) + grace, due_by, due_by + grace)


def period_before(rule: Due, period: Period) -> Period:
    grace = rule.grace_period
    due_by = prev_moment(rule, period.due_by)
    return Period(prev_moment(rule, due_by) + grace, due_by, due_by + grace)


def _month_end_of(rule: Due, year: int, month: int) -> dt.datetime:
    day = min(rule.by_day, calendar.monthrange(year, month)[1])
    return dt.datetime(year, month, day, tzinfo=UTC) + DAY


def _first_candidate(rule: Due, after: dt.datetime) -> dt.datetime:
    after = after.astimezone(UTC)
    if rule.every == "month":
        year, month = (after.year, after.month - 1) if after.month > 1 else (after.year - 1, 12)
        return _month_end_of(rule, year, month)
    day = after.date() - dt.timedelta(days=(after.isoweekday() - rule.by_day) % 7 + 7)
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC) + DAY


def _step(rule: Due, moment: dt.datetime, sign: int) -> dt.datetime:
    if rule.every == "week":
        return moment + sign * 7 * DAY
    day = moment - DAY  # the day the moment ends
    month = day.month + sign
    year = day.year + (month - 1) // 12
    return _month_end_of(rule, year, (month - 1) % 12 + 1)
