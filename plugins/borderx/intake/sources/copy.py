"""Copying one source object into an intake folder: whole, once, private, and never over another file.

Every copy is written beside the intake file under a hidden temporary name of fixed length, fsynced, then
linked into place, so the intake trigger never sees half a file and a name near the file system's limit
still has room for its temporary. A name already taken in intake is never overwritten. A name that cannot
exist in the intake folder (too long, or not a file name at all) is refused once, recorded in the copy
store and the audit trail, and not tried again. What was copied is remembered in HOME/state/pulled.sqlite.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from borderx.audit.trail import AuditTrail
from borderx.folders import NAME_MAX, LinkedFolder, create_private, opened, private_folders
from borderx.home import Home
from borderx.intake.refusals import record_once, refuse_linked_folder
from borderx.intake.watch import AnnouncedStore
from borderx.audit.events import CopiedIn

log = logging.getLogger(__name__)

PULLED_STORE = "pulled.sqlite"
LOCKS = "pull-locks"
BLOCK = 1 << 20
COPY_ACTOR = {"hub": True, "via": "intake copy"}


@dataclass(frozen=True)
class SourceObject:
    """One version of a file at a source, and the intake folder it belongs in. Plain fields: it travels as an XCom.

    `version` tells versions of one name apart: the ETag of an S3 object, the mtime in ns of a file.
    """

    agency: str
    dataset: str
    name: str
    uri: str
    size: int
    version: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def identity(self) -> tuple[str, int, int]:
        # The trigger's store keys by (path, size, mtime_ns); the version goes in the path, so ETags fit too.
        return f"{self.uri}#{self.version}", self.size, 0


@dataclass(frozen=True)
class Copied:
    """What became of one source object: copied, seen (copied before), waiting (its name is taken in intake
    by another file, which the exchange has yet to take), changed (it changed while being copied) or refused
    (its name cannot be an intake file's; recorded once)."""

    status: str
    name: str
    uri: str
    path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def pulled_store(home: Home) -> AnnouncedStore:
    return AnnouncedStore(home.state / PULLED_STORE)


@contextmanager
def _folder_lock(home: Home, agency: str, dataset: str) -> Iterator[None]:
    """One copier per intake folder at a time, so the event-driven run and a sweep never copy one object twice."""
    locks = private_folders(home.state / LOCKS)
    fd = create_private(locks / f"{agency}--{dataset}.lock", exclusive=False)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def temporary_name() -> str:
    """A hidden name of fixed length (39 bytes) for a copy in progress, whatever the length of the final name."""
    return f".copy-{uuid.uuid4().hex}.part"


def name_problem(name: str, name_max: int = NAME_MAX) -> str | None:
    """Why `name` cannot be an intake file's name, or None if it can."""
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        return "not-a-file-name"
    if len(os.fsencode(name)) > name_max:
        return "name-too-long"
    return None


def _name_max(fd: int) -> int:
    try:
        return os.fpathconf(fd, "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def _digest_at(fd: int, name: str) -> str:
    h = hashlib.sha256()
    with os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd), "rb") as fh:
        while block := fh.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def _same_content(fd: int, a: str, b: str) -> bool:
    """Whether two entries of the folder open as `fd` are files with equal content; a link is never read."""
    try:
        return (os.stat(a, dir_fd=fd, follow_symlinks=False).st_size
                == os.stat(b, dir_fd=fd, follow_symlinks=False).st_size) and _digest_at(fd, a) == _digest_at(fd, b)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.ENXIO):
            return False
        raise


def refuse(home: Home, obj: SourceObject, problem: str, store: AnnouncedStore) -> Copied:
    """Records once that `obj` cannot be copied in (audit `refused` event, copy store); not tried again."""
    log.warning("%s cannot be copied into intake (%s); refused, and not tried again", obj.uri, problem)
    record_once(home, f"copy:{obj.uri}", (obj.size, 0), reason=problem, provider=obj.agency, dataset=obj.dataset,
                source_uri=obj.uri, source_version=obj.version, name_bytes=len(os.fsencode(obj.name)))
    store.add(*obj.identity)
    return Copied("refused", obj.name, obj.uri)


def copy_in(home: Home, folder: Path, obj: SourceObject, write: Callable[[BinaryIO], None],
            unchanged: Callable[[], bool] = lambda: True, store: AnnouncedStore | None = None) -> Copied:
    """Copies one source object into the intake `folder` (reached from the home without following a link), once.

    `write` puts the object's bytes into an open file; `unchanged` says, after the copy, whether the source is
    still the version named by `obj`. A copy of the wrong size or of a changed source is thrown away unrecorded.
    """
    store = store or pulled_store(home)
    with _folder_lock(home, obj.agency, obj.dataset):
        if store.contains(*obj.identity):
            return Copied("seen", obj.name, obj.uri)
        try:
            with opened(folder, home.root, create=True) as fd:
                problem = name_problem(obj.name, _name_max(fd))
                if problem:
                    return refuse(home, obj, problem, store)
                outcome = _copy_into(fd, obj, write, unchanged)
        except LinkedFolder as exc:
            # Not remembered as copied: once the link is a real folder again, the object is copied.
            refuse_linked_folder(home, exc, obj.agency, obj.dataset)
            return Copied("refused", obj.name, obj.uri)
        if outcome is not None:
            return outcome
        store.add(*obj.identity)
        target = folder / obj.name
        # Where an extract came from is part of what an auditor reviews; its content is hashed on receipt.
        AuditTrail(home.audit).record(CopiedIn(provider=obj.agency, dataset=obj.dataset, source_name=obj.name,
                                               source_uri=obj.uri, source_version=obj.version, size=obj.size,
                                               file=str(target)), actor=COPY_ACTOR)
        log.info("copied %s into intake as %s", obj.uri, target)
        return Copied("copied", obj.name, obj.uri, str(target))


def _copy_into(fd: int, obj: SourceObject, write: Callable[[BinaryIO], None],
               unchanged: Callable[[], bool]) -> Copied | None:
    """Writes, checks and links the copy in the folder open as `fd`; None once it is in place."""
    partial = temporary_name()
    try:
        with os.fdopen(create_private(partial, dir_fd=fd), "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if os.stat(partial, dir_fd=fd, follow_symlinks=False).st_size != obj.size or not unchanged():
            log.warning("%s changed while it was copied; left for the next round", obj.uri)
            return Copied("changed", obj.name, obj.uri)
        try:
            # A link, unlike a rename, never replaces a file an agency or an earlier copy put there.
            os.link(partial, obj.name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            if not _same_content(fd, partial, obj.name):
                log.info("%s waits: %s in intake is another file, not yet taken by the exchange", obj.uri, obj.name)
                return Copied("waiting", obj.name, obj.uri)
        os.fsync(fd)
    finally:
        try:
            os.unlink(partial, dir_fd=fd)
        except FileNotFoundError:
            pass
    return None
