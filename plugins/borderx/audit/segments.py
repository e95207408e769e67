"""The trail's segments in the bucket, so an auditor can verify it without the hub's disk.

Each anchor puts the events since the previous head, as the trail holds them (one JSON line each), at
s3://BUCKET/audit/segments/FIRST-LAST.jsonl (sequence numbers, 12 digits each), before the head that covers
them. Reading them back, keys of another shape are skipped with a warning and every segment is read no
further than a segment can be.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from botocore.exceptions import BotoCoreError, ClientError

from borderx.bucket.objects import read_capped
from borderx.errors import AuditError, BucketObjectError

PREFIX = "audit/segments/"
_KEY = re.compile(r"audit/segments/([0-9]{12})-([0-9]{12})\.jsonl")
# Events are under 2 KB each: room for over a hundred thousand events between two heads.
MAX_SEGMENT_BYTES = 256 << 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    first: int
    last: int

    def key(self) -> str:
        return f"{PREFIX}{self.first:012d}-{self.last:012d}.jsonl"


def parse_segment_key(key: str) -> Segment | None:
    """The segment a key names (audit/segments/FIRST-LAST.jsonl, FIRST <= LAST), or None."""
    found = _KEY.fullmatch(key)
    if not found:
        return None
    first, last = int(found.group(1)), int(found.group(2))
    return Segment(first, last) if 1 <= first <= last else None


def lines_between(trail_path: Path, first: int, last: int) -> bytes:
    """The trail's lines of events first..last, byte for byte as the hash chain covers them."""
    out = []
    with open(trail_path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            seq = json.loads(line).get("seq")
            if isinstance(seq, int) and first <= seq <= last:
                out.append(line if line.endswith(b"\n") else line + b"\n")
    return b"".join(out)


def put_segment(s3, bucket: str, trail_path: Path, first: int, last: int) -> Segment:
    segment = Segment(first, last)
    body = lines_between(trail_path, first, last)
    try:
        s3.put_object(Bucket=bucket, Key=segment.key(), Body=body, ContentType="application/jsonl")
    except (ClientError, BotoCoreError) as exc:
        from borderx.bucket.client import failure

        raise failure(s3, f"s3://{bucket}/{segment.key()}", exc) from exc
    return segment


def list_segments(s3, bucket: str) -> list[Segment]:
    """The segments in the bucket, in order; keys of another shape are skipped with a warning."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            segment = parse_segment_key(obj["Key"])
            if segment is None:
                log.warning("%r is not an audit segment (audit/segments/FIRST-LAST.jsonl, 12 digits each); "
                            "skipped", f"s3://{bucket}/{obj['Key']}")
            else:
                found.append(segment)
    return sorted(found, key=lambda s: (s.first, s.last))


class SegmentGap(AuditError):
    """The segments do not join into one run of events from the first; names where."""


def bucket_events(s3, bucket: str, segments: list[Segment]) -> Iterator[dict]:
    """The events of the segments in order, each seq once; SegmentGap where one is missing or unreadable.

    A segment left by an anchor that stopped before its head is overlapped by the next one; the overlap is
    read once, and the chain check catches any difference between the two.
    """
    position = 0
    for segment in segments:
        where = f"s3://{bucket}/{segment.key()}"
        if segment.last <= position:
            continue
        if segment.first > position + 1:
            raise SegmentGap(f"events {position + 1}..{segment.first - 1} are in no segment of s3://{bucket}/{PREFIX}")
        try:
            body = read_capped(s3, bucket, segment.key(), MAX_SEGMENT_BYTES)
        except BucketObjectError as exc:
            raise SegmentGap(str(exc)) from None
        for lineno, line in enumerate(body.splitlines(), start=1):
            try:
                event = json.loads(line)
            except ValueError:
                raise SegmentGap(f"{where} line {lineno}: not a JSON event") from None
            seq = event.get("seq") if isinstance(event, dict) else None
            if not isinstance(seq, int) or not segment.first <= seq <= segment.last:
                raise SegmentGap(f"{where} line {lineno}: seq {seq!r} is outside the segment its name gives")
            if seq > position:
                position = seq
                yield event
        if position < segment.last:
            raise SegmentGap(f"{where} ends at seq {position}, not at {segment.last} as its name gives")
