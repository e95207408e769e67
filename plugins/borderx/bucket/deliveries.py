"""Deliveries in the bucket: listing them, and revoking one with a signed tombstone in its place."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Sequence

from botocore.exceptions import ClientError

from borderx.bucket.objects import (
    MAX_SIGNATURE_BYTES,
    MAX_TOMBSTONE_BYTES,
    parse_delivery_key,
    parse_location,
    read_capped,
)
from borderx.crypto import sshsig
from borderx.delivery.layout import DATA_FILES
from borderx.delivery.manifest import MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation
from borderx.errors import BucketObjectError, PublishError

TOMBSTONE_FILE = "tombstone.json"
TOMBSTONE_NAMESPACE = "borderx-tombstone"
TOMBSTONE_FILES = frozenset({TOMBSTONE_FILE, TOMBSTONE_FILE + ".sig"})
# The fields that tie a tombstone to the one delivery it revokes.
_NAMED = ("delivery_id", "agreement", "recipient", "dataset")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    agreement: str
    recipient: str
    dataset: str
    date: str
    delivery_id: str
    prefix: str
    state: str  # complete, unfinished (no signature yet), revoked (a tombstone is there)
    size: int
    # The file names in the delivery's folder: a tombstone beside data files leaves data to delete.
    names: frozenset[str] = field(default=frozenset(), compare=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["names"]
        return out

    @property
    def location(self) -> DeliveryLocation:
        return DeliveryLocation(self.agreement, self.recipient, self.dataset, self.date, self.delivery_id)


def list_deliveries(s3, bucket: str, *, agreement: str | None = None, recipient: str | None = None,
                    dataset: str | None = None, since: dt.date | None = None,
                    until: dt.date | None = None,
                    hub_keys: str | Sequence[str] | None = None) -> list[Delivery]:
    """Deliveries by their folders; a key of another shape is skipped with a warning naming it.

    With `hub_keys`, a delivery counts as revoked only if its tombstone is the hub's for that folder; without,
    any tombstone.json there makes it revoked (no object is read).
    """
    prefix = "deliveries/" + (f"{agreement}/" if agreement else "") + (f"{recipient}/" if agreement and recipient else "")
    found: dict[DeliveryLocation, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            parsed = parse_delivery_key(obj["Key"])
            if parsed is None:
                # repr: a key is whatever a bucket writer chose, control characters included.
                log.warning("%r is not a delivery file (deliveries/AGREEMENT/RECIPIENT/DATASET/YYYY/MM/DD/"
                            "DELIVERY_ID/NAME); skipped", f"s3://{bucket}/{obj['Key']}")
                continue
            location, name = parsed
            entry = found.setdefault(location, {"names": set(), "size": 0})
            entry["names"].add(name)
            entry["size"] += obj["Size"]
    out = []
    for loc, entry in found.items():
        if (recipient and loc.recipient != recipient) or (dataset and loc.dataset != dataset):
            continue
        day = dt.date.fromisoformat(loc.date)
        if (since and day < since) or (until and day > until):
            continue
        names = entry["names"]
        state = "complete" if SIGNATURE_FILE in names else "unfinished"
        if TOMBSTONE_FILE in names and (hub_keys is None or _holds(s3, bucket, loc, hub_keys)):
            state = "revoked"
        out.append(Delivery(loc.agreement, loc.recipient, loc.dataset, loc.date, loc.delivery_id, loc.prefix, state,
                            entry["size"], frozenset(names)))
    return sorted(out, key=lambda d: (d.date, d.agreement, d.recipient, d.delivery_id))


def find(s3, bucket: str, delivery_id: str) -> Delivery:
    for d in list_deliveries(s3, bucket):
        if d.delivery_id == delivery_id:
            return d
    raise PublishError(f"no delivery {delivery_id} in s3://{bucket}/deliveries/")


def revoke(s3, bucket: str, delivery: Delivery, *, reason: str, signing_key, hub_fingerprint: str,
           now: dt.datetime) -> dict:
    """Removes a delivery, signature first so it stops existing at once, and leaves a signed tombstone."""
    tombstone = {
        "delivery_id": delivery.delivery_id, "agreement": delivery.agreement, "recipient": delivery.recipient,
        "dataset": delivery.dataset, "revoked_at": now.isoformat().replace("+00:00", "Z"), "reason": reason,
        "hub_signing_key": hub_fingerprint,
    }
    body = (json.dumps(tombstone, indent=2, sort_keys=True) + "\n").encode()
    signature = sshsig.sign(signing_key, body, TOMBSTONE_NAMESPACE).encode()
    s3.put_object(Bucket=bucket, Key=delivery.prefix + TOMBSTONE_FILE, Body=body, ContentType="application/json")
    s3.put_object(Bucket=bucket, Key=delivery.prefix + TOMBSTONE_FILE + ".sig", Body=signature, ContentType="text/plain")
    for name in (SIGNATURE_FILE, MANIFEST_FILE, *DATA_FILES.values()):
        s3.delete_object(Bucket=bucket, Key=delivery.prefix + name)
    return tombstone


def read_tombstone(s3, bucket: str, where: DeliveryLocation | str, hub_keys: str | Sequence[str]) -> dict:
    """The tombstone of the delivery at `where`, once the hub's signature and the place it names are checked.

    Raises sshsig.SignatureError if no hub key signed it, and BucketObjectError if it is larger than a
    tombstone can be or revokes another delivery than the one at `where` (a copy of another's tombstone).
    """
    location = where if isinstance(where, DeliveryLocation) else parse_location(where)
    if location is None:
        raise BucketObjectError(f"s3://{bucket}/{where}: not a delivery's folder")
    key = location.key(TOMBSTONE_FILE)
    body = read_capped(s3, bucket, key, MAX_TOMBSTONE_BYTES)
    try:
        signature = read_capped(s3, bucket, key + ".sig", MAX_SIGNATURE_BYTES)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
        signature = b""
    keys = [hub_keys] if isinstance(hub_keys, str) else list(hub_keys)
    if not any(_signed(key_line, body, signature) for key_line in keys):
        raise sshsig.SignatureError(f"s3://{bucket}/{key} is not signed by the hub")
    try:
        tombstone = json.loads(body)
        named = tuple(tombstone[name] for name in _NAMED)
    except (ValueError, KeyError, TypeError):
        raise BucketObjectError(f"s3://{bucket}/{key} lacks the fields a tombstone has") from None
    if named != (location.delivery_id, location.agreement, location.recipient, location.dataset):
        raise BucketObjectError(f"s3://{bucket}/{key} revokes delivery {named[0]!r} ({named[1]}, {named[2]}, "
                                f"{named[3]}), not the one in its folder")
    return tombstone


def _holds(s3, bucket: str, location: DeliveryLocation, hub_keys: str | Sequence[str]) -> bool:
    try:
        read_tombstone(s3, bucket, location, hub_keys)
    except (sshsig.SignatureError, BucketObjectError) as exc:
        log.warning("%s; the delivery is not revoked by it", exc)
        return False
    return True


def _signed(key_line: str, body: bytes, signature: bytes) -> bool:
    try:
        sshsig.verify(key_line, body, signature, TOMBSTONE_NAMESPACE)
    except (sshsig.SignatureError, ValueError):
        return False
    return True
