"""Watching the intake folders for complete new files, and remembering which were announced.

The watch only looks. It never moves, renames or deletes anything in an intake folder (the exchange's
receive stage takes the file), and it remembers what it announced in a small SQLite store under
HOME/state, so a restarted triggerer neither loses nor repeats a file. `IntakeFolderTrigger`
(borderx.airflow.triggers) runs it in Airflow's triggerer.

This module is imported when DAG files are parsed: it keeps its imports light (no GX, pyarrow, boto3).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import logging
import os
import sqlite3
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from borderx.folders import LinkedFolder, connect_store, private_store

log = logging.getLogger(__name__)

STORE_FILE = "announced.sqlite"


def watched_agencies(home: str | os.PathLike) -> list[str]:
    """The agencies that provide a dataset under some agreement, from the agencies' and agreements' files only
    (cheap enough for DAG parsing); a broken file raises ConfigError."""
    from borderx.config.loader import load_sections

    config = load_sections(Path(home), "agencies", "agreements")
    providers = {p for agreement in config["agreements"].values() for p in agreement.providers}
    return sorted(providers & set(config["agencies"]))


class AnnouncedStore:
    """The files already announced, keyed by path, size and mtime, shared by every trigger of one home."""

    def __init__(self, path: Path):
        self.path = private_store(path)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS announced ("
                " path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, announced_at TEXT,"
                " PRIMARY KEY (path, size, mtime_ns))"
            )

    def _connect(self) -> sqlite3.Connection:
        return connect_store(self.path)

    def contains(self, path: str, size: int, mtime_ns: int, *, since: dt.datetime | None = None) -> bool:
        """Whether the file, as it is, was announced (at `since` or later, when given)."""
        with self._connect() as db:
            row = db.execute("SELECT announced_at FROM announced WHERE path = ? AND size = ? AND mtime_ns = ?",
                             (path, size, mtime_ns)).fetchone()
        if row is None:
            return False
        if since is None:
            return True
        try:
            return bool(row[0]) and dt.datetime.fromisoformat(row[0]) >= since
        except ValueError:
            return False

    def add(self, path: str, size: int, mtime_ns: int) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat()
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO announced VALUES (?, ?, ?, ?)", (path, size, mtime_ns, stamp))

    def forget(self, paths: list[str]) -> None:
        """Drops files that left the folder, so one put back later (same bytes, same mtime) counts as new."""
        if not paths:
            return
        with self._connect() as db:
            db.executemany("DELETE FROM announced WHERE path = ?", [(p,) for p in paths])

    def paths_under(self, folders: list[str]) -> list[str]:
        with self._connect() as db:
            rows = db.execute("SELECT DISTINCT path FROM announced").fetchall()
        wanted = set(folders)
        return [p for (p,) in rows if os.path.dirname(p) in wanted]


class RenameWatch:
    """Which files were renamed into the intake folders, from Linux inotify, and not written to since.

    Transfer tools write under a temporary name and rename the file into place when it is whole; a file
    that arrived that way needs no settle wait. A file written in place, or written to after its rename,
    still waits the settle time. Elsewhere than Linux, or when inotify is refused (no watches left),
    nothing counts as renamed and every file waits the settle time, as before.
    """

    MOVED_TO, MODIFY, IGNORED, DONT_FOLLOW = 0x80, 0x02, 0x8000, 0x02000000  # from <sys/inotify.h>
    _EVENT = struct.Struct("iIII")

    def __init__(self):
        self._fd = -1
        self._libc = None
        self._watched: dict[str, int] = {}
        self._folders: dict[int, str] = {}
        self.renamed: set[str] = set()
        if sys.platform.startswith("linux"):
            try:
                self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            except (OSError, AttributeError):
                self._fd = -1
            if self._fd < 0:
                log.info("intake watch: no inotify here; every file waits the settle time")

    def watch(self, folders: list[str]) -> None:
        """Watches these folders (again, if one was removed and made anew); forgets the others."""
        if self._fd < 0:
            return
        for folder in folders:
            # Adding a watch that exists returns the same descriptor, so this is cheap to repeat each poll.
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder),
                                                self.MOVED_TO | self.MODIFY | self.DONT_FOLLOW)
            if wd >= 0:
                self._watched[folder] = wd
                self._folders[wd] = folder
        for folder in set(self._watched) - set(folders):
            self._libc.inotify_rm_watch(self._fd, self._watched.pop(folder))

    def drain(self) -> None:
        """Reads every event waiting: a rename into place marks the file, any write after it unmarks it."""
        while self._fd >= 0:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset + self._EVENT.size <= len(data):
                wd, mask, _cookie, length = self._EVENT.unpack_from(data, offset)
                offset += self._EVENT.size
                name = data[offset:offset + length].rstrip(b"\0")
                offset += length
                folder = self._folders.get(wd)
                if mask & self.IGNORED:
                    self._folders.pop(wd, None)
                    self._watched = {f: w for f, w in self._watched.items() if w != wd}
                if folder is None or not name:
                    continue
                path = os.path.join(folder, os.fsdecode(name))
                if mask & self.MOVED_TO:
                    self.renamed.add(path)
                elif mask & self.MODIFY:
                    self.renamed.discard(path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time when this size and mtime were first seen
    announced: bool = False


class IntakeWatch:
    """The synchronous part of the trigger, one poll at a time, so it can be tested without an event loop.

    A file is complete when its name is not a transfer leftover or hidden, it is a regular file, and
    either it was renamed into place while we watched and not written to since, or nobody wrote to it
    for the settle time and its size and mtime stayed the same over a settle time of our own watching
    (a copy that keeps an old mtime while it grows is not taken for complete).
    """

    def __init__(self, home: str | os.PathLike, agency: str | None = None, settle_seconds: float | None = None,
                 clock=time.time, monotonic=time.monotonic):
        self.home = Path(home)
        self.agency = agency
        self.settle_seconds = settle_seconds
        self.store = AnnouncedStore(self.home / "state" / STORE_FILE)
        self._clock, self._monotonic = clock, monotonic
        self._seen: dict[str, _Seen] = {}
        self._config = None
        self._config_stamp: tuple | None = None
        self._primed = False
        self._refused: set[str] = set()
        self.renames = RenameWatch()

    def _config_fingerprint(self) -> tuple:
        files = sorted((self.home / "config").rglob("*.y*ml"))
        out = []
        for p in files:
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_size, st.st_mtime_ns))
        return tuple(out)

    def folders(self) -> list[tuple[str, str, Path]]:
        """(agency, dataset, folder) for what this watch covers; the config is read again when it changes."""
        from borderx.config.loader import load_config
        from borderx.errors import ConfigError
        from borderx.home import Home
        from borderx.intake.finding import intake_folders

        stamp = self._config_fingerprint()
        if stamp != self._config_stamp:
            self._config_stamp = stamp
            try:
                self._config = load_config(self.home)
            except ConfigError as exc:
                # The exchange refuses to run on a broken config, so announcing would only fail runs.
                log.warning("intake watch: config of %s is broken (%d problems); watching nothing until it is "
                            "fixed", self.home, len(exc.problems))
                self._config = None
        if self._config is None:
            return []
        return intake_folders(self._config, Home(self.home), self.agency)

    def settle(self) -> float:
        if self.settle_seconds is not None:
            return float(self.settle_seconds)
        return float(self._config.settings.intake.settle_seconds) if self._config else 5.0

    def poll(self) -> list[dict]:
        """Payloads of the files complete and not yet announced, in a stable order."""
        folders = self.folders()
        self.renames.watch([str(f) for _, _, f in folders])
        self.renames.drain()
        if not self._primed:
            self._primed = True
            self._forget_vanished([str(f) for _, _, f in folders])
        settle = self.settle()
        now, mono = self._clock(), self._monotonic()
        present: set[str] = set()
        ready: list[dict] = []
        for agency, dataset, folder in folders:
            for name, st in self._candidates(folder):
                path = str(folder / name)
                present.add(path)
                seen = self._seen.get(path)
                if seen is None or (seen.size, seen.mtime_ns) != (st.st_size, st.st_mtime_ns):
                    self._seen[path] = seen = _Seen(st.st_size, st.st_mtime_ns, mono)
                renamed = path in self.renames.renamed
                if not renamed and (now - st.st_mtime < settle or mono - seen.since < settle):
                    continue
                if seen.announced:
                    continue
                if self.store.contains(path, st.st_size, st.st_mtime_ns):
                    seen.announced = True
                    continue
                ready.append({"path": path, "agency": agency, "dataset": dataset, "name": name,
                              "size": st.st_size, "mtime": st.st_mtime, "mtime_ns": st.st_mtime_ns})
        gone = [p for p in self._seen if p not in present]
        for p in gone:
            del self._seen[p]
        self.renames.renamed &= present
        self.store.forget(gone)
        return ready

    def _candidates(self, folder: Path) -> list[tuple[str, os.stat_result]]:
        from borderx.intake.finding import candidate_files

        try:
            found = list(candidate_files(folder, self.home))
        except LinkedFolder as exc:
            # Refused and recorded by the exchange's scan; said here once, not on every poll.
            if str(folder) not in self._refused:
                self._refused.add(str(folder))
                log.warning("intake watch: %s; not watched", exc)
            return []
        self._refused.discard(str(folder))
        return found

    def announced(self, payload: dict) -> None:
        self.store.add(payload["path"], payload["size"], payload["mtime_ns"])
        seen = self._seen.get(payload["path"])
        if seen is not None and (seen.size, seen.mtime_ns) == (payload["size"], payload["mtime_ns"]):
            seen.announced = True

    def _forget_vanished(self, folders: list[str]) -> None:
        self.store.forget([p for p in self.store.paths_under(folders) if not os.path.lexists(p)])

    def close(self) -> None:
        self.renames.close()
