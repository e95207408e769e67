"""One error tree: every error the hub raises is a BorderxError, and whether it may pass is decided by its type."""

from __future__ import annotations

import errno
import inspect

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from borderx import errors
from borderx.crypto import age
from borderx.errors import (
    BorderxError, ChangedWhileRead, DeliveryRefused, NoSpaceError, PublishError, QuarantineError, SignatureError,
    SuiteError, TransientError, ValidationRunError, is_permanent, is_transient,
)


def _client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def _raised(exc: BaseException, inside: BaseException | None = None, *, as_cause: bool = False) -> BaseException:
    """`exc` as Python leaves it when raised while handling `inside` (or from it)."""
    try:
        try:
            if inside is not None:
                raise inside
        except BaseException as handled:
            if as_cause:
                raise exc from handled
            raise exc
        raise exc
    except BaseException as caught:
        return caught


def test_every_error_class_of_the_package_is_under_borderx_error():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)]
    assert len(classes) > 15 and all(issubclass(c, BorderxError) for c in classes)
    assert issubclass(age.AgeError, BorderxError) and issubclass(age.HeaderError, errors.CryptoError)


@pytest.mark.parametrize("exc", [
    SuiteError("suites/x.json: suite has no name"),  # the operator must mend the suite: retrying cannot
    DeliveryRefused("signature", "does not verify"),
    ChangedWhileRead("f.csv: changed while it was read"),
    SignatureError("bad signature"),
    QuarantineError("quarantine is read-only", errno.EROFS),
    _raised(PublishError("bucket b: AccessDenied"), _client_error(403, "AccessDenied")),
    KeyError("agreement"),
])
def test_permanent_failures(exc):
    assert not is_transient(exc) and is_permanent(exc)


@pytest.mark.parametrize("exc", [
    TransientError("bucket b: SlowDown"),
    NoSpaceError("work folder full"),
    QuarantineError("quarantine is full", errno.ENOSPC),
    ValidationRunError("f.csv: Great Expectations failed while validating (MemoryError)"),
    _client_error(503, "ServiceUnavailable"),
    _client_error(400, "RequestTimeout"),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    # A PublishError keeps the botocore error it wraps as its context, or as its cause.
    _raised(PublishError("bucket b: SlowDown"), _client_error(503, "SlowDown")),
    _raised(PublishError("bucket b: unreachable"), ConnectionRefusedError(), as_cause=True),
])
def test_transient_failures(exc):
    assert is_transient(exc) and not is_permanent(exc)


def test_a_failure_of_no_known_kind_is_neither():
    # Left to the task's retries, as Airflow would do anyway.
    assert not is_transient(OSError(errno.EIO, "I/O error")) and not is_permanent(OSError(errno.EIO, "I/O error"))
