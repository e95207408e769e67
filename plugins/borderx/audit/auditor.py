"""What an auditor checks, trusting nothing on the hub but what they bring: a key, a bucket, a memory.

The events (the hub's trail, or the segments in the bucket) must form one hash chain; every signed head must
verify with the auditor's hub key, name an event of that chain, and name the head before it (`prev`), so a
head taken out of the middle is a gap; the newest head must be no older than the newest the auditor saw
before (the state file), or it is a rollback; events after the newest head are unanchored and fail once
older than `audit.max_unanchored_age`; each head's RFC 3161 token must be a time stamp of its bytes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from borderx.audit.anchors import FIRST_PREV, StoredHead, head_digest
from borderx.audit.timestamps import verify_token
from borderx.audit.trail import ChainBreak, check_chain
from borderx.config.models import AuditSettings
from borderx.errors import AuditError, TimestampError

# A TSA's clock and the hub's may differ a little; more than this and a token "before" its head is a lie.
CLOCK_SLACK = dt.timedelta(minutes=5)


def read_hub_key(path: Path) -> str:
    """The ed25519 public key of an `allowed_signers` line or a `.pub` file (its first such key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"{path}: cannot be read as a key file ({exc})") from None
    for line in text.splitlines():
        words = line.split()
        if "ssh-ed25519" in words:
            at = words.index("ssh-ed25519")
            if at + 1 < len(words):
                return f"ssh-ed25519 {words[at + 1]}"
    raise AuditError(f"{path}: no ssh-ed25519 key in it (an allowed_signers line or a .pub file is expected)")


@dataclass(frozen=True)
class Seen:
    """The newest head an auditor accepted, kept in their state file between runs."""

    seq: int
    hash: str
    head_sha256: str
    events: int
    # The first head seen with a time stamp: from there on a head without one is a token taken away.
    stamped_from: int | None = None

    @classmethod
    def load(cls, path: Path) -> Seen | None:
        if not path.exists():
            return None
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            stamped = d.get("stamped_from")
            return cls(int(d["seq"]), str(d["hash"]), str(d["head_sha256"]), int(d["events"]),
                       int(stamped) if stamped is not None else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"{path}: not a state file borderx audit verify wrote ({exc})") from None

    def save(self, path: Path, checked_at: dt.datetime) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {**self.__dict__, "checked_at": checked_at.isoformat().replace("+00:00", "Z")}
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)


@dataclass(frozen=True)
class TimeStamps:
    """The TSA's CA to check tokens against (None: not checked), with its policy, and where it came from."""

    ca_pem: bytes | None
    policy: str | None
    source: str


@dataclass
class Findings:
    events: int = 0
    heads: int = 0
    newest: Seen | None = None
    # The first event that does not fit (chain) or that a signed head contradicts, for pages that point at it.
    broken: ChainBreak | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Tap:
    """Passes events to the chain check while keeping what the head checks need, in one pass."""

    def __init__(self, events: Iterable[dict | None], wanted: set[int], after: int):
        self.events, self.wanted, self.after = events, wanted, after
        self.by_seq: dict[int, dict] = {}
        self.last_seq = 0
        self.unanchored = 0
        self.first_unanchored: dict | None = None

    def __iter__(self) -> Iterator[dict | None]:
        for event in self.events:
            seq = event.get("seq") if isinstance(event, dict) else None
            if isinstance(seq, int):
                self.last_seq = max(self.last_seq, seq)
                if seq in self.wanted:
                    self.by_seq[seq] = event
                if seq > self.after:
                    self.unanchored += 1
                    self.first_unanchored = self.first_unanchored or event
            yield event


def check(events: Iterable[dict | None], heads: list[StoredHead], tokens: dict[int, bytes | None | str],
          hub_key: str, *, settings: AuditSettings, stamps: TimeStamps, now: dt.datetime,
          seen: Seen | None = None) -> Findings:
    """Every check above over one trail; `tokens` maps a head's seq to its token, None, or why it is unreadable."""
    found = Findings(heads=len(heads))
    signed = _signed_heads(heads, hub_key, found)
    newest = signed[-1] if signed else None
    tap = _Tap(events, {h["seq"] for _, h in signed}, newest[1]["seq"] if newest else 0)
    try:
        found.events, broken = check_chain(tap)
    except AuditError as exc:
        found.problems.append(str(exc))
        return found
    if broken is not None:
        found.broken = broken
        found.problems.append(f"the chain breaks at event {broken.line} (seq {broken.seq}): {broken.reason}")
    else:
        # A chain broken before a head's event leaves nothing to compare the head with.
        _heads_fit_events(signed, tap, found)
    _heads_chain(signed, found)
    if found.events and not signed:
        found.problems.append(f"{found.events} events and no signed head that verifies: nothing anchors the trail")
    _unanchored(tap, newest, settings, now, found)
    stamped_from = _time_stamps(signed, tokens, stamps, settings, now, found, seen.stamped_from if seen else None)
    if newest is not None:
        stored, head = newest
        found.newest = Seen(head["seq"], head["hash"], head_digest(stored.body), found.events, stamped_from)
    _rollback(seen, found, {h["seq"]: h for _, h in signed})
    return found


def _signed_heads(heads: list[StoredHead], hub_key: str, found: Findings) -> list[tuple[StoredHead, dict]]:
    signed = []
    for stored in sorted(heads, key=lambda s: s.seq):
        head = stored.signed(hub_key)
        if head is None:
            found.problems.append(f"a signed head does not verify: {stored.refusal()}")
        else:
            signed.append((stored, head))
    return signed


def _heads_fit_events(signed, tap: _Tap, found: Findings) -> None:
    for _, head in signed:
        event = tap.by_seq.get(head["seq"])
        if event is None:
            reason = (f"missing: the events end at seq {tap.last_seq} but a head signed at {head['time']} covers "
                      f"seq {head['seq']} (tail cut)")
        elif event.get("hash") != head["hash"]:
            reason = "differs from the signed head (trail rewritten)"
        else:
            continue
        found.problems.append(f"event {head['seq']}: {reason}")
        found.broken = found.broken or ChainBreak(head["seq"], head["seq"], reason)


def _heads_chain(signed, found: Findings) -> None:
    """Each chained head must name the one before it; once heads are chained, every later one must be."""
    before: tuple[StoredHead, dict] | None = None
    for stored, head in signed:
        prev = head.get("prev")
        if prev is None:
            if before is not None and before[1].get("prev") is not None:
                found.problems.append(f"head {head['seq']} names no previous head, but head {before[1]['seq']} "
                                      "before it does (heads chain broken)")
        else:
            expected = head_digest(before[0].body) if before else FIRST_PREV
            if prev != expected:
                after = f"head {before[1]['seq']}" if before else "the first head"
                found.problems.append(f"head {head['seq']} does not follow {after}: a head between them is missing "
                                      "or changed (gap in the heads)")
        before = (stored, head)


def _unanchored(tap: _Tap, newest, settings: AuditSettings, now: dt.datetime, found: Findings) -> None:
    if tap.first_unanchored is None:
        return
    after = f"after head {newest[1]['seq']}" if newest else "with no head"
    try:
        since = dt.datetime.fromisoformat(str(tap.first_unanchored.get("time")).replace("Z", "+00:00"))
        age = now - since
    except ValueError:
        age = settings.max_unanchored_age + dt.timedelta(seconds=1)
    line = (f"{tap.unanchored} unanchored event(s) {after}, the oldest {_duration(age)} old "
            f"(audit.max_unanchored_age {_duration(settings.max_unanchored_age)})")
    (found.problems if age > settings.max_unanchored_age else found.notes).append(line)


def _time_stamps(signed, tokens, stamps: TimeStamps, settings: AuditSettings, now: dt.datetime,
                 found: Findings, stamped_from: int | None) -> int | None:
    """Checks each head's token; returns the first head known to be stamped (from the state file, or now)."""
    if stamps.ca_pem is None:
        if any(isinstance(tokens.get(h["seq"]), bytes) for _, h in signed):
            found.notes.append(f"time stamps not checked: {stamps.source}")
        return stamped_from
    for stored, head in signed:
        token, seq = tokens.get(head["seq"]), head["seq"]
        if isinstance(token, str):
            found.problems.append(f"head {seq}: time stamp unreadable: {token}")
        elif token is None:
            _missing_token(stamped_from, head, settings, now, found)
        else:
            try:
                when = verify_token(token, stored.body, stamps.ca_pem, stamps.policy)
            except TimestampError as exc:
                found.problems.append(f"head {seq}: {stored.where}.tsr: {exc}")
                continue
            stamped_from = min(stamped_from or seq, seq)
            signed_at = dt.datetime.fromisoformat(head["time"].replace("Z", "+00:00"))
            if when + CLOCK_SLACK < signed_at:
                found.problems.append(f"head {seq}: time-stamped at {when:%Y-%m-%dT%H:%M:%SZ}, before the time "
                                      f"{head['time']} it gives its last event")
            else:
                found.notes.append(f"head {seq}: last event {head['time']}, time-stamped {when:%Y-%m-%dT%H:%M:%SZ}")
    return stamped_from


def _missing_token(stamped_from, head: dict, settings: AuditSettings, now: dt.datetime, found: Findings) -> None:
    seq = head["seq"]
    if stamped_from is None or seq < stamped_from:
        found.notes.append(f"head {seq}: no time stamp (signed before time stamps began)")
        return
    age = now - dt.datetime.fromisoformat(head["time"].replace("Z", "+00:00"))
    line = (f"head {seq}: no time stamp, {_duration(age)} after its last event (audit.acceptable_timestamp_failure "
            f"{_duration(settings.acceptable_timestamp_failure)})")
    (found.problems if age > settings.acceptable_timestamp_failure else found.notes).append(line)


def _rollback(seen: Seen | None, found: Findings, by_seq: dict[int, dict]) -> None:
    if seen is None:
        return
    newest = found.newest
    if newest is None or newest.seq < seen.seq:
        found.problems.append(f"rollback: the newest signed head is {newest.seq if newest else 'none'}, but head "
                              f"{seen.seq} was seen before (state file)")
    elif seen.seq in by_seq and by_seq[seen.seq]["hash"] != seen.hash:
        found.problems.append(f"head {seen.seq} differs from the one seen before (state file): history rewritten")
    if found.events < seen.seq:
        found.problems.append(f"rollback: {found.events} events, but head {seen.seq} was seen before (state file)")


def _duration(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
