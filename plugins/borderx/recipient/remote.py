"""Reading one delivery from the bucket: a missing or unreadable object is refused, never trusted."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError

from borderx.bucket.deliveries import read_tombstone
from borderx.bucket.objects import MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, read_capped
from borderx.crypto import sshsig
from borderx.delivery.manifest import MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation
from borderx.errors import BucketObjectError
from borderx.recipient.checks import (
    DATA_HASH,
    DOWNLOAD,
    REVOKED,
    SIGNATURE,
    DeliveryRefused,
    Verified,
    check_data,
    verify_manifest,
)
from borderx.recipient.progress import Progress, _Quiet
from borderx.recipient.staging import _private_file

_BUCKET_ERRORS = (ClientError, BotoCoreError, RetriesExceededError)


def _refusal(exc: Exception, name: str, missing: str) -> DeliveryRefused:
    """A missing object fails the check it was needed for; any other bucket error is a download failure."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            return DeliveryRefused(missing, f"{name} is missing")
        return DeliveryRefused(DOWNLOAD, f"{name}: {code}")
    return DeliveryRefused(DOWNLOAD, f"{name}: {exc.__class__.__name__}")


def _get_small(s3, bucket: str, key: str, limit: int, check: str) -> bytes:
    name = key.rpartition("/")[2]
    try:
        return read_capped(s3, bucket, key, limit)
    except _BUCKET_ERRORS as exc:
        raise _refusal(exc, name, check) from None
    except BucketObjectError:
        raise DeliveryRefused(check, f"{name} is larger than {limit} bytes") from None


def _not_revoked(s3, bucket: str, location: DeliveryLocation, keys: Sequence[str]) -> None:
    """Refuses a delivery the hub revoked, even with its files put back beside the tombstone.

    A tombstone that is not the hub's for this place revokes nothing and is passed over here (fetch warns
    of it when it lists the bucket).
    """
    try:
        tombstone = read_tombstone(s3, bucket, location, keys)
    except (sshsig.SignatureError, BucketObjectError):
        return
    except _BUCKET_ERRORS as exc:
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return
        raise _refusal(exc, "tombstone.json", DOWNLOAD) from None
    raise DeliveryRefused(REVOKED, f"revoked {tombstone['revoked_at']}: {tombstone['reason']}")


def _download(s3, bucket: str, key: str, path: Path, on_bytes: Callable[[int], None] | None) -> None:
    name = key.rpartition("/")[2]
    done = 0
    lock = threading.Lock()

    def advanced(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            if on_bytes:
                on_bytes(done)

    try:
        s3.download_file(bucket, key, str(path), Callback=advanced)
    except _BUCKET_ERRORS as exc:
        raise _refusal(exc, name, DATA_HASH) from None


def verify_remote(s3, bucket: str, location: DeliveryLocation, keys: Sequence[str], *, recipient: str | None = None,
                  into: Path | None = None, progress: Progress | None = None) -> Verified:
    """Checks signature, manifest and data hash of a delivery in the bucket.

    With `into`, the three files are saved in that folder, which the caller discards if this raises;
    without it the data is only hashed as it streams past.
    """
    progress = progress or _Quiet()
    _not_revoked(s3, bucket, location, keys)
    body = _get_small(s3, bucket, location.key(MANIFEST_FILE), MAX_MANIFEST_BYTES, SIGNATURE)
    signature = _get_small(s3, bucket, location.key(SIGNATURE_FILE), MAX_SIGNATURE_BYTES, SIGNATURE)
    verified = verify_manifest(body, signature, keys, location=location, recipient=recipient)
    # The published size is signed: a data object of another size is refused before it is downloaded.
    data_file = verified.data_file
    try:
        head = s3.head_object(Bucket=bucket, Key=location.key(data_file))
    except _BUCKET_ERRORS as exc:
        raise _refusal(exc, data_file, DATA_HASH) from None
    if head["ContentLength"] != verified.size:
        raise DeliveryRefused(DATA_HASH, f"{data_file} is {head['ContentLength']} bytes, the manifest says {verified.size}")
    if into is None:
        try:
            stream = s3.get_object(Bucket=bucket, Key=location.key(data_file))["Body"]
            with stream:
                check_data(stream, verified, lambda n: progress.update("verifying", n, verified.size))
        except _BUCKET_ERRORS as exc:
            raise _refusal(exc, data_file, DATA_HASH) from None
        return verified
    _private_file(into / MANIFEST_FILE, body)
    _private_file(into / SIGNATURE_FILE, signature)
    data = into / data_file
    _download(s3, bucket, location.key(data_file), data, lambda n: progress.update("downloading", n, verified.size))
    with open(data, "rb") as fh:
        check_data(fh, verified, lambda n: progress.update("checking", n, verified.size))
    return verified
