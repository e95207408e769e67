"""Whole-file encryption and decryption with bounded memory and atomic replacement."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from .decrypt import _open_payload
from .encrypt import encrypting_writer
from .interfaces import Identity, Recipient
from .stream import _BATCH_CHUNKS, _BATCH_SIZE


@contextlib.contextmanager
def _replace_on_success(dst_path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a private temporary file beside ``dst_path``; rename it there only on success."""
    dst = Path(dst_path)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as tmp:
            yield tmp
        os.replace(tmp_name, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _advise_sequential(fd: int) -> None:
    # A larger readahead window helps big sequential reads; not every file
    # (pipes, some filesystems) supports the hint, and it is only a hint.
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


def encrypt_file(
    src_path: str | os.PathLike,
    dst_path: str | os.PathLike,
    recipients: Sequence[Recipient],
    armor: bool = False,
) -> None:
    """Encrypt a file with bounded memory; ``dst_path`` appears only when complete."""
    with open(src_path, "rb", buffering=0) as src, _replace_on_success(dst_path) as out:
        _advise_sequential(src.fileno())
        buffer = memoryview(bytearray(_BATCH_SIZE))
        with encrypting_writer(out, recipients, armor=armor) as writer:
            while read := src.readinto(buffer):
                writer.write(buffer[:read])


def decrypt_file(
    src_path: str | os.PathLike,
    dst_path: str | os.PathLike,
    identities: Sequence[Identity],
) -> None:
    """Decrypt a file with bounded memory; ``dst_path`` is written only if the whole file verifies."""
    with open(src_path, "rb", buffering=0) as src, _replace_on_success(dst_path) as out:
        _advise_sequential(src.fileno())
        # The temporary file is deleted on any error, so the bulk path may
        # write blocks before a later chunk fails.
        _open_payload(src, identities).open_all(out.write, _BATCH_CHUNKS)
