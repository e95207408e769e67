"""Reading an intake file safely: entries the hub will not read, the content hash, and files that change under it."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from borderx.errors import ChangedWhileRead, UnsafeEntry
from borderx.folders import opened

HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Extract:
    """An intake file after receipt: its content hash fixes its identity for the rest of the flow."""

    agency: str
    dataset: str
    path: str
    name: str
    size: int
    sha256: str
    received_at: str
    # The file's identity when it was hashed (see `fingerprint`); every later read is checked against it.
    fingerprint: tuple[int, ...] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Extract:
        data = dict(data)
        if data.get("fingerprint") is not None:
            data["fingerprint"] = tuple(data["fingerprint"])
        return cls(**data)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(st: os.stat_result) -> tuple[int, ...]:
    """What changes whenever a file's content can have changed: its inode, size, and modification and change
    times (the kernel sets both on every write or truncation, so a rewrite to the same size still shows)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def check_entry(path: Path, st: os.stat_result | None = None) -> None:
    """Raises UnsafeEntry unless `path` is a regular file with no other name. Looks at the entry itself only."""
    st = st or path.lstat()
    if stat.S_ISLNK(st.st_mode):
        # Shown to people and written to JSON: bytes that are not UTF-8 are replaced, not carried.
        target = os.readlink(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise UnsafeEntry(path, "symlink", f"a symbolic link to {target}, not a file; the hub does not follow links",
                          {"kind": "symbolic link", "target": target})
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "special file")
        raise UnsafeEntry(path, "not-a-file", f"a {kind}, not a file", {"kind": kind})
    if st.st_nlink > 1:
        raise UnsafeEntry(
            path, "hard-link",
            f"a hard link: the same file has {st.st_nlink - 1} other name(s) elsewhere, through which it can be read "
            f"and changed, so the hub did not read it (inode {st.st_ino})",
            {"kind": "hard link", "links": st.st_nlink, "inode": st.st_ino, "device": st.st_dev, "size": st.st_size,
             "modified": dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat().replace("+00:00", "Z")},
        )


_KINDS = {stat.S_IFIFO: "named pipe", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
          stat.S_IFBLK: "block device", stat.S_IFDIR: "folder"}


def hash_taken(path: Path) -> tuple[str, tuple[int, ...]]:
    """The SHA-256 of the file at `path` and its fingerprint, from one open descriptor, checked to be stable.

    Raises UnsafeEntry if the entry is not a plain file of its own, and ChangedWhileRead if anyone wrote to it
    while it was read or the name now leads to another file, so the hash always describes the bytes that the
    later stages read. The folders on the way are opened without following a link, from the file system's
    root (the home is known by its real path): a folder swapped for a link after the file was taken raises
    LinkedFolder, and nothing behind it is read.
    """
    try:
        with opened(path.parent, Path("/")) as folder_fd:
            return _hash_in(folder_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        raise ChangedWhileRead(f"{path.name}: moved away before it could be read") from None


def _hash_in(folder_fd: int, path: Path) -> tuple[str, tuple[int, ...]]:
    def entry() -> os.stat_result:
        return os.stat(path.name, dir_fd=folder_fd, follow_symlinks=False)

    check_entry(path, entry())
    try:
        # O_NOFOLLOW and O_NONBLOCK: an entry swapped for a link or a pipe since it was checked is neither
        # followed nor waited on; the fstat below then sees what was really opened.
        fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=folder_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_entry(path, entry())
        raise
    with os.fdopen(fd, "rb") as fh:
        before = os.fstat(fd)
        check_entry(path, before)
        digest = hashlib.sha256()
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
        after = os.fstat(fd)
    _same_file(path, fingerprint(before), fingerprint(after))
    try:
        named = fingerprint(entry())
    except FileNotFoundError:
        raise ChangedWhileRead(f"{path.name}: moved away while it was being read") from None
    _same_file(path, fingerprint(after), named)
    return digest.hexdigest(), fingerprint(after)


def check_unchanged(extract: Extract, *, rehash: bool = False) -> None:
    """Raises ChangedWhileRead if the extract's file is no longer what was hashed when it was received.

    With `rehash`, the content is hashed again as well: a change then shows even where the file system's
    timestamps are too coarse to (two writes within one clock tick), at the cost of one more read.
    """
    if extract.fingerprint is None:
        return
    path = Path(extract.path)
    try:
        now = fingerprint(path.lstat())
    except FileNotFoundError:
        raise ChangedWhileRead(f"{extract.name}: gone from {path.parent} since it was received") from None
    _same_file(path, tuple(extract.fingerprint), now)
    if rehash:
        try:
            digest, now = hash_taken(path)
        except UnsafeEntry as exc:
            raise ChangedWhileRead(f"{extract.name}: became {exc.message} since it was received") from None
        _same_file(path, tuple(extract.fingerprint), now)
        if digest != extract.sha256:
            raise ChangedWhileRead(f"{path.name} no longer has the content it was received with")


def _same_file(path: Path, then: tuple[int, ...], now: tuple[int, ...]) -> None:
    if then == now:
        return
    if then[0] != now[0]:
        what = "was replaced by another file"
    elif then[1] != now[1]:
        what = f"changed size from {then[1]} to {now[1]} bytes"
    else:
        what = "was rewritten (its modification time moved)"
    raise ChangedWhileRead(f"{path.name} {what} while the hub was reading it")
