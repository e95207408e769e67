"""Which extracts are due, received or late, read from the agreements' due rules and the audit trail.

An extract counts as received for a period when one of that dataset from that provider was taken in (a
`received` event) within the period and was not quarantined. For each rule two periods are shown: the one
under way (received, or due) and the one before it (received, or late). Earlier periods are shown too while
they are late and not yet recorded, back to when the trail began: a hub that was down, or a due check that
did not run, over several periods still records each extract that was missed. A late one is recorded once
as an `overdue` event, and its provider and the operators are told.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import asdict, dataclass
from typing import Iterable

from borderx.audit.events import Archived, Overdue, Quarantined, Received, of_kind
from borderx.config.models import DeploymentConfig, Due
from borderx.due.periods import Period, describe, period_at, period_before


# However long a hub was down, the periods looked back over are bounded: a weekly rule, eight years.
MAX_PERIODS_BACK = 400


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Expected:
    """One provider's extract of one dataset in one period, and what became of it."""

    agreement: str
    provider: str
    dataset: str
    rule: str
    period_start: str
    due_by: str
    late_after: str
    status: str  # received, due, late
    received_at: str | None = None
    recorded: bool = False  # a late one whose overdue event is in the trail

    def to_dict(self) -> dict:
        return asdict(self)


def intakes(events: Iterable[dict]) -> dict[tuple[str, str], list[str]]:
    """When each (provider, dataset) had an extract taken in that was not quarantined, in order.

    Each `received` event is settled by the next `archived` or `quarantined` event of its content; one still
    under way counts. A duplicate's quarantine comes after the original was archived and settles nothing.
    """
    open_: dict[str, dict] = {}
    taken: dict[tuple[str, str], list[str]] = {}
    for e in of_kind(events, Received, Archived, Quarantined):
        sha = e["details"].get("source_sha256")
        if e["type"] == Received.TYPE:
            open_[sha] = e
            continue
        received = open_.pop(sha, None)
        if received is not None and e["type"] == Archived.TYPE:
            _add(taken, received)
    for received in open_.values():
        _add(taken, received)
    return {key: sorted(times) for key, times in taken.items()}


def _add(taken: dict[tuple[str, str], list[str]], received: dict) -> None:
    d = received["details"]
    taken.setdefault((d["provider"], d["dataset"]), []).append(received["time"])


def _rules(config: DeploymentConfig, day: dt.date) -> Iterable[tuple[str, str, str, Due]]:
    """(agreement, provider, dataset, rule) for every agreement in force, each pair once."""
    seen: set[tuple[str, str]] = set()
    for agreement in sorted(config.agreements.values(), key=lambda a: a.id):
        if not agreement.in_force_on(day):
            continue
        for rule in agreement.due_rules:
            for provider in rule.providers or agreement.providers:
                for dataset in rule.datasets or agreement.datasets:
                    if (provider, dataset) not in seen:
                        seen.add((provider, dataset))
                        yield agreement.id, provider, dataset, rule


def check(config: DeploymentConfig, events: Iterable[dict], now: dt.datetime) -> list[Expected]:
    """For each rule in force: the period before now's (received or late) and now's (received or due)."""
    events = list(events)
    taken = intakes(events)
    recorded = {(e["details"]["provider"], e["details"]["dataset"], e["details"]["due_by"])
                for e in of_kind(events, Overdue)}
    began = _time(events[0]["time"]) if events else None
    found = []
    for agreement_id, provider, dataset, rule in _rules(config, now.date()):
        valid_from = dt.datetime.combine(config.agreements[agreement_id].valid_from, dt.time(), dt.timezone.utc)
        taken_at = sorted((_time(t), t) for t in taken.get((provider, dataset), []))
        current = period_at(rule, now)
        previous = period_before(rule, current)
        missed = [(p, False) for p in _missed_before(rule, previous, taken_at, began, valid_from)
                  if (provider, dataset, _iso(p.due_by)) not in recorded]
        for period, open_ in (*missed, (previous, False), (current, True)):
            if period.due_by <= valid_from:
                continue  # due before the agreement began: nothing was owed
            first = _first_in(taken_at, period)
            status = "received" if first else ("due" if open_ else "late")
            found.append(Expected(
                agreement_id, provider, dataset, describe(rule), _iso(period.start), _iso(period.due_by),
                _iso(period.late_after), status, first, (provider, dataset, _iso(period.due_by)) in recorded))
    return found


def _missed_before(rule: Due, period: Period, taken_at: list[tuple[dt.datetime, str]], began: dt.datetime | None,
                   valid_from: dt.datetime) -> list[Period]:
    """The periods before `period`, oldest first, that the trail saw from their start and in which no extract
    was taken in. A period that began before the trail did is not judged: its extract may have come before."""
    missed = []
    for _ in range(MAX_PERIODS_BACK):
        period = period_before(rule, period)
        if began is None or period.start < began or period.due_by <= valid_from:
            break
        if _first_in(taken_at, period) is None:
            missed.append(period)
    return missed[::-1]


def _first_in(taken_at: list[tuple[dt.datetime, str]], period: Period) -> str | None:
    """The first intake time (as the trail wrote it) within `period`, from (moment, text) pairs in order."""
    i = bisect.bisect_left(taken_at, (period.start, ""))
    return taken_at[i][1] if i < len(taken_at) and period.holds(taken_at[i][0]) else None


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def record_overdue(rt, now: dt.datetime | None = None) -> list[Expected]:
    """Records an overdue event for each late extract not recorded yet and tells its provider and the
    operators; returns those newly recorded. Checking again records nothing twice."""
    from borderx import notices
    from borderx.notices import messages

    now = now or rt.clock()
    newly = []
    for late in check(rt.config, rt.trail.events(), now):
        if late.status != "late" or late.recorded:
            continue
        rt.trail.record(Overdue(agreement=late.agreement, provider=late.provider, dataset=late.dataset,
                                period_start=late.period_start, due_by=late.due_by, late_after=late.late_after),
                        actor={"hub": True, "via": "due check"})
        notices.post(rt, messages.overdue_notice("provider", late.provider, late))
        notices.post(rt, messages.overdue_notice("operator", None, late))
        newly.append(late)
    return newly
