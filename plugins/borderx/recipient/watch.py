"""Fetching deliveries as they appear: the bucket is listed again and again, more slowly while nothing comes.

Where the bucket announces new objects to the recipient's own SQS queue, an announcement brings the next look
forward (:mod:`.notices`). Each delivery is fetched once, across restarts too (the record in the output folder says which were); a
refusal or a revocation is reported once per watch, not at every look. A bucket that cannot be reached for a
while is waited for; one that refuses (no such bucket, access denied) ends the watch.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TextIO

from borderx.errors import BucketUnreadable
from borderx.recipient.fetch import Outcome, fetch
from borderx.recipient.notices import QueueNotices
from borderx.recipient.progress import Progress
from borderx.recipient.stopping import StopOnSignal
from borderx.text import printable


@dataclass(frozen=True)
class Pace:
    """How often to look: `interval` after a look that found something, doubling after each empty look up to
    `longest`."""

    interval: float = 30.0
    longest: float = 600.0

    def after(self, previous: float, found: bool) -> float:
        return self.interval if found else min(max(previous, self.interval) * 2, max(self.longest, self.interval))


@dataclass
class WatchReport:
    fetched: int = 0
    refused: int = 0
    revoked: int = 0
    _told: set[tuple] = field(default_factory=set)

    def first_time(self, outcome: Outcome) -> bool:
        """Whether this outcome is news: each refusal (by its check and reason) and revocation is told once."""
        key = (outcome.location.prefix, outcome.status, outcome.check, outcome.reason)
        if key in self._told:
            return False
        self._told.add(key)
        return True


def watch(s3, bucket: str, recipient: str, identities: Sequence, keys: Sequence[str], out_dir: Path, *,
          pace: Pace, stop: StopOnSignal, report: WatchReport, agreement: str | None = None,
          since: dt.date | None = None, progress: Progress | None = None,
          on_outcome: Callable[[Outcome], None] | None = None, notices: QueueNotices | None = None,
          err: TextIO | None = None) -> None:
    """Fetches new deliveries into out_dir until `stop` is asked, counting in `report` what it did. With
    `notices`, an announcement on the recipient's queue brings the next look forward.

    A stop asked while a delivery is under way drops it whole (KeyboardInterrupt, which the caller ends on).
    """
    err = err or sys.stderr

    def told(outcome: Outcome) -> None:
        if outcome.status == "skipped" or not report.first_time(outcome):
            return
        if outcome.status == "fetched":
            report.fetched += 1
        else:
            report.refused += outcome.status == "failed"
            report.revoked += outcome.status == "revoked"
        if on_outcome:
            on_outcome(outcome)

    delay = pace.interval
    while not stop.requested.is_set():
        try:
            found = fetch(s3, bucket, recipient, identities, keys, out_dir, agreement=agreement, since=since,
                          progress=progress, on_outcome=told, shielded=stop.shielded).fetched
        except BucketUnreadable as exc:
            if not exc.transient:
                raise
            delay = pace.after(delay, found=False)
            print(printable(f"borderx: {exc}; looking again in {delay:g} s"), file=err, flush=True)
        else:
            delay = pace.after(delay, found=bool(found))
        if notices is not None:
            notices.wait(delay, stop)
        else:
            stop.wait(delay)
