"""Signed heads of the audit chain, kept in the bucket, so a rewrite of the hub's own copy is caught.

A head names the last event of the trail at a moment (its sequence number and hash), signed by the hub
key. Heads go to s3://BUCKET/audit/heads/ and to DIR/audit/heads/. Verifying the trail against them
catches what a chain alone cannot: an attacker with the disk who rewrites the whole chain, or cuts
its tail.

A head is signed when a run ends its segment (`exchange.close_segment`) and, on a schedule, by
`close_if_new` (the `borderx_audit_anchor` DAG), so events written outside a run's end (a config change,
a run that died before its end) are covered within the hour too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from botocore.exceptions import BotoCoreError, ClientError

from borderx.audit.trail import AuditTrail, ChainBreak
from borderx.crypto import sshsig
from borderx.errors import AuditError

NAMESPACE = "borderx-audit"
PREFIX = "audit/heads/"


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str
    time: str
    hub_key: str

    def key(self) -> str:
        return f"{PREFIX}{self.seq:012d}.json"

    def encode(self) -> bytes:
        body = {"trail": "borderx-audit", "seq": self.seq, "hash": self.hash, "time": self.time, "hub_key": self.hub_key}
        return (json.dumps(body, sort_keys=True, indent=2) + "\n").encode()


def anchor(trail: AuditTrail, signing_key, hub_fingerprint: str, s3=None, bucket: str | None = None, *,
           event: dict | None = None) -> Head | None:
    """Signs the trail's current head (or `event`) and stores it locally and, given a client, in the bucket."""
    last = event
    if last is None:
        for last in trail.events():
            pass
    if last is None:
        return None
    head = Head(last["seq"], last["hash"], last["time"], hub_fingerprint)
    body = head.encode()
    signature = sshsig.sign(signing_key, body, NAMESPACE).encode()
    local = trail.folder / "heads"
    local.mkdir(parents=True, exist_ok=True)
    (local / Path(head.key()).name).write_bytes(body)
    (local / (Path(head.key()).name + ".sig")).write_bytes(signature)
    if s3 is not None:
        try:
            s3.put_object(Bucket=bucket, Key=head.key(), Body=body, ContentType="application/json")
            s3.put_object(Bucket=bucket, Key=head.key() + ".sig", Body=signature, ContentType="text/plain")
        except (ClientError, BotoCoreError) as exc:
            from borderx.bucket.client import failure

            raise failure(s3, f"s3://{bucket}/{head.key()}", exc) from exc
    return head


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


def newest_bucket_head(s3, bucket: str) -> tuple[bytes, bytes] | None:
    """The head with the highest sequence number in the bucket, with its signature, without reading the rest."""
    newest = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            # Keys carry the zero-padded sequence number, so the greatest key is the newest head.
            if obj["Key"].endswith(".json") and (newest is None or obj["Key"] > newest):
                newest = obj["Key"]
    if newest is None:
        return None
    body = s3.get_object(Bucket=bucket, Key=newest)["Body"].read()
    try:
        sig = s3.get_object(Bucket=bucket, Key=newest + ".sig")["Body"].read()
    except ClientError:
        sig = b""
    return body, sig


def close_if_new(trail: AuditTrail, signing_key, hub_fingerprint: str, hub_public_key: str, s3,
                 bucket: str) -> Closing:
    """Signs the trail's head into the bucket if events were added since the bucket's newest head.

    Refuses (AuditError) to sign a trail whose chain is broken or that no longer fits the newest head:
    a signature over a rewritten trail would vouch for the rewrite.
    """
    count, broken = trail.verify()
    if broken is not None:
        raise AuditError(f"{trail.path}: {broken}; no head signed")
    newest = newest_bucket_head(s3, bucket)
    previous = None
    if newest is not None:
        broken = check_heads(trail, [newest], hub_public_key)
        if broken is not None:
            raise AuditError(f"{trail.path}: {broken}; no head signed")
        previous = json.loads(newest[0])["seq"]
        if previous >= count:
            return Closing(count, previous, None)
    if count == 0:
        return Closing(0, previous, None)
    # The last event the chain check covered, not whatever a run appended since: only checked events are signed.
    event = next(e for e in trail.events() if e.get("seq") == count)
    return Closing(count, previous, anchor(trail, signing_key, hub_fingerprint, s3, bucket, event=event))


def bucket_heads(s3, bucket: str) -> list[tuple[bytes, bytes]]:
    """Every head in the bucket with its signature, oldest first."""
    pairs = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".json"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                try:
                    sig = s3.get_object(Bucket=bucket, Key=obj["Key"] + ".sig")["Body"].read()
                except ClientError:
                    sig = b""
                pairs.append((body, sig))
    return sorted(pairs, key=lambda p: json.loads(p[0]).get("seq", 0))


def local_heads(trail: AuditTrail) -> list[tuple[bytes, bytes]]:
    folder = trail.folder / "heads"
    pairs = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        sig = path.with_name(path.name + ".sig")
        pairs.append((path.read_bytes(), sig.read_bytes() if sig.exists() else b""))
    return pairs


def check_heads(trail: AuditTrail, heads: Iterable[tuple[bytes, bytes]], hub_public_key: str) -> ChainBreak | None:
    """The first signed head the trail does not match, as a chain break naming the event."""
    signed = []
    for body, signature in heads:
        try:
            sshsig.verify(hub_public_key, body, signature, NAMESPACE)
        except sshsig.SignatureError:
            return ChainBreak(0, "?", "a signed head in the bucket does not verify with the hub key")
        signed.append(json.loads(body))
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
