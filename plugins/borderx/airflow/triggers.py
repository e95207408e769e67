"""The hub's Airflow triggers: each fires one asset event per new extract, for the triggerer to hand to a run.

`IntakeFolderTrigger` runs the intake folder watch (borderx.intake.watch) and `S3IntakeTrigger` reads an
agency's S3 upload queue (borderx.intake.sources.s3_uploads). Both only look: the exchange takes the files.

This module is imported when DAG files are parsed: it keeps its imports light (no GX, pyarrow, boto3).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from borderx.intake.sources.s3_uploads import QueueWatch
from borderx.intake.watch import IntakeWatch

log = logging.getLogger(__name__)

CLASSPATH = "borderx.airflow.triggers.IntakeFolderTrigger"
S3_CLASSPATH = "borderx.airflow.triggers.S3IntakeTrigger"
RETRY_SECONDS = 30


class IntakeFolderTrigger(BaseEventTrigger):
    """Fires one event per complete new file in the intake folders of a home (one agency's, or all).

    Payload: {"path", "agency", "dataset", "name", "size", "mtime"}; it reaches the run as
    triggering_asset_events[asset][i].extra["payload"].
    """

    def __init__(self, home: str, agency: str | None = None, poll_interval: float = 2.0,
                 settle_seconds: float | None = None):
        super().__init__()
        self.home = str(home)
        self.agency = agency
        self.poll_interval = float(poll_interval)
        self.settle_seconds = None if settle_seconds is None else float(settle_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"home": self.home, "agency": self.agency, "poll_interval": self.poll_interval,
                           "settle_seconds": self.settle_seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = await asyncio.to_thread(IntakeWatch, self.home, self.agency, self.settle_seconds)
        try:
            while True:
                try:
                    ready = await asyncio.to_thread(watch.poll)
                except Exception:
                    # A passing I/O error must not end the watch: the asset would go deaf until a restart.
                    log.exception("intake watch of %s failed this round; trying again", self.home)
                    ready = []
                for payload in ready:
                    event = {k: payload[k] for k in ("path", "agency", "dataset", "name", "size", "mtime")}
                    yield TriggerEvent(event)
                    # Recorded once the triggerer has taken the event: a stop before this re-announces the file
                    # (harmless) rather than loses it.
                    await asyncio.to_thread(watch.announced, payload)
                await asyncio.sleep(self.poll_interval)
        finally:
            watch.close()


class S3IntakeTrigger(BaseEventTrigger):
    """Fires one event per object uploaded under an agency's S3 intake prefix, read from its SQS queue.

    Payload: {"agency", "bucket", "key", "etag", "size"}; it reaches the run as
    triggering_asset_events[asset][i].extra["payload"].
    """

    def __init__(self, home: str, agency: str, poll_interval: float = 2.0, wait_seconds: int = 10):
        super().__init__()
        self.home = str(home)
        self.agency = agency
        self.poll_interval = float(poll_interval)
        self.wait_seconds = int(wait_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return S3_CLASSPATH, {"home": self.home, "agency": self.agency, "poll_interval": self.poll_interval,
                           "wait_seconds": self.wait_seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = None
        while True:
            try:
                if watch is None:
                    watch = await asyncio.to_thread(QueueWatch, self.home, self.agency, self.wait_seconds)
                messages = await asyncio.to_thread(watch.poll)
            except Exception as exc:
                # A queue or config that is not there yet must not end the watch: the asset would go deaf.
                log.warning("S3 intake queue of %s cannot be read (%s); trying again in %d s", self.agency,
                            exc.__class__.__name__, RETRY_SECONDS)
                watch = None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for receipt, payloads in messages:
                for payload in payloads:
                    yield TriggerEvent(payload)
                try:
                    await asyncio.to_thread(watch.done, receipt)
                except Exception as exc:
                    # The message comes back after its visibility timeout; the copy store makes that harmless.
                    log.warning("S3 intake queue of %s: a message could not be deleted (%s)", self.agency,
                                exc.__class__.__name__)
            if not messages:
                await asyncio.sleep(self.poll_interval)
