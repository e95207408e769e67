"""Deliveries in the bucket: listing them, and revoking one with a signed tombstone in its place."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

from borderx.crypto import sshsig
from borderx.errors import PublishError
from borderx.delivery.manifest import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE

TOMBSTONE_FILE = "tombstone.json"
TOMBSTONE_NAMESPACE = "borderx-tombstone"


@dataclass(frozen=True)
class Delivery:
    agreement: str
    recipient: str
    dataset: str
    date: str
    delivery_id: str
    prefix: str
    state: str  # complete, unfinished (no signature yet), revoked
    size: int

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(key: str):
    parts = key.split("/")
    if len(parts) != 9 or parts[0] != "deliveries":
        return None
    _, agreement, recipient, dataset, yyyy, mm, dd, delivery_id, name = parts
    return agreement, recipient, dataset, f"{yyyy}-{mm}-{dd}", delivery_id, "/".join(parts[:8]) + "/", name


def list_deliveries(s3, bucket: str, *, agreement: str | None = None, recipient: str | None = None,
                    dataset: str | None = None, since: dt.date | None = None,
                    until: dt.date | None = None) -> list[Delivery]:
    prefix = "deliveries/" + (f"{agreement}/" if agreement else "") + (f"{recipient}/" if agreement and recipient else "")
    found: dict[str, dict] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            parsed = _parse(obj["Key"])
            if parsed is None:
                continue
            agr, rec, ds, date, did, pfx, name = parsed
            entry = found.setdefault(pfx, {"fields": (agr, rec, ds, date, did, pfx), "names": set(), "size": 0})
            entry["names"].add(name)
            entry["size"] += obj["Size"]
    out = []
    for entry in found.values():
        agr, rec, ds, date, did, pfx = entry["fields"]
        if (recipient and rec != recipient) or (dataset and ds != dataset):
            continue
        day = dt.date.fromisoformat(date)
        if (since and day < since) or (until and day > until):
            continue
        names = entry["names"]
        state = "revoked" if TOMBSTONE_FILE in names else "complete" if SIGNATURE_FILE in names else "unfinished"
        out.append(Delivery(agr, rec, ds, date, did, pfx, state, entry["size"]))
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
    for name in (SIGNATURE_FILE, MANIFEST_FILE, DATA_FILE):
        s3.delete_object(Bucket=bucket, Key=delivery.prefix + name)
    return tombstone


def read_tombstone(s3, bucket: str, prefix: str, hub_public_key: str) -> dict:
    """A delivery's tombstone, after checking the hub signed it; raises sshsig.SignatureError if not."""
    body = s3.get_object(Bucket=bucket, Key=prefix + TOMBSTONE_FILE)["Body"].read()
    signature = s3.get_object(Bucket=bucket, Key=prefix + TOMBSTONE_FILE + ".sig")["Body"].read()
    sshsig.verify(hub_public_key, body, signature, TOMBSTONE_NAMESPACE)
    return json.loads(body)
