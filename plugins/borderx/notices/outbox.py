"""The outbox: notices wait here, in HOME/state/outbox/, until they are sent.

Posting a notice only writes a file, so neither a slow nor a broken mail server nor webhook can hold up a
delivery. Draining sends what is due, one file per notice, channel and address:

    outbox/ID.json          waiting: the notice, where it goes, how often it was tried, when to try next
    outbox/sent/ID          sent (empty): the same notice posted again is not sent again
    outbox/failed/ID.json   given up after settings' notices.max_attempts

A failed try is logged and waits twice as long as the one before it, from a minute up to an hour.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from borderx.audit import events as ev
from borderx.folders import create_private, private_folders, replace_private
from borderx.notices.messages import Notice
from borderx.text import printable

log = logging.getLogger(__name__)

FIRST_WAIT = dt.timedelta(minutes=1)
LONGEST_WAIT = dt.timedelta(hours=1)

# Sends one notice to one address on one channel, or raises.
Send = Callable[[str, str, Notice], None]


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed try."""
    return min(FIRST_WAIT * (2 ** max(attempts - 1, 0)), LONGEST_WAIT)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class Drained:
    sent: int = 0
    failed: int = 0
    given_up: int = 0
    waiting: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"sent": self.sent, "failed": self.failed, "given_up": self.given_up, "waiting": self.waiting}


class Outbox:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def post(self, notice: Notice, addresses: list[tuple[str, str]], now: dt.datetime) -> list[str]:
        """Puts the notice in the outbox once for each (channel, address); returns the ids that are new."""
        new = []
        for channel, address in addresses:
            entry_id = hashlib.sha256(f"{notice.key}\0{channel}\0{address}".encode()).hexdigest()[:32]
            if any(p.exists() for p in (self._waiting(entry_id), self._sent(entry_id), self._given_up(entry_id))):
                continue
            entry = {"id": entry_id, "channel": channel, "address": address, "attempts": 0,
                     "posted_at": _stamp(now), "next_try": _stamp(now), "notice": notice.to_dict()}
            text = json.dumps(entry, indent=1, sort_keys=True)
            try:
                replace_private(self._waiting(entry_id), text)
            except FileNotFoundError:
                # The outbox's first entry: its folder is made then, not looked for at every post.
                private_folders(self.folder)
                replace_private(self._waiting(entry_id), text)
            new.append(entry_id)
        return new

    def waiting(self) -> list[dict]:
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                log.warning("outbox entry %s cannot be read (%s); left as it is", path, type(exc).__name__)
        return sorted(found, key=lambda e: (e["posted_at"], e["id"]))

    def drain(self, send: Send, now: dt.datetime, *, max_attempts: int,
              record: Callable[[ev.Event], None] | None = None,
              channels: frozenset[str] = frozenset({"email", "webhook"})) -> Drained:
        """Tries every notice whose time has come on one of `channels` (the others wait, untried: e-mail while
        settings name no SMTP server). Another process draining at the same time is left to it."""
        done = Drained()
        with self._lock() as held:
            if not held:
                return done
            # A mail server or webhook host that just failed is not tried again in this round: a server that
            # does not answer costs its timeout once, not once per notice.
            broken: set[str] = set()
            for entry in self.waiting():
                if (entry["next_try"] > _stamp(now) or entry["channel"] not in channels
                        or _destination(entry) in broken):
                    done.waiting += 1
                    continue
                if not self._try(entry, send, now, max_attempts, record, done):
                    broken.add(_destination(entry))
        return done

    def _try(self, entry: dict, send: Send, now: dt.datetime, max_attempts: int,
             record: Callable[[ev.Event], None] | None, done: Drained) -> bool:
        notice = Notice.from_dict(entry["notice"])
        entry["attempts"] += 1
        about = {"notice_id": entry["id"], "notice": notice.notice, "audience": notice.audience,
                 "agency": notice.agency, "channel": entry["channel"], "attempts": entry["attempts"]}
        try:
            send(entry["channel"], entry["address"], notice)
        except Exception as exc:  # any failure of a mail server or webhook is retried the same way
            problem = _redacted(printable(f"{type(exc).__name__}: {exc}"), entry["address"])[:500]
            given_up = entry["attempts"] >= max_attempts
            log.warning("notice %s (%s to %s by %s) not sent, try %d: %s; %s", entry["id"], notice.notice,
                        notice.agency or "operators", entry["channel"], entry["attempts"], problem,
                        "given up" if given_up else f"tried again after {backoff(entry['attempts'])}")
            entry.update(next_try=_stamp(now + backoff(entry["attempts"])), last_problem=problem)
            if given_up:
                private_folders(self._given_up(entry["id"]).parent)
                replace_private(self._given_up(entry["id"]), json.dumps(entry, indent=1, sort_keys=True))
                self._waiting(entry["id"]).unlink(missing_ok=True)
                done.given_up += 1
            else:
                replace_private(self._waiting(entry["id"]), json.dumps(entry, indent=1, sort_keys=True))
                done.failed += 1
            done.problems.append(problem)
            if record:
                record(ev.NoticeFailed(**about, problem=problem, given_up=given_up))
            return False
        private_folders(self._sent(entry["id"]).parent)
        replace_private(self._sent(entry["id"]), "")
        self._waiting(entry["id"]).unlink(missing_ok=True)
        done.sent += 1
        if record:
            record(ev.NoticeSent(**about))
        return True

    @contextmanager
    def _lock(self) -> Iterator[bool]:
        if not self.folder.is_dir():
            yield False
            return
        with open(create_private(self.folder / ".lock", exclusive=False, flags=os.O_RDWR), "r+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _waiting(self, entry_id: str) -> Path:
        return self.folder / f"{entry_id}.json"

    def _sent(self, entry_id: str) -> Path:
        return self.folder / "sent" / entry_id

    def _given_up(self, entry_id: str) -> Path:
        return self.folder / "failed" / f"{entry_id}.json"


def _redacted(problem: str, address: str) -> str:
    """The problem without the address: a webhook's path and query often hold its secret token, and the trail
    and the logs name contacts by channel and agency only."""
    parts = urlsplit(address) if "://" in address else None
    for secret in (address, parts.path + (f"?{parts.query}" if parts.query else "") if parts else ""):
        if len(secret) > 1:
            problem = problem.replace(secret, "[address]")
    return problem


def _destination(entry: dict) -> str:
    if entry["channel"] == "email":
        return "smtp"
    return f"webhook {urlsplit(entry['address']).netloc}"


def outbox_of(home) -> Outbox:
    return Outbox(home.state / "outbox")

