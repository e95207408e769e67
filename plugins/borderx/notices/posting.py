"""Which notices an event of the hub posts, and to whom (the public face is borderx.notices)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from borderx.delivery.layout import MANIFEST_FILE, DeliveryLocation
from borderx.errors import NoSpaceError, TimestampError, TimestampingStopped, is_transient
from borderx.exchange.runtime import stamp
from borderx.folders import private_folders, replace_private
from borderx.notices import messages, post

log = logging.getLogger(__name__)

OUTAGES_FILE = "outages.json"
DELIVERED = ("published", "already-published")


def receipt_notices(rt, receipt, text: str) -> None:
    post(rt, messages.receipt_notice(receipt, text))
    for d in receipt.deliveries:
        if d.get("status") not in DELIVERED or not rt.config.agencies[d["recipient"]].contacts.addresses():
            continue
        location = DeliveryLocation(d["agreement"], d["recipient"], receipt.dataset, receipt.received_at[:10],
                                    d["delivery_id"])
        manifest = manifest_of(rt, location.key(MANIFEST_FILE))
        uri = f"s3://{rt.target.bucket}/{location.prefix}"
        post(rt, messages.delivery_notice(d["recipient"], receipt.dataset, uri, manifest, d))


def manifest_of(rt, key: str) -> dict | None:
    try:
        body = rt.manifests_published.pop(key, None)
        if body is None:
            body = rt.s3.get_object(Bucket=rt.target.bucket, Key=key)["Body"].read(1 << 20)
        return json.loads(body)
    except Exception as exc:  # the summary is a courtesy: the notice says where to look either way
        log.info("manifest %s not read for a notice: %s", key, type(exc).__name__)
        return None


def outage_service(exc: BaseException) -> str | None:
    """`tsa` or `s3` when `exc` says that service did not answer; None for any other failure."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, (TimestampingStopped, TimestampError)):
            return "tsa"
        if isinstance(cause, NoSpaceError):
            return None
        cause = cause.__cause__ or cause.__context__
    return "s3" if is_transient(exc) else None


def failure_notices(rt, where: str, exc: BaseException) -> None:
    service = outage_service(exc)
    now = stamp(rt.clock())
    if service is None:
        post(rt, messages.run_failed_notice(where, exc, now))
        return
    since = _outage_began(rt, service, now)
    post(rt, messages.outage_notice(service, f"{where}: {type(exc).__name__}: {exc}", since))


def outage_notices(rt, *, bucket_answered: bool) -> None:
    """A TSA that has not answered since some time is an outage, told once; a pass that went well ends the
    bucket's outage, so the next one is told again."""
    from borderx.audit.timestamps import STATE_FILE, stamping_for

    if bucket_answered:
        _outage_ended(rt, "s3")
    stamping = stamping_for(rt)
    if stamping is None:
        return
    try:
        state = json.loads((stamping.state_folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    since = state.get("failing_since")
    if since:
        problem = (f"{len(state.get('pending', []))} signed audit head(s) wait for a time stamp from "
                   f"{stamping.tsa.url}" + ("; publishing has stopped" if state.get("stopped") else ""))
        post(rt, messages.outage_notice("tsa", problem, since))


def _outages(rt) -> tuple[Path, dict]:
    path = rt.home.state / "notices" / OUTAGES_FILE
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return path, {}


def _outage_began(rt, service: str, now: str) -> str:
    """When the outage under way began: one episode is one notice, however many runs it fails."""
    path, known = _outages(rt)
    if service not in known:
        known[service] = now
        private_folders(path.parent)
        replace_private(path, json.dumps(known, sort_keys=True))
    return known[service]


def _outage_ended(rt, service: str) -> None:
    path, known = _outages(rt)
    if known.pop(service, None) is not None:
        replace_private(path, json.dumps(known, sort_keys=True))
