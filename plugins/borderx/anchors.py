"""Signed heads of the audit chain, kept in the bucket, so a rewrite of the hub's own copy is caught.

A head names the last event of the trail at a moment (its sequence number and hash), signed by the hub
key. Heads go to s3://BUCKET/audit/heads/ and to DIR/audit/heads/. Verifying the trail against them
catches what a chain alone cannot: an attacker with the disk who rewrites the whole chain, or cuts
its tail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from borderx.audit import AuditTrail, ChainBreak
from borderx.crypto import sshsig

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


def anchor(trail: AuditTrail, signing_key, hub_fingerprint: str, s3=None, bucket: str | None = None) -> Head | None:
    """Signs the trail's current head and stores it locally and, given a client, in the bucket."""
    last = None
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
        s3.put_object(Bucket=bucket, Key=head.key(), Body=body, ContentType="application/json")
        s3.put_object(Bucket=bucket, Key=head.key() + ".sig", Body=signature, ContentType="text/plain")
    return head


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


def check_heads(trail: AuditTrail, heads: list[tuple[bytes, bytes]], hub_public_key: str) -> ChainBreak | None:
    """The first signed head the trail does not match, as a chain break naming the event."""
    by_seq = {e["seq"]: e for e in trail.events() if isinstance(e.get("seq"), int)}
    last_seq = max(by_seq, default=0)
    for body, signature in heads:
        try:
            sshsig.verify(hub_public_key, body, signature, NAMESPACE)
        except sshsig.SignatureError:
            return ChainBreak(0, "?", "a signed head in the bucket does not verify with the hub key")
        head = json.loads(body)
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
