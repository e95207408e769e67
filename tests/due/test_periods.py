"""The periods of due rules (each ends at a due moment plus grace, and the next begins there), and which
extracts count as taken in."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from borderx.config.models import Due
from borderx.due import period_at, period_before

U = dt.timezone.utc


def at(*parts) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=U)


@pytest.mark.parametrize("rule,moment,start,due_by,late_after", [
    # by the 5th: due at the end of the 5th; the period begins when the previous one became late
    (Due(every="month", by_day=5), at(2026, 12, 7, 6), at(2026, 12, 6), at(2027, 1, 6), at(2027, 1, 6)),
    (Due(every="month", by_day=5, grace="2d"), at(2026, 12, 7, 6), at(2026, 11, 8), at(2026, 12, 6), at(2026, 12, 8)),
    # by the 31st in February: its last day
    (Due(every="month", by_day=31), at(2026, 2, 20), at(2026, 2, 1), at(2026, 3, 1), at(2026, 3, 1)),
    # by Monday (ISO 1): the end of Monday; 2026-12-07 is a Monday
    (Due(every="week", by_day=1), at(2026, 12, 7, 23, 59), at(2026, 12, 1), at(2026, 12, 8), at(2026, 12, 8)),
    (Due(cron="0 12 * * 1", grace="12h"), at(2026, 12, 7, 18), at(2026, 12, 1), at(2026, 12, 7, 12),
     at(2026, 12, 8)),
])
def test_the_period_a_moment_falls_in(rule, moment, start, due_by, late_after):
    period = period_at(rule, moment)
    assert (period.start, period.due_by, period.late_after) == (start, due_by, late_after)
    assert period.holds(moment) and not period.holds(late_after)
    before = period_before(rule, period)
    assert before.late_after == period.start, "periods follow each other without gap or overlap"
    assert period_at(rule, late_after) == period_at(rule, late_after + dt.timedelta(seconds=1))
    assert period_at(rule, late_after).start == late_after


@pytest.mark.parametrize("given,problem", [
    ({"every": "month"}, "needs by_day"),
    ({"every": "week", "by_day": 8}, r"1 \(Monday\) to 7"),
    ({"cron": "every day"}, "not a cron expression"),
    ({"every": "month", "by_day": 5, "cron": "0 0 * * *"}, "either every"),
    ({"every": "month", "by_day": 5, "grace": "two days"}, "pattern"),
])
def test_a_wrong_rule_says_what_is_wrong(given, problem):
    with pytest.raises(ValidationError, match=problem):
        Due(**given)


def test_an_extract_counts_once_archived_or_under_way_and_not_once_quarantined():
    from borderx.due import intakes

    def event(kind, sha, time):
        return {"type": kind, "time": time, "details": {"provider": "ZA-DHA", "dataset": "flows",
                                                        "source_sha256": sha}}

    events = [
        event("received", "a", "2026-11-01T00:00:00Z"), event("archived", "a", "2026-11-01T00:01:00Z"),
        event("received", "b", "2026-11-02T00:00:00Z"), event("quarantined", "b", "2026-11-02T00:01:00Z"),
        # the same bytes as a, dropped again: quarantined as a duplicate before it is received
        event("quarantined", "a", "2026-11-03T00:00:00Z"),
        # refused for its signature, then the same bytes signed: received again, and archived
        event("received", "c", "2026-11-04T00:00:00Z"), event("quarantined", "c", "2026-11-04T00:01:00Z"),
        event("received", "c", "2026-11-05T00:00:00Z"), event("archived", "c", "2026-11-05T00:01:00Z"),
        event("received", "d", "2026-11-06T00:00:00Z"),  # still under way
    ]
    assert intakes(events) == {("ZA-DHA", "flows"): ["2026-11-01T00:00:00Z", "2026-11-05T00:00:00Z",
                                                     "2026-11-06T00:00:00Z"]}
