"""What a recipient and an identity must provide to take part in an age header."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from .format import Stanza

Rand = Callable[[int], bytes]


class Identity(Protocol):
    def unwrap(self, stanzas: Sequence[Stanza]) -> bytes | None:
        """Return the file key, None if nothing is addressed to us, or raise HeaderError."""


class Recipient(Protocol):
    def wrap(self, file_key: bytes, rand: Rand) -> Stanza: ...
