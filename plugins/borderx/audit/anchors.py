"""Signed heads of the audit chain, kept in the bucket, so a rewrite of the hub's own copy is caught.

A head names the last event of the trail at a moment (its sequence number and hash), signed by the hub
key. Heads go to s3://BUCKET/audit/heads/ and to DIR/audit/heads/. Verifying the trail against them
catches what a chain alone cannot: an attacker with the disk who rewrites the whole chain, or cuts
its tail.

A head is signed when a run ends its segment (`exchange.close_segment`) and, on a schedule, by
`close_if_new` (the `borderx_audit_anchor` DAG), so events written outside a run's end (a config change,
a run that died before its end) are covered within the hour too. Each head names the SHA-256 of the head
before it (`prev`), so heads form a chain of their own; the events it covers go to the bucket first, as a
segment (`borderx.audit.segments`), and its RFC 3161 token after it (`borderx.audit.timestamps`).
The auditor's checks over all of this are in `borderx.audit.auditor`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from borderx.audit.segments import put_segment
from borderx.audit.timestamps import TOKEN_SUFFIX, Stamping
from borderx.audit.trail import AuditTrail, ChainBreak
from borderx.bucket.objects import MAX_HEAD_BYTES, MAX_SIGNATURE_BYTES, parse_head_key, read_capped
from borderx.crypto import sshsig
from borderx.errors import AuditError, BucketObjectError

NAMESPACE = "borderx-audit"
PREFIX = "audit/heads/"
# A head's own signature and its time-stamp token sit beside it under the same name.
_COMPANION = re.compile(r"audit/heads/[0-9]{12}\.json\.(sig|tsr)")

log = logging.getLogger(__name__)


# The `prev` of the first head: no head before it.
FIRST_PREV = "0" * 64


def head_digest(body: bytes) -> str:
    """What the next head names as its `prev`: SHA-256 of this head's bytes as signed."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    time: str
    hub_key: str
    # SHA-256 of the previous head's bytes, so heads form a chain of their own; heads signed before heads
    # were chained have none.
    prev: str | None = None

    def key(self) -> str:
        return f"{PREFIX}{self.seq:012d}.json"

    def encode(self) -> bytes:
        body = {"trail": "borderx-audit", "seq": self.seq, "hash": self.hash, "time": self.time, "hub_key": self.hub_key}
        if self.prev is not None:
            body["prev"] = self.prev
        return (json.dumps(body, sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def decode(cls, body: bytes) -> Head:
        d = json.loads(body)
        return cls(d["seq"], d["hash"], d["time"], d["hub_key"], d.get("prev"))


def anchor(trail: AuditTrail, signing_key, hub_fingerprint: str, s3=None, bucket: str | None = None, *,
           event: dict | None = None, stamping: Stamping | None = None) -> Head | None:
    """Signs the trail's current head (or `event`) and stores it locally and, given a client, in the bucket,
    after the segment of events it ends; then asks for its time stamp, if settings name a TSA."""
    local = trail.folder / "heads"
    # A head signed, and perhaps put in the bucket, names only events on the disk.
    trail.sync()
    with _heads_locked(local):
        last = event
        if last is None:
            for last in trail.events():
                pass
        if last is None:
            return None
        previous = _newest_local(local)
        signed = previous is None or previous[0] < last["seq"]
        if signed:
            head = Head(last["seq"], last["hash"], last["time"], hub_fingerprint,
                        head_digest(previous[1]) if previous else FIRST_PREV)
            _store_head(trail, head, signing_key, local, s3, bucket, first=previous[0] + 1 if previous else 1)
        elif previous[0] > last["seq"]:
            raise AuditError(f"{trail.path}: ends at seq {last['seq']} but {local} holds a head signed at seq "
                             f"{previous[0]}; no head signed")
        else:
            head = Head.decode(previous[1])
    if stamping is not None:
        # A head signed before has its token, or waits for it already.
        stamping.stamp(head.seq if signed else None, local, _token_store(local, s3, bucket))
    return head


def _store_head(trail: AuditTrail, head: Head, signing_key, local: Path, s3, bucket: str | None, *,
                first: int) -> None:
    body = head.encode()
    signature = sshsig.sign(signing_key, body, NAMESPACE).encode()
    (local / Path(head.key()).name).write_bytes(body)
    (local / (Path(head.key()).name + ".sig")).write_bytes(signature)
    if s3 is not None:
        # The segment first: a head in the bucket always has its events there too.
        put_segment(s3, bucket, trail.path, first, head.seq)
        _put(s3, bucket, head.key(), body, "application/json")
        _put(s3, bucket, head.key() + ".sig", signature, "text/plain")


def _put(s3, bucket: str, key: str, body: bytes, content_type: str) -> None:
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    except (ClientError, BotoCoreError) as exc:
        from borderx.bucket.client import failure

        raise failure(s3, f"s3://{bucket}/{key}", exc) from exc


def _token_store(local: Path, s3, bucket: str | None):
    def store(seq: int, token: bytes) -> None:
        name = f"{seq:012d}.json{TOKEN_SUFFIX}"
        (local / name).write_bytes(token)
        if s3 is not None:
            _put(s3, bucket, PREFIX + name, token, "application/timestamp-reply")
    return store


def stamp_waiting(trail: AuditTrail, stamping: Stamping, s3=None, bucket: str | None = None) -> None:
    """Tries the TSA again for heads still waiting for their time stamp."""
    stamping.stamp(None, trail.folder / "heads", _token_store(trail.folder / "heads", s3, bucket))


def check_publishing(trail: AuditTrail, stamping: Stamping, s3=None, bucket: str | None = None) -> None:
    """TimestampingStopped while heads have waited for a time stamp longer than settings accept."""
    stamping.check_publishing(trail.folder / "heads", _token_store(trail.folder / "heads", s3, bucket))


def _newest_local(folder: Path) -> tuple[int, bytes] | None:
    """(seq, bytes) of the newest head in the local folder, or None."""
    seqs = [parse_head_key(PREFIX + p.name) for p in folder.glob("*.json")]
    seqs = [s for s in seqs if s is not None]
    if not seqs:
        return None
    newest = max(seqs)
    return newest, (folder / f"{newest:012d}.json").read_bytes()


@contextmanager
def _heads_locked(folder: Path) -> Iterator[None]:
    """One anchor at a time: two would name the same previous head and fork the chain of heads."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Closing:
    """What a scheduled close did: the head it signed, or None when the bucket's newest head is current."""

    events: int
    previous_seq: int | None
    head: Head | None

    def to_dict(self) -> dict:
        return {"events": self.events, "previous_seq": self.previous_seq,
                "signed": asdict(self.head) if self.head else None,
                "key": self.head.key() if self.head else None}


@dataclass(frozen=True)
class StoredHead:
    """A head as found in the bucket or the local folder, before anything in it is believed."""

    where: str  # s3://BUCKET/audit/heads/SEQ.json or a local path
    seq: int  # the one its name gives
    body: bytes
    signature: bytes
    problem: str | None = None  # why it could not even be read, naming where

    def signed(self, hub_public_key: str) -> dict | None:
        """The head's fields if the hub signed it and it is the head its name says; else None."""
        if self.problem is not None:
            return None
        try:
            sshsig.verify(hub_public_key, self.body, self.signature, NAMESPACE)
        except (sshsig.SignatureError, ValueError):
            return None
        # Signed by the hub, so well formed; only its place is checked, since a copy can sit under any name.
        head = json.loads(self.body)
        return head if head.get("seq") == self.seq else None

    def refusal(self) -> str:
        return self.problem or f"{self.where} does not verify with the hub key as the head of seq {self.seq}"


def _head_keys(s3, bucket: str) -> list[tuple[int, str]]:
    """(seq, key) of the heads in the bucket, oldest first; keys of another shape are skipped with a warning."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            seq = parse_head_key(key)
            if seq is not None:
                found.append((seq, key))
            elif not _COMPANION.fullmatch(key):
                log.warning("%r is not an audit head (audit/heads/SEQ.json, SEQ 12 digits); skipped",
                            f"s3://{bucket}/{key}")
    return sorted(found)


def _read_bucket_head(s3, bucket: str, seq: int, key: str) -> StoredHead:
    where = f"s3://{bucket}/{key}"
    try:
        body = read_capped(s3, bucket, key, MAX_HEAD_BYTES)
        signature = read_capped(s3, bucket, key + ".sig", MAX_SIGNATURE_BYTES)
    except BucketObjectError as exc:
        return StoredHead(where, seq, b"", b"", problem=str(exc))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        return StoredHead(where, seq, b"", b"", problem=f"{where}: it or its signature (.sig) is gone")
    return StoredHead(where, seq, body, signature)


def newest_signed_head(s3, bucket: str, hub_public_key: str) -> StoredHead | None:
    """The newest head in the bucket that the hub signed; newer ones that do not verify are skipped with a
    warning, so junk put in the bucket cannot stop the hub from signing heads."""
    for seq, key in reversed(_head_keys(s3, bucket)):
        head = _read_bucket_head(s3, bucket, seq, key)
        if head.signed(hub_public_key) is not None:
            return head
        log.warning("%s; skipped", head.refusal())
    return None


def close_if_new(trail: AuditTrail, signing_key, hub_fingerprint: str, hub_public_key: str, s3,
                 bucket: str, *, stamping: Stamping | None = None) -> Closing:
    """Signs the trail's head into the bucket if events were added since the bucket's newest signed head.

    Refuses (AuditError) to sign a trail whose chain is broken or that no longer fits the newest head:
    a signature over a rewritten trail would vouch for the rewrite.
    """
    count, broken = trail.verify()
    if broken is not None:
        raise AuditError(f"{trail.path}: {broken}; no head signed")
    newest = newest_signed_head(s3, bucket, hub_public_key)
    previous = None
    if newest is not None:
        broken = check_heads(trail, [newest], hub_public_key)
        if broken is not None:
            raise AuditError(f"{trail.path}: {broken}; no head signed")
        previous = newest.seq
    if count == 0 or (previous is not None and previous >= count):
        if stamping is not None:
            stamp_waiting(trail, stamping, s3, bucket)
        return Closing(count, previous, None)
    # The last event the chain check covered, not whatever a run appended since: only checked events are signed.
    event = next(e for e in trail.events() if e.get("seq") == count)
    return Closing(count, previous, anchor(trail, signing_key, hub_fingerprint, s3, bucket, event=event,
                                           stamping=stamping))


def bucket_heads(s3, bucket: str) -> list[StoredHead]:
    """Every head in the bucket with its signature, oldest first, each read no further than a head can be."""
    return [_read_bucket_head(s3, bucket, seq, key) for seq, key in _head_keys(s3, bucket)]


def local_heads(trail: AuditTrail) -> list[StoredHead]:
    folder = trail.folder / "heads"
    heads = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        seq = parse_head_key(PREFIX + path.name)
        if seq is None:
            log.warning("%r is not an audit head (SEQ.json, SEQ 12 digits); skipped", str(path))
            continue
        sig = path.with_name(path.name + ".sig")
        if path.stat().st_size > MAX_HEAD_BYTES or (sig.exists() and sig.stat().st_size > MAX_SIGNATURE_BYTES):
            heads.append(StoredHead(str(path), seq, b"", b"", problem=f"{path}: larger than a signed head can be"))
            continue
        heads.append(StoredHead(str(path), seq, path.read_bytes(), sig.read_bytes() if sig.exists() else b""))
    return heads


def check_heads(trail: AuditTrail, heads: Iterable[StoredHead], hub_public_key: str) -> ChainBreak | None:
    """The first stored head that is not the hub's, or that the trail does not match, as a chain break."""
    signed = []
    for stored in heads:
        head = stored.signed(hub_public_key)
        if head is None:
            return ChainBreak(0, stored.seq, f"a signed head does not verify: {stored.refusal()}")
        signed.append(head)
    # Only the events the heads name are kept: the trail itself can be far larger than memory should hold.
    wanted = {h["seq"] for h in signed}
    by_seq, last_seq = {}, 0
    for e in trail.events():
        if isinstance(e.get("seq"), int):
            last_seq = max(last_seq, e["seq"])
            if e["seq"] in wanted:
                by_seq[e["seq"]] = e
    for head in signed:
        event = by_seq.get(head["seq"])
        if event is None:
            return ChainBreak(head["seq"], head["seq"], f"missing: the trail ends at seq {last_seq} but a head signed at "
                              f"{head['time']} covers seq {head['seq']} (tail cut)")
        if event.get("hash") != head["hash"]:
            return ChainBreak(head["seq"], head["seq"], "differs from the signed head in the bucket (trail rewritten)")
    return None


@dataclass(frozen=True)
class Verdict:
    events: int
    heads: int
    broken: ChainBreak | None


def verify(trail: AuditTrail, hub_public_key: str, s3=None, bucket: str | None = None) -> Verdict:
    """The chain, then every signed head: the bucket's when a client is given, else the local copies."""
    count, broken = trail.verify()
    heads = bucket_heads(s3, bucket) if s3 is not None else local_heads(trail)
    if broken is None:
        broken = check_heads(trail, heads, hub_public_key)
    return Verdict(count, len(heads), broken)
