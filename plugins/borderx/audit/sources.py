"""Where an audit's evidence is read from: the bucket (heads, tokens, segments) or the hub's own copies.

Everything read from the bucket is capped in size, and keys of another shape are skipped with a warning.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from botocore.exceptions import ClientError

from borderx.audit.anchors import StoredHead
from borderx.audit.segments import Segment
from borderx.audit.timestamps import MAX_TOKEN_BYTES, TOKEN_SUFFIX
from borderx.audit.trail import AuditTrail, parse_lines
from borderx.bucket.objects import read_capped
from borderx.errors import BucketObjectError


def bucket_tokens(s3, bucket: str, heads: list[StoredHead]) -> dict[int, bytes | None | str]:
    """Each head's token from the bucket: its bytes, None if there is none, or why it cannot be read."""
    tokens: dict[int, bytes | None | str] = {}
    for head in heads:
        key = f"audit/heads/{head.seq:012d}.json{TOKEN_SUFFIX}"
        try:
            tokens[head.seq] = read_capped(s3, bucket, key, MAX_TOKEN_BYTES)
        except BucketObjectError as exc:
            tokens[head.seq] = str(exc)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            tokens[head.seq] = None
    return tokens


def local_tokens(trail: AuditTrail, heads: list[StoredHead]) -> dict[int, bytes | None | str]:
    tokens: dict[int, bytes | None | str] = {}
    for head in heads:
        path = trail.folder / "heads" / f"{head.seq:012d}.json{TOKEN_SUFFIX}"
        if not path.exists():
            tokens[head.seq] = None
        elif path.stat().st_size > MAX_TOKEN_BYTES:
            tokens[head.seq] = f"{path}: larger than a time stamp can be"
        else:
            tokens[head.seq] = path.read_bytes()
    return tokens


def trail_events(trail: AuditTrail) -> Iterator[dict | None]:
    """The hub's trail, line by line (None for a line that is not JSON)."""
    if not trail.path.exists():
        return
    with open(trail.path, encoding="utf-8") as fh:
        yield from parse_lines(fh)


def segments_beyond(segments: Iterable[Segment], newest_seq: int) -> list[Segment]:
    """Segments that end after the newest signed head: the head that covered them is gone."""
    return [s for s in segments if s.last > newest_seq]

