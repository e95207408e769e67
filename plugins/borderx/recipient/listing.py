"""Where a recipient's deliveries are in the bucket, and which of them the hub revoked."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from borderx.config.models import SLUG
from borderx.bucket.deliveries import TOMBSTONE_FILE
from borderx.bucket.objects import parse_delivery_key
from borderx.delivery.manifest import SIGNATURE_FILE, DeliveryLocation
from borderx.errors import BucketUnreadable, RecipientUsageError, is_transient

_SAFE = re.compile(SLUG)
log = logging.getLogger(__name__)


def check_name(kind: str, value: str) -> str:
    if not _SAFE.fullmatch(value or ""):
        raise RecipientUsageError(f"{kind} {value!r} is not a valid id")
    return value


def _bucket_error(bucket: str, exc: Exception) -> BucketUnreadable:
    if isinstance(exc, ClientError):
        what = exc.response.get("Error", {}).get("Code")
    else:
        what = exc.__class__.__name__
    return BucketUnreadable(f"s3://{bucket}: {what}", transient=is_transient(exc))


def list_deliveries(s3, bucket: str, recipient: str, *, agreement: str | None = None,
                    since: dt.date | None = None) -> list[DeliveryLocation]:
    """The recipient's complete deliveries (those with a signature), oldest first."""
    return _scan(s3, bucket, recipient, agreement=agreement, since=since)[0]


def list_revoked(s3, bucket: str, recipient: str, *, agreement: str | None = None,
                 since: dt.date | None = None) -> list[DeliveryLocation]:
    """The recipient's deliveries that the hub revoked (a tombstone stands in their place)."""
    return _scan(s3, bucket, recipient, agreement=agreement, since=since)[1]


def _scan(s3, bucket: str, recipient: str, *, agreement: str | None = None,
          since: dt.date | None = None) -> tuple[list[DeliveryLocation], list[DeliveryLocation]]:
    """Signed and revoked deliveries of the recipient.

    Agreements are found as common prefixes first, because a recipient may list deliveries/ only with
    a delimiter, and its own deliveries/AGREEMENT/RECIPIENT/ prefixes.
    """
    check_name("recipient", recipient)
    paginator = s3.get_paginator("list_objects_v2")
    try:
        if agreement:
            agreements = [check_name("agreement", agreement)]
        else:
            agreements = []
            for page in paginator.paginate(Bucket=bucket, Prefix="deliveries/", Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len("deliveries/"):].rstrip("/")
                    if _SAFE.fullmatch(name):
                        agreements.append(name)
        found: dict[str, DeliveryLocation] = {}
        revoked: dict[str, DeliveryLocation] = {}
        for name in agreements:
            for page in paginator.paginate(Bucket=bucket, Prefix=f"deliveries/{name}/{recipient}/"):
                for obj in page.get("Contents", []):
                    parsed = parse_delivery_key(obj["Key"])
                    if parsed is None:
                        log.warning("%r is not a delivery file; skipped", f"s3://{bucket}/{obj['Key']}")
                        continue
                    location, file = parsed
                    if file not in (SIGNATURE_FILE, TOMBSTONE_FILE) or (
                            since and dt.date.fromisoformat(location.date) < since):
                        continue
                    (found if file == SIGNATURE_FILE else revoked)[location.prefix] = location
    except (ClientError, BotoCoreError) as exc:
        raise _bucket_error(bucket, exc) from None

    def order(loc: DeliveryLocation):
        return (loc.date, loc.agreement, loc.dataset, loc.delivery_id)

    return sorted(found.values(), key=order), sorted(revoked.values(), key=order)


def local_folder(out_dir: Path, location: DeliveryLocation) -> Path:
    """Where a fetched delivery lives: DIR/AGREEMENT/DATASET/YYYY-MM-DD_DELIVERY_ID/."""
    return out_dir / location.agreement / location.dataset / f"{location.date}_{location.delivery_id}"
