"""Putting deliveries into the bucket: data first, then the manifest, the signature last."""

from __future__ import annotations

from pathlib import Path

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

# Target, Patience and failure are the bucket client's; they are named here too because the exchange and
# its benchmarks import them with publishing.
from borderx.bucket.client import Patience, Target, failure  # noqa: F401
from borderx.delivery.manifest import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation


def ensure_bucket(client, bucket: str) -> bool:
    """Creates the bucket if it is missing; True if it had to."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise failure(client, f"bucket {bucket}", exc) from exc
    except BotoCoreError as exc:
        raise failure(client, f"bucket {bucket}", exc) from exc
    try:
        client.create_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as exc:
        raise failure(client, f"bucket {bucket}", exc) from exc
    return True


def exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise failure(client, f"s3://{bucket}/{key}", exc) from exc
    except BotoCoreError as exc:
        raise failure(client, f"s3://{bucket}/{key}", exc) from exc


def is_published(client, target: Target, location: DeliveryLocation) -> bool:
    """A delivery exists once its signature is there."""
    return exists(client, target.bucket, location.key(SIGNATURE_FILE))


def abort_unfinished_uploads(client, bucket: str, prefix: str) -> int:
    """Aborts multipart uploads an interrupted attempt left under `prefix`; their parts cost storage forever."""
    aborted = 0
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted += 1
    return aborted


def publish_delivery(
    client, target: Target, location: DeliveryLocation, data_path: Path, manifest: bytes, signature: bytes,
    data_name: str = DATA_FILE,
) -> list[str]:
    """Uploads data, manifest, signature, in that order; a rerun after a crash overwrites what an earlier
    attempt left, so the end state is one complete delivery."""
    common = {"ChecksumAlgorithm": "SHA256"}
    if target.server_side_encryption:
        common["ServerSideEncryption"] = target.server_side_encryption
    keys = [location.key(data_name), location.key(MANIFEST_FILE), location.key(SIGNATURE_FILE)]
    # Data under the multipart threshold goes up in one request, without the transfer manager's threads, and no
    # attempt of it can have left parts to abort: the listing of unfinished uploads is spared too.
    in_one = data_path.stat().st_size < target.multipart_threshold
    try:
        if in_one:
            with open(data_path, "rb") as body:
                client.put_object(Bucket=target.bucket, Key=keys[0], Body=body,
                                  ContentType="application/octet-stream", **common)
        else:
            abort_unfinished_uploads(client, target.bucket, location.prefix)
            transfer = TransferConfig(multipart_threshold=target.multipart_threshold, multipart_chunksize=max(
                8 << 20, target.multipart_threshold // 4))
            client.upload_file(str(data_path), target.bucket, keys[0], Config=transfer,
                               ExtraArgs={**common, "ContentType": "application/octet-stream"})
        client.put_object(Bucket=target.bucket, Key=keys[1], Body=manifest, ContentType="application/json", **common)
        client.put_object(Bucket=target.bucket, Key=keys[2], Body=signature, ContentType="text/plain", **common)
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise failure(client, f"s3://{target.bucket}/{location.prefix}", exc) from exc
    return keys
