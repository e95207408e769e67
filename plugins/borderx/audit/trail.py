"""The local audit trail: one JSON event per line, each carrying the hash of the one before.

Appends take an exclusive lock on the trail so several workers never interleave or fork the chain.
Events hold ids, hashes, counts and outcomes, never a data value or key material.

Each event is in the file (the kernel's page cache) when `append` returns, so a killed process loses none, and
every other process appends after it. It is on the disk when `append` returns too, unless the thread appends in
a `grouped()` block: the events of a group go to the disk together, with one fsync, when the block ends or at
`commit()`, which the hub calls before it reports anything done that the group's events describe.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from borderx.audit.events import EVENT_TYPES, Event

TRAIL_FILE = "trail.jsonl"
GENESIS = "0" * 64

__all__ = ["AuditTrail", "ChainBreak", "check_chain", "EVENT_TYPES", "GENESIS", "TRAIL_FILE", "canonical", "event_hash"]


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(event: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in event.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    line: int
    seq: Any
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} (seq {self.seq}): {self.reason}"


class AuditTrail:
    def __init__(self, folder: Path, *, clock: Callable[[], dt.datetime] | None = None):
        self.folder = Path(folder)
        self.path = self.folder / TRAIL_FILE
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        # Per thread: how deep in grouped() blocks, and whether events wait for their fsync.
        self._group = threading.local()
        # Where this trail's last append ended (device, inode, size) and that event's seq and hash.
        self._tail: tuple[int, int, int, dict] | None = None

    def record(self, event: Event, *, actor: dict | None = None) -> dict:
        """Appends `event`, built with its class in borderx.audit.events; returns the line as written."""
        return self.append(event.TYPE, actor=actor, **event.details())

    def append(self, type_: str, *, actor: dict | None = None, **details: Any) -> dict:
        """Appends an event of a kind that borderx.audit.events defines; `record` also checks its fields."""
        # An unknown type is a programming error, not a new kind of event.
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown audit event type {type_!r}")
        with self._opened() as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                last = self._last(fh)
                event = {
                    "seq": (last["seq"] + 1) if last else 1,
                    "time": self._clock().isoformat().replace("+00:00", "Z"),
                    "type": type_,
                    "actor": actor or {"hub": True},
                    "details": details,
                    "prev": last["hash"] if last else GENESIS,
                }
                event["hash"] = event_hash(event)
                fh.seek(0, os.SEEK_END)
                fh.write(canonical(event) + b"\n")
                fh.flush()
                st = os.fstat(fh.fileno())
                self._tail = (st.st_dev, st.st_ino, st.st_size, {"seq": event["seq"], "hash": event["hash"]})
                if getattr(self._group, "depth", 0):
                    self._group.unsynced = True
                else:
                    os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return event

    def _opened(self):
        try:
            return open(self.path, "a+b")
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            return open(self.path, "a+b")

    def _last(self, fh) -> dict | None:
        """The last event's seq and hash. Read back from the file, unless the file is as this trail's own last
        append left it (same file, same size: no other writer appended since), which the lock held now keeps."""
        st = os.fstat(fh.fileno())
        if self._tail is not None and self._tail[:3] == (st.st_dev, st.st_ino, st.st_size):
            return self._tail[3]
        return _last_event(fh)

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Events this thread appends in the block reach the disk together, at its end (or at `commit`), with
        one fsync rather than one each; the block's end commits them whether it ends well or not."""
        self._group.depth = getattr(self._group, "depth", 0) + 1
        try:
            yield
        finally:
            self._group.depth -= 1
            if not self._group.depth:
                self.commit()

    def commit(self) -> None:
        """Puts the events this thread's group appended so far on the disk; nothing to do outside a group."""
        if getattr(self._group, "unsynced", False):
            self.sync()
            self._group.unsynced = False

    def sync(self) -> None:
        """Puts every event appended so far, by any process, on the disk (fsync of the trail file)."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def verify(self) -> tuple[int, ChainBreak | None]:
        """Recomputes the chain; returns how many events fit and the first that does not."""
        if not self.path.exists():
            return 0, None
        with open(self.path, encoding="utf-8") as fh:
            return check_chain(parse_lines(fh))


def parse_lines(lines: Iterable[str]) -> Iterator[dict | None]:
    for line in lines:
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            yield None


def check_chain(events: Iterable[dict | None]) -> tuple[int, ChainBreak | None]:
    """How many events, in order from the first, fit the hash chain, and the first that does not (None for
    a line that is not JSON)."""
    prev, expected_seq, count = GENESIS, 1, 0
    for lineno, event in enumerate(events, start=1):
        if not isinstance(event, dict):
            return count, ChainBreak(lineno, "?", "not a JSON event")
        seq = event.get("seq")
        if event.get("prev") != prev:
            return count, ChainBreak(lineno, seq, "does not follow the event before it (prev hash differs)")
        if event.get("hash") != event_hash(event):
            return count, ChainBreak(lineno, seq, "content changed (hash does not match)")
        if seq != expected_seq:
            return count, ChainBreak(lineno, seq, f"sequence number {seq}, expected {expected_seq}")
        prev, expected_seq, count = event["hash"], expected_seq + 1, count + 1
    return count, None


def _last_event(fh) -> dict | None:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size == 0:
        return None
    # Read backwards in blocks until the last complete line is in hand; the trail can be large.
    block, data = 4096, b""
    pos = size
    while pos > 0:
        step = min(block, pos)
        pos -= step
        fh.seek(pos)
        data = fh.read(step) + data
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or pos == 0:
            return json.loads(lines[-1])
    return None
