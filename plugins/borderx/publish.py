"""Putting deliveries into the bucket: data first, then the manifest, the signature last."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from borderx.config.models import S3Settings
from borderx.errors import PublishError
from borderx.manifest import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation

ENDPOINT_ENV = "BORDERX_S3_ENDPOINT_URL"
BUCKET_ENV = "BORDERX_BUCKET"


@dataclass(frozen=True)
class Target:
    """Where deliveries go: settings, overridden by the command line, then the environment."""

    bucket: str
    endpoint_url: str | None
    region: str
    multipart_threshold: int
    server_side_encryption: str | None = None

    @classmethod
    def resolve(cls, s3: S3Settings, *, endpoint_url: str | None = None, bucket: str | None = None) -> Target:
        return cls(
            bucket=bucket or os.environ.get(BUCKET_ENV) or s3.bucket,
            endpoint_url=endpoint_url or os.environ.get(ENDPOINT_ENV) or s3.endpoint_url,
            region=s3.region,
            multipart_threshold=s3.multipart_threshold_mb << 20,
            server_side_encryption=s3.server_side_encryption,
        )

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=60),
        )


def ensure_bucket(client, bucket: str) -> bool:
    """Creates the bucket if it is missing; True if it had to."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise PublishError(f"bucket {bucket}: {exc.response['Error'].get('Code')}") from exc
    except BotoCoreError as exc:
        # Raised from the original so retry logic can still tell a passing outage from a refusal.
        raise PublishError(f"bucket {bucket} at {client.meta.endpoint_url}: {exc.__class__.__name__}") from exc
    client.create_bucket(Bucket=bucket)
    return True


def exists(client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise PublishError(f"s3://{bucket}/{key}: {exc.response['Error'].get('Code')}") from None


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
    client, target: Target, location: DeliveryLocation, data_path: Path, manifest: bytes, signature: bytes
) -> list[str]:
    """Uploads data, manifest, signature, in that order; a rerun after a crash overwrites what an earlier
    attempt left, so the end state is one complete delivery."""
    transfer = TransferConfig(multipart_threshold=target.multipart_threshold, multipart_chunksize=max(
        8 << 20, target.multipart_threshold // 4))
    common = {"ChecksumAlgorithm": "SHA256"}
    if target.server_side_encryption:
        common["ServerSideEncryption"] = target.server_side_encryption
    keys = [location.key(DATA_FILE), location.key(MANIFEST_FILE), location.key(SIGNATURE_FILE)]
    try:
        abort_unfinished_uploads(client, target.bucket, location.prefix)
        client.upload_file(str(data_path), target.bucket, keys[0], Config=transfer,
                           ExtraArgs={**common, "ContentType": "application/octet-stream"})
        client.put_object(Bucket=target.bucket, Key=keys[1], Body=manifest, ContentType="application/json", **common)
        client.put_object(Bucket=target.bucket, Key=keys[2], Body=signature, ContentType="text/plain", **common)
    except ClientError as exc:
        raise PublishError(f"s3://{target.bucket}/{location.prefix}: {exc.response['Error'].get('Code')}") from None
    return keys
