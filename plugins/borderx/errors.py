"""Every error the hub raises on purpose, one class per kind of failure, and which of them may pass.

Callers catch exactly what they can handle. Whether a failure is worth trying again is decided here, by
type, and nowhere else: `is_transient` answers for the Airflow tasks and for `borderx run` alike.
"""

from __future__ import annotations

import errno
from pathlib import Path, PurePath


class BorderxError(Exception):
    """Base of every error the hub raises on purpose. Permanent unless its class says otherwise."""

    # Whether the same call, tried again unchanged, may succeed (the bucket answers again, space comes back).
    transient = False


# -- configuration, keys and the home -------------------------------------------------------------------------


class ConfigError(BorderxError):
    """The deployment's configuration is unusable; carries every problem found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class KeyMaterialError(BorderxError):
    """A private key could not be obtained or parsed. Never carries key material."""


class KeyRequestError(BorderxError):
    """An agency's key-change request is refused: unreadable, too large, not signed by a valid signing key of
    that agency, expired or already accepted. Names the request file, the agency and the key's fingerprint."""


class HomeError(BorderxError):
    """The deployment home cannot be used as asked (not empty, not ours, missing folders)."""


# -- intake -------------------------------------------------------------------------------------------------


class IntakeError(BorderxError):
    """A file in an intake folder cannot be taken in (wrong place, unreadable, unsafe)."""


class UnsafeEntry(IntakeError):
    """An intake entry that is not a plain file of its own: a symbolic link, a hard link, a pipe or a device.

    Reading it would read something the agency did not drop here (a link's target, or a file that lives on
    under another name), so it is quarantined as it is and never opened. `details` says what it is, for the
    report: the link's target as written in the link (never resolved), or the inode a hard link shares.
    """

    def __init__(self, path: Path, rule: str, message: str, details: dict):
        super().__init__(f"{path.name}: {message}")
        self.rule = rule
        self.message = message
        self.details = details


class ChangedWhileRead(IntakeError):
    """The file was written to, truncated or replaced while the hub read it, or between two of its reads."""

    rule = "changed-while-read"


class LinkedFolder(IntakeError):
    """A folder on a path the hub walks is a symbolic link: refused, and nothing under it is read."""

    def __init__(self, root: Path, relative: PurePath, target: str):
        self.root = Path(root)
        self.relative = PurePath(relative)
        self.target = target
        super().__init__(f"{self.root / self.relative}: a symbolic link (to {target}), not a folder; "
                         "the hub does not follow links")


class SourceRefused(IntakeError):
    """A pull source the hub will not read from as it stands: an SFTP server that presents another host key than
    the one pinned in the agency's config, or that does not accept the hub's key. Trying again cannot mend it;
    the server or the config must change. Names the agency and the host, never key material."""


class SourceUnreachable(IntakeError):
    """A pull source did not answer or broke off; it may answer at the next try."""

    transient = True


# -- validation -----------------------------------------------------------------------------------------------


class SuiteError(BorderxError):
    """The suite file is missing or is not a usable GX expectation suite: the operator must mend it."""


class ValidationRunError(BorderxError):
    """GX itself failed while validating a file that was read successfully.

    Only the original error's type is kept (its message may quote the data), so nothing tells a crash that
    would repeat from one that will not (memory taken by other tasks): trying again is the safe choice.
    """

    transient = True


class PageSourceError(BorderxError):
    """A Data Docs page cannot be rendered from its source: too large, not JSON, not shaped as the hub writes
    one, or refused by GX. Names the source file, never what it holds."""


# -- policy, delivery, the bucket and the hub's own folders -----------------------------------------------------


class PolicyError(BorderxError):
    """An agreement forbids what was asked (no active agreement, small cells to reject...)."""


class PublishError(BorderxError):
    """The bucket refused or lost a delivery."""


class TransientError(PublishError):
    """A failure of the bucket or the network that may pass: the stage can be tried again as it is."""

    transient = True


# Errors of the file system that say "full", which space coming back mends.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class NoSpaceError(BorderxError):
    """A folder of the hub is full. Space can come back, so a stage that hit it can be tried again as it is."""

    transient = True


class QuarantineError(BorderxError):
    """The quarantine folder could not take a file (full, read-only...); the file stays where it was."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_

    @property
    def transient(self) -> bool:  # type: ignore[override]
        return self.errno in NO_SPACE_ERRNOS


# -- crypto ---------------------------------------------------------------------------------------------------


class CryptoError(BorderxError):
    """Signed or encrypted bytes that do not check out or cannot be read."""


class SignatureError(CryptoError):
    """A signature does not verify or cannot be read. Never carries key material."""


# -- audit ----------------------------------------------------------------------------------------------------


class AuditError(BorderxError):
    """The audit trail is damaged or does not verify."""


class TrailUnreadable(AuditError, ValueError):
    """A line of the trail is not a JSON event, so no report can be built from it."""

    def __init__(self, line: int):
        self.line = line
        super().__init__(f"line {line} of the audit trail is not a JSON event; no report can be built from it")


class QueryError(BorderxError, ValueError):
    """A filter a report cannot use (a date that is not one, a period that ends before it starts)."""


# -- notices ------------------------------------------------------------------------------------------------


class NoticeError(BorderxError):
    """A notice could not be sent (no SMTP server set, a webhook's refusal); it waits in the outbox and is tried
    again later, so it never fails a run."""

    transient = True


# -- the recipient's side -------------------------------------------------------------------------------------


class RecipientError(BorderxError):
    """The bucket cannot be listed or read, or the recipient's inputs cannot be used."""


class RecipientUsageError(RecipientError):
    """The command was given something it cannot work with (a missing identity or hub key, a bad prefix)."""


class BucketUnreadable(RecipientError):
    """The recipient's deliveries could not be listed; transient when the network or the bucket said "not now"
    (a watching fetch then tries again later), permanent when it refused (no such bucket, access denied)."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class DeliveryRefused(BorderxError):
    """One delivery failed a check; `check` names which. Never carries plaintext or key material."""

    def __init__(self, check: str, reason: str):
        self.check = check
        self.reason = reason
        super().__init__(f"{check}: {reason}")


class BucketObjectError(BorderxError):
    """An object in the bucket cannot be trusted enough to parse: too large, or in a place it does not name."""


# -- transient or permanent -----------------------------------------------------------------------------------

# S3 error codes that say "not now" rather than "never".
TRANSIENT_S3_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "BandwidthLimitExceeded",
    "OperationAborted", "500", "502", "503", "504",
})


def is_transient(exc: BaseException | None) -> bool:
    """Whether `exc`, or what it was raised from, may pass: a transient BorderxError, a connection failure,
    a timeout, or a 5xx or throttling answer from the bucket."""
    from botocore.exceptions import (
        ClientError, ConnectionClosedError, ConnectionError as BotoConnectionError, ConnectTimeoutError,
        EndpointConnectionError, ReadTimeoutError, ResponseStreamingError,
    )

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BorderxError) and exc.transient:
            return True
        if isinstance(exc, QuarantineError):
            return False
        if isinstance(exc, (BotoConnectionError, EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                            ConnectionClosedError, ResponseStreamingError, ConnectionError, TimeoutError)):
            return True
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or status == 429 or error.get("Code") in TRANSIENT_S3_CODES
        # PublishError hides the botocore error it wraps as its context, not its cause.
        exc = exc.__cause__ or exc.__context__
    return False


def is_permanent(exc: BaseException) -> bool:
    """Whether trying again cannot help: a BorderxError that is not transient, or a mistake in what was
    handed over (a missing key, a wrong type or value). Anything else is unknown and left to the retries."""
    return not is_transient(exc) and isinstance(exc, (BorderxError, LookupError, TypeError, ValueError))


def is_no_space(exc: BaseException | None) -> bool:
    """Whether `exc`, or what it was raised from, is the file system saying it is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# -- time stamps of the audit trail ---------------------------------------------------------------------------


class TimestampError(AuditError):
    """The time-stamping authority did not answer, or its answer is not a valid token for the head asked."""


class TimestampingStopped(AuditError):
    """Heads have waited for a time stamp longer than settings accept, so nothing is published until the
    time-stamping authority answers again; it may answer at the next try."""

    transient = True
