"""Which failures of a stage are worth trying again as they are: the bucket or the network, or a full disk."""

from __future__ import annotations

import errno

from borderx.errors import BorderxError, PublishError
from borderx.quarantine import QuarantineError


class TransientError(PublishError):
    """A failure of the bucket or the network that may pass: the stage can be tried again as it is."""


class NoSpaceError(BorderxError):
    """A folder of the hub is full. Space can come back, so a stage that hit it can be tried again as it is."""


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# S3 error codes that say "not now" rather than "never".
_TRANSIENT_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "BandwidthLimitExceeded",
    "OperationAborted", "500", "502", "503", "504",
})


def is_transient(exc: BaseException) -> bool:
    """Whether `exc`, or what it was raised from, is a connection failure, a timeout or a 5xx/throttle answer."""
    from botocore.exceptions import (
        ClientError, ConnectionClosedError, ConnectionError as BotoConnectionError, ConnectTimeoutError,
        EndpointConnectionError, ReadTimeoutError, ResponseStreamingError,
    )

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (TransientError, NoSpaceError)):
            return True
        if isinstance(exc, QuarantineError):
            return exc.errno in _NO_SPACE
        if isinstance(exc, (BotoConnectionError, EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                            ConnectionClosedError, ResponseStreamingError, ConnectionError, TimeoutError)):
            return True
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or status == 429 or error.get("Code") in _TRANSIENT_CODES
        # PublishError hides the botocore error it wraps as its context, not its cause.
        exc = exc.__cause__ or exc.__context__
    return False


def is_no_space(exc: BaseException) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
