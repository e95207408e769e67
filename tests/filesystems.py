"""A real full file system: a small tmpfs mounted over one of the hub's folders (this needs root or
CAP_SYS_ADMIN, which the test machine gives), then filled up. RLIMIT_FSIZE would only fake it: it caps every file
of the process, answers EFBIG instead of ENOSPC, and knows nothing of one folder being full and another not."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_fs(folder: Path, *, leave: int = 0, size: str = "1m"):
    """Mounts a tmpfs of `size` on the empty `folder` and fills it to `leave` bytes free; yields the filler."""
    folder.mkdir(parents=True, exist_ok=True)
    assert not any(folder.iterdir()), folder
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here ({mounted.stderr.strip()}); needs root or CAP_SYS_ADMIN")
    filler = folder / ".filler"
    try:
        vfs = os.statvfs(folder)
        with open(filler, "wb") as fh:
            fh.write(b"\0" * (vfs.f_bavail * vfs.f_frsize - leave))
        yield filler
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
