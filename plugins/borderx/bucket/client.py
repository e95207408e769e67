"""The hub's and the recipient's way to the bucket: S3 and SQS clients with bounded timeouts and retries.

Every client the package makes comes from here, so one setting (settings.yaml `s3:` or the environment)
governs how long anything waits on the bucket. The recipient client imports this module: it needs only
boto3, never Airflow, Great Expectations, pandas or pyarrow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from borderx.errors import PublishError

if TYPE_CHECKING:
    from borderx.config.models import S3Settings

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

    def botocore(self, *, check_parameters: bool = True) -> Config:
        return Config(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                      retries={"mode": self.mode, "total_max_attempts": self.max_attempts},
                      parameter_validation=check_parameters)


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

    def client(self, *, check_parameters: bool = True):
        """An S3 client for the target's endpoint, with the target's patience. The hub, which builds every
        request's parameters itself, passes check_parameters=False: checking them again against the service
        model is a sixth of botocore's CPU for a small PUT, and the endpoint refuses a malformed request anyway.
        A bucket or prefix typed on a command line keeps botocore's clear error."""
        return self._client("s3", check_parameters=check_parameters)

    def sqs(self):
        """SQS at the same endpoint (moto serves S3 and SQS on one port; AWS picks each service's own when unset)."""
        return self._client("sqs")

    def _client(self, service: str, *, check_parameters: bool = True):
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            config=self.patience.botocore(check_parameters=check_parameters))


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
