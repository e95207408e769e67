"""Announcements of new deliveries on the recipient's own SQS queue, where the bucket sends them.

An announcement only says "look now": the bucket's listing stays the one truth, so a message is never parsed
or trusted, and a lost one delays a delivery only until the next scheduled look.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from borderx.recipient.stopping import StopOnSignal
from borderx.text import printable

_LONGEST_POLL = 20  # seconds: SQS's limit for one long poll


class QueueNotices:
    def __init__(self, sqs, queue_url: str, err: TextIO | None = None):
        self.sqs = sqs
        self.queue_url = queue_url
        self.err = err or sys.stderr
        self._failing = False

    def wait(self, seconds: float, stop: StopOnSignal) -> None:
        """Returns when an announcement came (taking every one waiting off the queue), after `seconds`, or when a
        stop is asked. A queue that cannot be read is reported once and waited out like a plain pause."""
        deadline = time.monotonic() + seconds
        while not stop.requested.is_set():
            left = deadline - time.monotonic()
            if left < 1 or self._failing:
                stop.wait(max(left, 0))
                return
            if self._received(min(_LONGEST_POLL, int(left))):
                return

    def _received(self, wait_seconds: int) -> bool:
        try:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=wait_seconds).get("Messages", [])
            if messages:
                self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])
        except (ClientError, BotoCoreError) as exc:
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
            print(printable(f"borderx: {self.queue_url}: {code}; looking at the bucket on schedule instead"),
                  file=self.err, flush=True)
            self._failing = True
            return False
        return bool(messages)
