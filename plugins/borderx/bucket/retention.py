"""Deleting deliveries that have outlived their agreement's retention period.

A delivery is kept for `retention_days` after the day in its key (the day its extract was received) and
deleted on the day after. Its signature goes first, so the delivery stops existing at once even if the
rest of the deletion is interrupted; the next pass removes what is left. Every deletion is audited.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from borderx.bucket.deliveries import TOMBSTONE_FILES, Delivery, list_deliveries
from borderx.delivery.manifest import MANIFEST_FILE, SIGNATURE_FILE
from borderx.audit.events import Deleted

if TYPE_CHECKING:
    from borderx.config.models import DeploymentConfig
    from borderx.exchange import Runtime

log = logging.getLogger(__name__)


@dataclass
class RetentionSummary:
    today: str
    deleted: list[dict] = field(default_factory=list)
    kept: int = 0
    # Deliveries under an agreement no longer in config/: without its terms nothing justifies deleting them.
    unknown_agreement: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def expiry(delivery: Delivery, retention_days: int) -> dt.date:
    """The first day on which the delivery is past its retention period."""
    return dt.date.fromisoformat(delivery.date) + dt.timedelta(days=retention_days + 1)


def due(config: DeploymentConfig, deliveries: list[Delivery], today: dt.date) -> tuple[list[Delivery], int, list[str]]:
    """(deliveries to delete, how many are kept, delivery ids whose agreement is unknown)."""
    expired, kept, unknown = [], 0, []
    for d in deliveries:
        if d.state == "revoked" and d.names <= TOMBSTONE_FILES:
            continue  # its data is already gone; the tombstone is the record and stays
        # A tombstone beside files (planted there, or files put back) does not keep them past their time.
        agreement = config.agreements.get(d.agreement)
        if agreement is None:
            unknown.append(d.delivery_id)
        elif today >= expiry(d, agreement.retention_days):
            expired.append(d)
        else:
            kept += 1
    return expired, kept, unknown


def delete_delivery(s3, bucket: str, delivery: Delivery) -> list[str]:
    """Deletes the signature, then the manifest, then the data; returns the keys deleted, in that order."""
    present = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=delivery.prefix)
               for o in page.get("Contents", [])]
    first = [delivery.prefix + SIGNATURE_FILE, delivery.prefix + MANIFEST_FILE]
    keep = {delivery.prefix + name for name in TOMBSTONE_FILES}
    order = [k for k in first if k in present] + sorted(k for k in present if k not in first and k not in keep)
    for key in order:
        s3.delete_object(Bucket=bucket, Key=key)
    return order


def apply_retention(rt: Runtime, *, today: dt.date | None = None, actor: dict | None = None,
                    anchor: bool = True) -> RetentionSummary:
    """Deletes every delivery in the bucket that is past its agreement's retention period."""
    from botocore.exceptions import ClientError

    today = today or rt.clock().date()
    summary = RetentionSummary(today=today.isoformat())
    try:
        deliveries = list_deliveries(rt.s3, rt.target.bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return summary
        raise
    expired, summary.kept, summary.unknown_agreement = due(rt.config, deliveries, today)
    for d in summary.unknown_agreement:
        log.warning("delivery %s: its agreement is not in the config; kept", d)
    for delivery in expired:
        retention_days = rt.config.agreements[delivery.agreement].retention_days
        keys = delete_delivery(rt.s3, rt.target.bucket, delivery)
        rt.trail.record(Deleted(
            reason="retention", delivery_id=delivery.delivery_id, agreement=delivery.agreement,
            recipient=delivery.recipient, dataset=delivery.dataset, delivered_on=delivery.date,
            retention_days=retention_days, bucket=rt.target.bucket, keys=keys,
        ), actor=actor)
        summary.deleted.append({"delivery_id": delivery.delivery_id, "agreement": delivery.agreement,
                                "recipient": delivery.recipient, "dataset": delivery.dataset,
                                "delivered_on": delivery.date, "keys": keys})
        log.info("deleted delivery %s (%s, kept %d days)", delivery.delivery_id, delivery.agreement, retention_days)
    if summary.deleted and anchor:
        from borderx.exchange import close_segment

        close_segment(rt)
    return summary
