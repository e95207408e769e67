"""Finding complete extracts in the intake folders, hashing them, and remembering what was seen."""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import hashlib
import logging
import json
import os
import sqlite3
import stat
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

from borderx.config.models import DeploymentConfig
from borderx.errors import IntakeError
from borderx.home import Home

# Names that file transfer tools use while a file is still arriving.
log = logging.getLogger(__name__)
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart", "~", ".swp")
REPORT_SUFFIXES = (".report.json", ".report.txt")
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class IntakeFile:
    """A complete file waiting in an intake folder. Plain fields only, so it travels as an Airflow XCom."""

    agency: str
    dataset: str
    path: str
    name: str
    size: int

    def to_dict(self) -> dict:
        return asdict(self)


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


def is_candidate_name(name: str) -> bool:
    return not (name.startswith(".") or name.endswith(PARTIAL_SUFFIXES) or name.endswith(REPORT_SUFFIXES))


def candidate_files(folder: Path) -> Iterator[tuple[os.DirEntry, os.stat_result]]:
    """The regular files directly in `folder` that may be extracts, with their own stat, by name. Links are
    never followed and count as no file here; a missing folder holds none."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if not is_candidate_name(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            yield entry, st


def is_complete(path: Path, settle_seconds: float, *, now: float | None = None) -> bool:
    """An entry that nobody has changed for the settle time counts as complete.

    Links and other entries that are not plain files count too, judged by the entry itself and never by what
    it points to: they are taken only to be quarantined, unread.
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        return False
    return (now if now is not None else time.time()) - st.st_mtime >= settle_seconds


def scan(config: DeploymentConfig, home: Home, settle_seconds: float | None = None) -> list[IntakeFile]:
    """Every complete file in the intake folders of every agency that provides a dataset under some agreement."""
    settle = config.settings.intake.settle_seconds if settle_seconds is None else settle_seconds
    found: list[IntakeFile] = []
    for agency_id, dataset_id in sorted(provided_datasets(config)):
        folder = home.intake_folder(agency_id, dataset_id, config.agencies[agency_id].intake.folder)
        for path in _files_in(folder):
            if is_candidate_name(path.name) and is_complete(path, settle):
                found.append(IntakeFile(agency_id, dataset_id, str(path), path.name, path.lstat().st_size))
    return found


def intake_file_for(config: DeploymentConfig, home: Home, given: str | os.PathLike) -> IntakeFile:
    """The intake file at `given` (absolute, or relative to the home), placed by the folder it sits in."""
    path = Path(given)
    path = (path if path.is_absolute() else home.root / path).absolute()
    for agency_id, dataset_id in provided_datasets(config):
        folder = home.intake_folder(agency_id, dataset_id, config.agencies[agency_id].intake.folder).absolute()
        if path.parent == folder:
            try:
                st = path.lstat()
            except FileNotFoundError:
                raise IntakeError(f"{path}: no such file") from None
            if stat.S_ISDIR(st.st_mode):
                raise IntakeError(f"{path}: a folder, not a file")
            # A link or special file is placed too: receive quarantines it without reading it.
            return IntakeFile(agency_id, dataset_id, str(path), path.name, st.st_size)
    raise IntakeError(f"{path}: not in the intake folder of any agency and dataset that an agreement covers")


def provided_datasets(config: DeploymentConfig) -> set[tuple[str, str]]:
    return {(p, d) for a in config.agreements.values() for p in a.providers for d in a.datasets if p in config.agencies}


def _files_in(folder: Path) -> Iterator[Path]:
    """Every entry but folders: links, pipes and the like are found so that they can be quarantined."""
    if not folder.is_dir():
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# -- entries the hub will not read, and files that change under it ----------------------------------


class UnsafeEntry(IntakeError):
    """An intake entry that is not a plain file of its own: a symbolic link, a hard link, a pipe or a device.

    Reading it would read something the agency did not drop here (a link's target, or a file that lives on
    under another name), so it is quarantined as it is and never opened. `details` says what it is, for the
    report: the link's target as written in the link (never resolved), or the inode a hard link shares.
    """

    def __init__(self, path: Path, rule: str, message: str, details: dict):
        super().__init__(f"{path.name}: {message}")
        self.rule = rule
        self.message = message
        self.details = details


class ChangedWhileRead(IntakeError):
    """The file was written to, truncated or replaced while the hub read it, or between two of its reads."""

    rule = "changed-while-read"


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
    later stages read.
    """
    try:
        check_entry(path)
        # O_NOFOLLOW and O_NONBLOCK: an entry swapped for a link or a pipe since it was checked is neither
        # followed nor waited on; the fstat below then sees what was really opened.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise ChangedWhileRead(f"{path.name}: moved away before it could be read") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            check_entry(path)
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
        named = fingerprint(path.lstat())
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


class Ledger:
    """What the hub has taken in, keyed by content hash, so no extract is processed twice."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        try:
            self._create()
        except sqlite3.DatabaseError:
            # A damaged ledger is kept for inspection and replaced; the bucket, checked before every
            # upload, still keeps a re-run from publishing anything twice.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.warning("ledger %s is damaged; kept as %s and started afresh", path, aside.name)
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS extracts ("
                " sha256 TEXT PRIMARY KEY, agency TEXT, dataset TEXT, name TEXT,"
                " received_at TEXT, outcome TEXT, updated_at TEXT)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def claim(self, extract: Extract) -> dict | None:
        """Records a new extract; returns the earlier record if this content was already taken in.

        An earlier record whose outcome is still 'received' is an interrupted run of the same extract,
        which the caller resumes rather than rejects.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT agency, dataset, name, received_at, outcome FROM extracts WHERE sha256 = ?", (extract.sha256,)
            ).fetchone()
            if row:
                db.execute("COMMIT")
                return dict(zip(("agency", "dataset", "name", "received_at", "outcome"), row))
            db.execute(
                "INSERT INTO extracts VALUES (?, ?, ?, ?, ?, 'received', ?)",
                (extract.sha256, extract.agency, extract.dataset, extract.name, extract.received_at, extract.received_at),
            )
            db.execute("COMMIT")
            return None

    def get(self, sha256: str) -> dict | None:
        with self._connect() as db:
            row = db.execute("SELECT received_at, outcome FROM extracts WHERE sha256 = ?", (sha256,)).fetchone()
        return dict(zip(("received_at", "outcome"), row)) if row else None

    def settle(self, sha256: str, outcome: str, *, now: dt.datetime | None = None) -> None:
        stamp = (now or dt.datetime.now(dt.timezone.utc)).isoformat()
        with self._connect() as db:
            db.execute("UPDATE extracts SET outcome = ?, updated_at = ? WHERE sha256 = ?", (outcome, stamp, sha256))


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


def _claim_dir(folder: Path, owner: Owner) -> Path:
    """The owner's folder under `folder`, made and marked on first use."""
    where = inflight_root(folder) / owner.id
    where.mkdir(parents=True, exist_ok=True)
    if not owner.run_id:
        lock = str(where / LOCK_FILE)
        if lock not in _held_locks:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Held until the process ends: the kernel drops it then, however the process died. Taken before
            # the owner file exists, so no one ever sees a process owner without its lock held.
            _held_locks[lock] = fd
    if not (where / OWNER_FILE).exists():
        # Written before any file is moved in, so a folder holding files always says whose they are.
        tmp = where / f".{OWNER_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(owner.record(), sort_keys=True), encoding="utf-8")
        os.replace(tmp, where / OWNER_FILE)
    return where


def held_path(folder: Path, owner: Owner, source: Path, size: int) -> Path:
    """Where `owner` keeps `source` once taken. The same file offered again maps to the same place, so a
    retried task finds what its first attempt took; a file adopted from another owner never collides with
    one of the same name taken from intake."""
    key = hashlib.sha256(f"{source}\0{size}".encode()).hexdigest()[:16]
    return inflight_root(folder) / owner.id / key / source.name


def take(source: Path, folder: Path, owner: Owner, size: int) -> Path | None:
    """Moves `source` out of sight of every other run; returns where it now is, or None if another run
    (or an earlier, finished attempt) already took it."""
    held = held_path(folder, owner, source, size)
    if os.path.lexists(held):
        return held
    try:
        st = source.lstat()
    except FileNotFoundError:
        return None
    # Any entry but a folder is taken as it is: rename moves a link itself, never what it points to.
    if stat.S_ISDIR(st.st_mode):
        raise IntakeError(f"{source}: a folder, not a file")
    for _ in range(3):
        _claim_dir(folder, owner)
        held.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, held)
            return held
        except FileNotFoundError:
            if not os.path.lexists(source):
                return None
            # A sweep tidied the empty folder away between mkdir and rename; make it again.
    raise IntakeError(f"{source}: could not be moved aside for processing")


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
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return False
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
    behind (empty folders), never a file.
    """
    mine = Owner.for_process().id
    found: list[IntakeFile] = []
    for agency_id, dataset_id in sorted(provided_datasets(config)):
        folder = home.intake_folder(agency_id, dataset_id, config.agencies[agency_id].intake.folder)
        root = inflight_root(folder)
        if not root.is_dir():
            continue
        for owner_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
            files = []
            for key_dir in sorted(p for p in owner_dir.iterdir() if p.is_dir() and not p.is_symlink()):
                # Links taken and not yet quarantined count too: the next receive quarantines them.
                inside = [p for p in key_dir.iterdir() if p.is_symlink() or not p.is_dir()]
                if not inside:
                    _rmdir_quietly(key_dir)
                files += inside
            if owner_dir.name != mine:
                if owner_is_live(owner_dir, run_is_live):
                    continue
                if not files:
                    _remove_owner_dir(owner_dir)
                    continue
            found += [IntakeFile(agency_id, dataset_id, str(p), p.name, p.lstat().st_size) for p in files]
    return found


def intake_file_from_event(config: DeploymentConfig, home: Home, payload: dict) -> IntakeFile | None:
    """The intake file an IntakeFolderTrigger event names, if it still lies where an agreement covers it."""
    try:
        agency, dataset, path = payload["agency"], payload["dataset"], Path(payload["path"])
    except (KeyError, TypeError):
        return None
    if (agency, dataset) not in provided_datasets(config):
        return None
    folder = home.intake_folder(agency, dataset, config.agencies[agency].intake.folder)
    if path.parent.resolve() != folder.resolve() or not is_candidate_name(path.name):
        return None
    return IntakeFile(agency, dataset, str(path), path.name, int(payload.get("size") or 0))


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _remove_owner_dir(owner_dir: Path) -> None:
    for name in (OWNER_FILE, LOCK_FILE):
        (owner_dir / name).unlink(missing_ok=True)
    _rmdir_quietly(owner_dir)


# -- whose file it is -------------------------------------------------------------------------------
#
# Border points and customs offices are the reporting agency's own codes, prefixed with its country
# (SPEC: `border_point` "the agency's code, e.g. ZA-BEI"). A file whose codes carry another country's prefix
# was made by another agency, whatever folder it was dropped in.

LOCATION_COLUMNS = ("border_point", "customs_office")
_COUNTRY_CODE = r"^[A-Z]{2}-"
ROWS_SHOWN = 10


@dataclass(frozen=True)
class ForeignCodes:
    """Rows of an extract whose location codes belong to `country`, not to the agency whose folder it is in."""

    column: str
    country: str
    count: int
    rows: tuple[int, ...]  # the first few, counting data rows from 1


def foreign_codes(path: Path, country: str) -> list[ForeignCodes]:
    """Location codes in `path` prefixed with a country other than `country`, per column and country.

    A file that cannot be read as CSV, or has no location column, yields nothing: validation reports those.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    try:
        header = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16)).schema.names
        columns = [c for c in LOCATION_COLUMNS if c in header]
        if not columns:
            return []
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=8 << 20, encoding="utf-8"),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                                 include_columns=columns, strings_can_be_null=False),
        )
        found: dict[tuple[str, str], list] = {}
        offset = 0
        for batch in reader:
            for column in columns:
                values = batch.column(column)
                foreign = pc.and_(pc.match_substring_regex(values, _COUNTRY_CODE),
                                  pc.invert(pc.starts_with(values, f"{country}-")))
                if not pc.any(foreign).as_py():
                    continue
                prefixes = pc.utf8_slice_codeunits(values, 0, 2)
                for prefix in pc.unique(pc.filter(prefixes, foreign)).to_pylist():
                    rows = pc.indices_nonzero(pc.and_(foreign, pc.equal(prefixes, prefix)))
                    seen = found.setdefault((column, prefix), [0, []])
                    seen[0] += len(rows)
                    seen[1] += [offset + r + 1 for r in rows[:ROWS_SHOWN - len(seen[1])].to_pylist()]
            offset += batch.num_rows
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError):
        return []
    return [ForeignCodes(column, prefix, count, tuple(rows))
            for (column, prefix), (count, rows) in sorted(found.items())]
