"""The exceptions raised when an age file fails to decrypt."""

from __future__ import annotations

from borderx.errors import CryptoError


class AgeError(CryptoError):
    """Base class for every way an age file can fail to decrypt."""


class HeaderError(AgeError):
    """The header is malformed, uses an unsupported version, or its MAC is wrong."""


class HeaderLimitError(HeaderError):
    """The header has more stanzas, longer lines or more bytes than this implementation reads."""


class NoIdentityMatchedError(AgeError):
    """The header is well formed but none of the identities unwraps the file key."""


class PayloadError(AgeError):
    """A payload chunk is corrupt, truncated, misplaced, or followed by extra data."""


class ArmorError(AgeError):
    """The ASCII armor around the file is malformed."""
