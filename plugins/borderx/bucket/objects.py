"""What the hub and the recipient accept from the bucket before they parse it: keys of the known shapes,
and objects no larger than the size caps.

Anyone who can write to the bucket can put any key and any number of bytes there. Keys are parsed strictly
(a malformed one is skipped by the caller with a warning naming it) and every small object is read with a
Range request, so a planted 300 MB "tombstone" costs one capped read, never 300 MB of memory.
"""

from __future__ import annotations

import datetime as dt
import re

from botocore.exceptions import ClientError

from borderx.config.models import SLUG
from borderx.delivery.manifest import DeliveryLocation
from borderx.errors import BucketObjectError

# Caps on what is read from the bucket, with a wide margin over real sizes: a manifest is a few KB, an SSH
# signature about 300 bytes, a tombstone and a signed audit head under 1 KB each.
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 16 << 10
MAX_TOMBSTONE_BYTES = 64 << 10
MAX_HEAD_BYTES = 64 << 10

# Every part of a delivery's key ends up in a local path on the recipient's side: plain names only.
_NAME = re.compile(SLUG)
_DAY = re.compile(r"[0-9]{4}/[0-9]{2}/[0-9]{2}")
_HEAD = re.compile(r"audit/heads/([0-9]{12})\.json")


def parse_location(prefix: str) -> DeliveryLocation | None:
    """deliveries/AGREEMENT/RECIPIENT/DATASET/YYYY/MM/DD/DELIVERY_ID[/] as a location, or None.

    Only plain names and real dates are accepted.
    """
    parts = prefix.strip("/").split("/")
    if len(parts) != 8 or parts[0] != "deliveries":
        return None
    _, agreement, recipient, dataset, yyyy, mm, dd, delivery_id = parts
    if not all(_NAME.fullmatch(p) for p in (agreement, recipient, dataset, delivery_id)):
        return None
    if not _DAY.fullmatch(f"{yyyy}/{mm}/{dd}"):
        return None
    try:
        day = dt.date(int(yyyy), int(mm), int(dd))
    except ValueError:
        return None
    return DeliveryLocation(agreement, recipient, dataset, day.isoformat(), delivery_id)


def parse_delivery_key(key: str) -> tuple[DeliveryLocation, str] | None:
    """(location, file name) of an object key inside a delivery's folder, or None for any other key."""
    prefix, _, name = key.rpartition("/")
    location = parse_location(prefix)
    if location is None or not _NAME.fullmatch(name):
        return None
    return location, name


def parse_head_key(key: str) -> int | None:
    """The sequence number an audit head's key names (audit/heads/SEQ.json, SEQ 12 digits), or None."""
    found = _HEAD.fullmatch(key)
    return int(found.group(1)) if found else None


def read_capped(s3, bucket: str, key: str, limit: int) -> bytes:
    """The object's bytes, refused with BucketObjectError if it is larger than `limit`.

    Only the first limit + 1 bytes are asked for; the object's full size, from Content-Range, refuses it
    before any of its body is read. Bucket errors (a missing key included) propagate as botocore raises them.
    """
    try:
        response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")
    except ClientError as exc:
        # An empty object has no byte 0 to give.
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":
            return b""
        raise
    with response["Body"] as body:
        total = response.get("ContentRange", "").rpartition("/")[2]
        if total.isdigit() and int(total) > limit:
            raise BucketObjectError(f"s3://{bucket}/{key} is {int(total)} bytes, more than the {limit} allowed")
        data = body.read(limit + 1)
    if len(data) > limit:
        raise BucketObjectError(f"s3://{bucket}/{key} is more than the {limit} bytes allowed")
    return data
