"""One exception type per kind of failure, so callers catch exactly what they can handle."""


class BorderxError(Exception):
    """Base of every error the hub raises on purpose."""


class ConfigError(BorderxError):
    """The deployment's configuration is unusable; carries every problem found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class KeyMaterialError(BorderxError):
    """A private key could not be obtained or parsed. Never carries key material."""


class IntakeError(BorderxError):
    """A file in an intake folder cannot be taken in (wrong place, unreadable, unsafe)."""


class PolicyError(BorderxError):
    """An agreement forbids what was asked (no active agreement, small cells to reject...)."""


class PublishError(BorderxError):
    """The bucket refused or lost a delivery."""


class AuditError(BorderxError):
    """The audit trail is damaged or does not verify."""


class HomeError(BorderxError):
    """The deployment home cannot be used as asked (not empty, not ours, missing folders)."""


class BucketObjectError(BorderxError):
    """An object in the bucket cannot be trusted enough to parse: too large, or in a place it does not name."""
