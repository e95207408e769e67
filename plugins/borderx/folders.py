"""The hub's folders walked without following links, and what the hub creates in them kept private.

A folder is opened one level at a time, each level relative to the one above it (`O_DIRECTORY | O_NOFOLLOW`),
from a trusted root down: the home (known by its real path) for the intake folders and what lies below them,
the file system's root for a folder outside the home (an absolute pull folder). A link anywhere on the way
(an agency folder, a dataset folder, a folder in the middle of a pull path, a hand-off folder swapped after a
file was taken) is refused with LinkedFolder, never followed.

Folders the hub creates are 0700 and files 0600, whatever the process umask: intake, quarantine, archive,
state and work hold extracts and bookkeeping that only the hub may read.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Iterator

from borderx.errors import LinkedFolder

FOLDER_MODE = 0o700
FILE_MODE = 0o600
NAME_MAX = 255  # bytes in one file name, where the file system does not say
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def walk_of(root: Path, folder: Path) -> tuple[Path, tuple[str, ...]]:
    """(root, the names from root down to `folder`) when `folder` lies under `root`; otherwise `folder` is
    walked from the file system's root, so no link on its way is followed either."""
    folder = Path(os.path.abspath(folder))
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        return Path(folder.anchor), folder.parts[1:]
    return Path(root), parts


def _link_target(fd: int, name: str) -> str:
    return os.readlink(name, dir_fd=fd).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _open_below(fd: int, name: str, root: Path, done: tuple[str, ...]) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise LinkedFolder(root, PurePath(*done, name), _link_target(fd, name)) from None
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(root.joinpath(*done, name))) from None


def open_folder(root: Path, parts: tuple[str, ...] | list[str] = (), *, create: bool = False) -> int:
    """An open descriptor of root/parts..., reached without following a link below `root`.

    With `create`, missing levels are made private (0700). Raises LinkedFolder for a link on the way,
    FileNotFoundError or NotADirectoryError when the folder is not there. The caller closes the descriptor.
    """
    fd = os.open(root, _FOLDER_FLAGS)
    try:
        return descend(fd, parts, create=create, shown=Path(root))
    finally:
        os.close(fd)


def descend(fd: int, parts: tuple[str, ...] | list[str], *, create: bool = False, shown: Path = Path(".")) -> int:
    """A new descriptor of fd/parts..., opened one level at a time as `open_folder` does; `fd` stays open.
    `shown` is where `fd` is, for messages."""
    here = os.dup(fd)
    done: tuple[str, ...] = ()
    try:
        for name in parts:
            if name in ("", ".", "..") or "/" in name:
                raise ValueError(f"{shown.joinpath(*done)}: {name!r} is not a folder name")
            try:
                below = _open_below(here, name, shown, done)
            except FileNotFoundError:
                if not create:
                    raise
                _mkdir_private(here, name)
                below = _open_below(here, name, shown, done)
            os.close(here)
            here = below
            done += (name,)
    except BaseException:
        os.close(here)
        raise
    return here


@contextmanager
def descended(fd: int, parts: tuple[str, ...] | list[str], *, create: bool = False,
              shown: Path = Path(".")) -> Iterator[int]:
    below = descend(fd, parts, create=create, shown=shown)
    try:
        yield below
    finally:
        os.close(below)


def exists_at(fd: int, name: str) -> bool:
    """Whether the folder open as `fd` has an entry `name` (a link counts, whatever it points to)."""
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@contextmanager
def opened_folder(root: Path, parts: tuple[str, ...] | list[str] = (), *, create: bool = False) -> Iterator[int]:
    fd = open_folder(root, parts, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def opened(folder: Path, root: Path, *, create: bool = False) -> Iterator[int]:
    """`folder` opened from `root` down, as `opened_folder` does."""
    with opened_folder(*walk_of(root, folder), create=create) as fd:
        yield fd


def first_link(root: Path, folder: Path) -> LinkedFolder | None:
    """The first link on the way from `root` to `folder`, if any; a missing folder has none."""
    try:
        with opened(folder, root):
            return None
    except LinkedFolder as exc:
        return exc
    except OSError:
        return None


def entries(fd: int) -> list[tuple[str, os.stat_result]]:
    """The entries of an open folder by name, each with the stat of the entry itself (links not followed)."""
    found = []
    with os.scandir(fd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        try:
            found.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
        except FileNotFoundError:
            continue
    return found


def _mkdir_private(fd: int | None, name: str | Path) -> bool:
    try:
        os.mkdir(name, FOLDER_MODE, dir_fd=fd)
    except FileExistsError:
        return False
    # mkdir's mode passes through the umask, which may also take bits the hub needs: set it exactly.
    os.chmod(name, FOLDER_MODE, dir_fd=fd)
    return True


def private_folders(path: Path) -> Path:
    """`path` and its missing parents made as 0700 folders (`mkdir -p`, private whatever the umask)."""
    path = Path(path)
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        _mkdir_private(None, folder)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(path))
    return path


def create_private(name: str | Path, *, dir_fd: int | None = None, exclusive: bool = True,
                   flags: int = os.O_WRONLY) -> int:
    """Opens a new file `name` (0600 whatever the umask) and returns its descriptor; never through a link.

    With `exclusive` off an existing file is opened as it is (its mode is left alone).
    """
    how = flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_EXCL if exclusive else 0)
    # The umask can only take bits away from 0600; a new file is set to exactly 0600 so it stays usable.
    fd = os.open(name, how, FILE_MODE, dir_fd=dir_fd)
    if exclusive:
        try:
            os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
    return fd


def write_private(path: Path, text: str) -> None:
    """Writes a new file `path` (0600) with `text`; fails if it exists."""
    fd = create_private(path)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def replace_private(path: Path, text: str) -> None:
    """Puts `text` at `path` (0600) in one step: written under a temporary name, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        write_private(tmp, text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def connect_store(path: Path) -> sqlite3.Connection:
    """A connection to the hub's SQLite store at `path` (see `private_store`): autocommit, write-ahead log, and
    a wait for the other workers' writes rather than an error."""
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    return db


def private_store(path: Path) -> Path:
    """Makes the folder and an empty 0600 file for a SQLite store at `path`, before SQLite opens it: SQLite
    creates its database with the umask's mode, and its journal and WAL files with the database's."""
    private_folders(path.parent)
    if not os.path.lexists(path):
        try:
            os.close(create_private(path))
        except FileExistsError:
            pass
    return path
