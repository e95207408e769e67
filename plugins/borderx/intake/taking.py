"""Taking a file out of intake for one run, and finding what a run that died was holding."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from borderx.config.models import DeploymentConfig
from borderx.errors import IntakeError
from borderx.folders import NAME_MAX, LinkedFolder, create_private, descended, entries, exists_at, opened
from borderx.home import Home
from borderx.intake.finding import SIGNATURE_SUFFIX, IntakeFile, intake_folders

# -- the hand-off between runs ---------------------------------------------------------------------
#
# A run takes a file by renaming it into a hidden folder beside it, before hashing it. The rename is
# atomic, so when two runs (the event-driven one and the sweep, or two sweeps) reach for the same file
# exactly one gets it and the other finds it gone. The folder sits inside the intake folder itself
# because only there is a rename guaranteed to stay on one file system (intake is often a volume of
# its own) and visible to every worker that runs the later stages.

INFLIGHT_DIR = ".inflight"
OWNER_FILE = "owner.json"
LOCK_FILE = ".lock"
LIVE_RUN_STATES = ("queued", "running")

# One owner id per process, and the open lock files (one per folder it took from) that mark it alive.
_process_owner: dict[int, str] = {}
_held_locks: dict[str, int] = {}


@dataclass(frozen=True)
class Owner:
    """Who holds the files it took out of intake: one Airflow run (all its tasks), or one process."""

    id: str
    dag_id: str | None = None
    run_id: str | None = None

    @classmethod
    def for_actor(cls, actor: dict | None) -> Owner:
        if actor and actor.get("dag_id") and actor.get("run_id"):
            return cls.for_run(actor["dag_id"], actor["run_id"])
        return cls.for_process()

    @classmethod
    def for_run(cls, dag_id: str, run_id: str) -> Owner:
        key = hashlib.sha256(f"{dag_id}\0{run_id}".encode()).hexdigest()[:16]
        return cls(f"run-{key}", dag_id, run_id)

    @classmethod
    def for_process(cls) -> Owner:
        # Keyed by pid: a forked child is a different owner with its own lock.
        pid = os.getpid()
        if pid not in _process_owner:
            _process_owner[pid] = f"proc-{uuid.uuid4().hex[:16]}"
        return cls(_process_owner[pid])

    def record(self) -> dict:
        if self.run_id:
            return {"kind": "run", "dag_id": self.dag_id, "run_id": self.run_id}
        return {"kind": "process"}


def inflight_root(folder: Path) -> Path:
    return folder / INFLIGHT_DIR


def _claim_dir(fd: int, folder: Path, owner: Owner) -> None:
    """The owner's folder under the intake folder open as `fd`, made (0700) and marked on first use."""
    where = inflight_root(folder) / owner.id
    with descended(fd, (INFLIGHT_DIR, owner.id), create=True, shown=folder) as owner_fd:
        if not owner.run_id:
            lock = str(where / LOCK_FILE)
            if lock not in _held_locks:
                lock_fd = create_private(LOCK_FILE, dir_fd=owner_fd, exclusive=False, flags=os.O_RDWR)
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Held until the process ends: the kernel drops it then, however the process died. Taken before
                # the owner file exists, so no one ever sees a process owner without its lock held.
                _held_locks[lock] = lock_fd
        if not exists_at(owner_fd, OWNER_FILE):
            # Written before any file is moved in, so a folder holding files always says whose they are.
            tmp = f".{OWNER_FILE}.{os.getpid()}"
            with os.fdopen(create_private(tmp, dir_fd=owner_fd, exclusive=False, flags=os.O_WRONLY | os.O_TRUNC),
                           "w", encoding="utf-8") as fh:
                fh.write(json.dumps(owner.record(), sort_keys=True))
            os.replace(tmp, OWNER_FILE, src_dir_fd=owner_fd, dst_dir_fd=owner_fd)


def held_path(folder: Path, owner: Owner, source: Path, size: int) -> Path:
    """Where `owner` keeps `source` once taken. The same file offered again maps to the same place, so a
    retried task finds what its first attempt took; a file adopted from another owner never collides with
    one of the same name taken from intake."""
    key = hashlib.sha256(f"{source}\0{size}".encode()).hexdigest()[:16]
    return inflight_root(folder) / owner.id / key / source.name


def take(source: Path, folder: Path, owner: Owner, size: int, *, root: Path = Path("/")) -> Path | None:
    """Moves `source` out of sight of every other run; returns where it now is, or None if another run
    (or an earlier, finished attempt) already took it.

    The intake folder is reached from `root` (the home) without following a link, and the file is moved
    within it by descriptor: a folder swapped for a link is refused (LinkedFolder), never moved from.
    """
    held = held_path(folder, owner, source, size)
    in_hand = held.relative_to(folder).parts[:-1]
    try:
        # A file in intake, or one adopted from another owner's folder under .inflight.
        lies_in = source.parent.relative_to(folder).parts
    except ValueError:
        raise IntakeError(f"{source}: not in the intake folder {folder}") from None
    try:
        with opened(folder, root) as fd:
            if _holds(fd, in_hand, source.name):
                return held
            with descended(fd, lies_in, shown=folder) as source_fd:
                return _move_aside(fd, source_fd, source, folder, owner, in_hand, held)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _move_aside(fd: int, source_fd: int, source: Path, folder: Path, owner: Owner, in_hand: tuple[str, ...],
                held: Path) -> Path | None:
    try:
        st = os.stat(source.name, dir_fd=source_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    # Any entry but a folder is taken as it is: rename moves a link itself, never what it points to.
    if stat.S_ISDIR(st.st_mode):
        raise IntakeError(f"{source}: a folder, not a file")
    for _ in range(3):
        _claim_dir(fd, folder, owner)
        try:
            with descended(fd, in_hand, create=True, shown=folder) as key_fd:
                os.replace(source.name, source.name, src_dir_fd=source_fd, dst_dir_fd=key_fd)
                _take_signature(source_fd, key_fd, source.name)
            return held
        except FileNotFoundError:
            if not exists_at(source_fd, source.name):
                return None
            # A sweep tidied the empty folder away between mkdir and rename; make it again.
    raise IntakeError(f"{source}: could not be moved aside for processing")


def _take_signature(source_fd: int, key_fd: int, name: str) -> None:
    """The provider's signature goes with its file, as the entry it is (a link is moved, not followed)."""
    if len(os.fsencode(name + SIGNATURE_SUFFIX)) > NAME_MAX:
        return  # a name with no room for a signature beside it has none
    try:
        os.replace(name + SIGNATURE_SUFFIX, name + SIGNATURE_SUFFIX, src_dir_fd=source_fd, dst_dir_fd=key_fd)
    except FileNotFoundError:
        pass


def _holds(fd: int, in_hand: tuple[str, ...], name: str) -> bool:
    try:
        with descended(fd, in_hand) as key_fd:
            return exists_at(key_fd, name)
    except (FileNotFoundError, NotADirectoryError):
        return False


def owner_is_live(owner_dir: Path, run_is_live: Callable[[str, str], bool] | None = None) -> bool:
    """Whether the owner of `owner_dir` may still be working on what it holds.

    A process owner is alive while it holds its lock. A run's liveness is only known to Airflow, through
    `run_is_live`; without it a run is assumed alive, so nothing is ever taken from under a running task.
    """
    try:
        record = json.loads((owner_dir / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    if record.get("kind") == "process":
        lock = str(owner_dir / LOCK_FILE)
        if lock in _held_locks:
            return True
        try:
            fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # not a lock the hub made (a link): nothing is adopted from there
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
    if record.get("kind") == "run" and run_is_live is not None:
        return run_is_live(record["dag_id"], record["run_id"])
    return True


def adoptable(config: DeploymentConfig, home: Home,
              run_is_live: Callable[[str, str], bool] | None = None) -> list[IntakeFile]:
    """Files that a run or process took out of intake and then died holding; the next sweep finishes them.

    Files this process took itself count too: a process runs one pass at a time, so what it still holds
    when it looks again was left by a pass that failed part-way. Also tidies what finished owners left
    behind (empty folders), never a file. Linked folders are never walked (the scan refuses them).
    """
    mine = Owner.for_process().id
    found: list[IntakeFile] = []
    for agency_id, dataset_id, folder in intake_folders(config, home):
        root = inflight_root(folder)
        try:
            with opened(root, home.root) as root_fd:
                for owner_name in _folders_in(root_fd):
                    owner_dir = root / owner_name
                    with descended(root_fd, (owner_name,), shown=root) as owner_fd:
                        files = _held_files(owner_fd, owner_dir)
                    if owner_name != mine:
                        if owner_is_live(owner_dir, run_is_live):
                            continue
                        if not files:
                            _remove_owner_dir(owner_dir)
                            continue
                    found += [IntakeFile(agency_id, dataset_id, str(p), p.name, st.st_size) for p, st in files]
        except (LinkedFolder, FileNotFoundError, NotADirectoryError):
            continue
    return found


def _folders_in(fd: int) -> list[str]:
    return [name for name, st in entries(fd) if stat.S_ISDIR(st.st_mode)]


def _held_files(owner_fd: int, owner_dir: Path) -> list[tuple[Path, os.stat_result]]:
    """What an owner holds, by path, with each entry's own stat; empty key folders are tidied away."""
    files = []
    for key in _folders_in(owner_fd):
        with descended(owner_fd, (key,), shown=owner_dir) as key_fd:
            # Links taken and not yet quarantined count too: the next receive quarantines them.
            inside = [(owner_dir / key / name, st) for name, st in entries(key_fd)
                      if not stat.S_ISDIR(st.st_mode) and not name.endswith(SIGNATURE_SUFFIX)]
        if not inside:
            try:
                os.rmdir(key, dir_fd=owner_fd)
            except OSError:
                pass
        files += inside
    return files


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _remove_owner_dir(owner_dir: Path) -> None:
    for name in (OWNER_FILE, LOCK_FILE):
        (owner_dir / name).unlink(missing_ok=True)
    _rmdir_quietly(owner_dir)
