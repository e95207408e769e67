"""Key strings of either native type, key generation, and age-keygen identity files."""

from __future__ import annotations

from datetime import datetime, timezone

from .pq import _PQ_IDENTITY_HRP, _PQ_RECIPIENT_HRP, HybridIdentity, HybridRecipient
from .x25519 import X25519Identity, X25519Recipient


def generate_x25519_identity() -> tuple[str, str]:
    """Return a fresh ``(identity, recipient)`` pair as age strings."""
    identity = X25519Identity.generate()
    return identity.string, identity.recipient().string


def generate_hybrid_identity() -> tuple[str, str]:
    """Return a fresh post-quantum ``(AGE-SECRET-KEY-PQ-1…, age1pq1…)`` pair as age strings."""
    identity = HybridIdentity.generate()
    return identity.string, identity.recipient().string


def parse_identity(s: str) -> X25519Identity | HybridIdentity:
    """Parse one identity string of either native type."""
    if s.upper().startswith(_PQ_IDENTITY_HRP + "1"):
        return HybridIdentity.parse(s)
    return X25519Identity.parse(s)


def parse_recipient(s: str) -> X25519Recipient | HybridRecipient:
    """Parse one recipient string of either native type (``age1…`` or ``age1pq1…``)."""
    if s.lower().startswith(_PQ_RECIPIENT_HRP + "1"):
        return HybridRecipient.parse(s)
    return X25519Recipient.parse(s)


def format_identity_file(identity: str, recipient: str, created: datetime) -> str:
    """Render an identity file exactly as ``age-keygen`` writes it (naive ``created`` means UTC)."""
    if parse_identity(identity).recipient().string != recipient:
        raise ValueError("the recipient does not belong to the identity")
    if created.tzinfo is not None:
        created = created.astimezone(timezone.utc)
    return f"# created: {created:%Y-%m-%dT%H:%M:%S}Z\n# public key: {recipient}\n{identity}\n"


def parse_identities(text: str) -> list[X25519Identity | HybridIdentity]:
    """Read an identity file: one identity per line, ``#`` comments and blank lines ignored."""
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(parse_identity(line))
        except ValueError as exc:
            # The line itself may be (a mangled) secret key, so it is never echoed.
            raise ValueError(f"identity file line {number}: {exc}") from None
    if not identities:
        raise ValueError("the identity file contains no identities")
    return identities
