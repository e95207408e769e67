"""Local files a recipient writes: owner-only, and inside a temporary folder until every check passed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from borderx.recipient.checks import decrypt_checked
from borderx.recipient.progress import Progress

PLAINTEXT_FILE = "data.csv"
TEMP_PREFIX = ".borderx-fetch-"


def _private_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _decrypt_into(src: Path, dst: Path, identities: Sequence, rows: int | None,
                  progress: Progress, total: int, fmt: str = "csv") -> int:
    # Owner-only from the first byte: plaintext never exists with wider permissions.
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        return decrypt_checked(src, out, identities, rows, lambda n: progress.update("decrypting", n, total), fmt)
