"""What goes wrong before any one delivery is judged: the bucket, or the recipient's own inputs."""

from __future__ import annotations

from borderx.errors import BorderxError


class RecipientError(BorderxError):
    """The bucket cannot be listed or read, or the recipient's inputs cannot be used."""


class RecipientUsageError(RecipientError):
    """The command was given something it cannot work with (a missing identity or hub key, a bad prefix)."""
