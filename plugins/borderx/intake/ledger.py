"""The ledger: what the hub has taken in, by content hash, so no extract is processed twice."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

from borderx.folders import connect_store, private_store
from borderx.intake.entries import Extract

log = logging.getLogger(__name__)


class Ledger:
    """What the hub has taken in, keyed by content hash, so no extract is processed twice."""

    def __init__(self, path: Path, *, hub_has_past: Callable[[], bool] = lambda: False):
        """`hub_has_past`: whether the hub took in files before (its audit trail says so), asked only when the
        ledger is made: then this one replaces a ledger that was lost, and content it held may come again."""
        new = not path.exists()
        self.path = private_store(path)
        try:
            self._create()
        except sqlite3.DatabaseError:
            # A damaged ledger is kept for inspection and replaced; the bucket, asked before every upload
            # from then on (started_afresh), still keeps a re-run from publishing anything twice.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.warning("ledger %s is damaged; kept as %s and started afresh", path, aside.name)
            private_store(path)
            self._create()
            new, hub_has_past = True, lambda: True
        # Only a ledger that knows everything the hub took in can spare the bucket the question whether a first
        # claim was published before; one made after the hub's start says so for good.
        with self._connect() as db:
            if new and hub_has_past():
                db.execute("INSERT INTO afresh VALUES (?)", (dt.datetime.now(dt.timezone.utc).isoformat(),))
            self.started_afresh = db.execute("SELECT 1 FROM afresh LIMIT 1").fetchone() is not None

    def _create(self) -> None:
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS extracts ("
                " sha256 TEXT PRIMARY KEY, agency TEXT, dataset TEXT, name TEXT,"
                " received_at TEXT, outcome TEXT, updated_at TEXT)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS afresh (since TEXT)")

    def _connect(self) -> sqlite3.Connection:
        return connect_store(self.path)

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
