"""The ledger: what the hub has taken in, by content hash, so no extract is processed twice."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import time
from pathlib import Path

from borderx.folders import connect_store, private_store
from borderx.intake.entries import Extract

log = logging.getLogger(__name__)


class Ledger:
    """What the hub has taken in, keyed by content hash, so no extract is processed twice."""

    def __init__(self, path: Path):
        self.path = private_store(path)
        try:
            self._create()
        except sqlite3.DatabaseError:
            # A damaged ledger is kept for inspection and replaced; the bucket, checked before every
            # upload, still keeps a re-run from publishing anything twice.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            os.replace(path, aside)
            log.warning("ledger %s is damaged; kept as %s and started afresh", path, aside.name)
            private_store(path)
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS extracts ("
                " sha256 TEXT PRIMARY KEY, agency TEXT, dataset TEXT, name TEXT,"
                " received_at TEXT, outcome TEXT, updated_at TEXT)"
            )

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
