"""Putting deliveries into the bucket: data first, then the manifest, the signature last."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from borderx.config.models import S3Settings
from borderx.errors import PublishError
from borderx.delivery.manifest import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation

ENDPOINT_ENV = "BORDERX_S3_ENDPOINT_URL"
BUCKET_ENV = "BORDERX_BUCKET"
# Each setting of Patience, its type and its variable. A settings field of the same name (s3: in
# settings.yaml) wins over the default; the environment wins over both.
PATIENCE_ENV = {"connect_timeout": (float, "BORDERX_S3_CONNECT_TIMEOUT"),
                "read_timeout": (float, "BORDERX_S3_READ_TIMEOUT"),
                "max_attempts": (int, "BORDERX_S3_MAX_ATTEMPTS"),
                "mode": (str, "BORDERX_S3_RETRY_MODE")}


@dataclass(frozen=True)
class Patience:
    """How long the hub waits on the bucket, and how often it asks again, before it calls a failure a failure.

    Without a read timeout a hung endpoint holds a worker (and its pool slot) forever; the defaults bound one
    request to about connect + read timeout per attempt. `mode` is botocore's: "standard" retries 5xx,
    throttling, timeouts and reset connections with jittered backoff; "adaptive" also slows the client when
    the bucket throttles it.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 5
    mode: str = "standard"

    @classmethod
    def resolve(cls, s3: S3Settings | None = None, environ: Mapping[str, str] | None = None) -> Patience:
        environ = os.environ if environ is None else environ
        values = {}
        for name, (cast, variable) in PATIENCE_ENV.items():
            raw = environ.get(variable) or getattr(s3, name, None)
            if raw is None or raw == "":
                continue
            try:
                values[name] = cast(raw)
            except ValueError:
                raise PublishError(f"{variable}: {raw!r} is not a valid {name}") from None
        patience = cls(**values)
        patience.check()
        return patience

    def check(self) -> None:
        if not (0 < self.connect_timeout <= 600 and 0 < self.read_timeout <= 3600):
            raise PublishError(f"S3 timeouts must be positive and bounded (connect {self.connect_timeout} s, "
                               f"read {self.read_timeout} s)")
        if not 1 <= self.max_attempts <= 20:
            raise PublishError(f"S3 max_attempts must be 1 to 20, not {self.max_attempts}")
        if self.mode not in ("standard", "adaptive"):
            raise PublishError(f"S3 retry mode must be standard or adaptive, not {self.mode!r}")

    def botocore(self) -> Config:
        return Config(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                      retries={"mode": self.mode, "total_max_attempts": self.max_attempts})



@dataclass(frozen=True)
class Target:
    """Where deliveries go: settings, overridden by the command line, then the environment."""

    bucket: str
    endpoint_url: str | None
    region: str
    multipart_threshold: int
    server_side_encryption: str | None = None
    patience: Patience = Patience()

    @classmethod
    def resolve(cls, s3: S3Settings, *, endpoint_url: str | None = None, bucket: str | None = None) -> Target:
        return cls(
            bucket=bucket or os.environ.get(BUCKET_ENV) or s3.bucket,
            endpoint_url=endpoint_url or os.environ.get(ENDPOINT_ENV) or s3.endpoint_url,
            region=s3.region,
            multipart_threshold=s3.multipart_threshold_mb << 20,
            server_side_encryption=s3.server_side_encryption,
            patience=Patience.resolve(s3),
        )

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=self.patience.botocore(),
        )


def failure(client, where: str, exc: BaseException) -> PublishError:
    """A PublishError naming the object or prefix, the endpoint and what went wrong, after botocore's retries.

    Callers raise it from `exc`, so the exchange can still tell a passing outage from a refusal. Only the
    error code or class is kept: a botocore message can quote request parameters.
    """
    cause = exc.__context__ if isinstance(exc, S3UploadFailedError) and exc.__context__ is not None else exc
    if isinstance(cause, ClientError):
        what = cause.response.get("Error", {}).get("Code") or "error"
    else:
        what = type(cause).__name__
    config = client.meta.config
    retries = config.retries or {}
    attempts = retries.get("total_max_attempts") or retries.get("max_attempts")
    endpoint = client.meta.endpoint_url
    if isinstance(cause, BotoCoreError):
        what += (f" (no answer within connect {config.connect_timeout:g} s / read {config.read_timeout:g} s"
                 + (f", {attempts} attempts" if attempts else "") + ")")
    return PublishError(f"{where} at {endpoint}: {what}")


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
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise failure(client, f"s3://{target.bucket}/{location.prefix}", exc) from exc
    return keys
