"""Finding complete extracts in the intake folders, hashing them, and remembering what was seen."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from borderx.config.models import DeploymentConfig
from borderx.errors import IntakeError
from borderx.home import Home

# Names that file transfer tools use while a file is still arriving.
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Extract:
        return cls(**data)


def is_candidate_name(name: str) -> bool:
    return not (name.startswith(".") or name.endswith(PARTIAL_SUFFIXES) or name.endswith(REPORT_SUFFIXES))


def is_complete(path: Path, settle_seconds: float, *, now: float | None = None) -> bool:
    """A regular file that nobody has written to for the settle time counts as complete."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
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
            if not path.is_file() or path.is_symlink():
                raise IntakeError(f"{path}: not a regular file")
            return IntakeFile(agency_id, dataset_id, str(path), path.name, path.lstat().st_size)
    raise IntakeError(f"{path}: not in the intake folder of any agency and dataset that an agreement covers")


def provided_datasets(config: DeploymentConfig) -> set[tuple[str, str]]:
    return {(p, d) for a in config.agreements.values() for p in a.providers for d in a.datasets if p in config.agencies}


def _files_in(folder: Path) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            yield Path(entry.path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class Ledger:
    """What the hub has taken in, keyed by content hash, so no extract is processed twice."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
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
