"""The ledger alone: what one connection, thread or process settles, every other sees at once."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from borderx.intake.entries import Extract
from borderx.intake.ledger import Ledger


def _extract(n: int) -> Extract:
    return Extract("ZA-DHA", "traveller_flows", f"/nowhere/f{n}.csv", f"f{n}.csv", 9,
                   hashlib.sha256(str(n).encode()).hexdigest(), "2026-12-07T10:00:00Z", None)


def _outcome(path, n: int) -> str | None:
    # Read with SQLite alone, as another process would: a settle is in the file when it returns.
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT outcome FROM extracts WHERE sha256 = ?", (_extract(n).sha256,)).fetchone()
    return row[0] if row else None


def test_claims_and_settles_from_threads_and_processes_are_each_seen_at_once(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)

    def claim_and_settle(n: int) -> None:
        assert ledger.claim(_extract(n)) is None
        assert _outcome(path, n) == "received"
        ledger.settle(_extract(n).sha256, "published")
        assert _outcome(path, n) == "published"

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(claim_and_settle, range(40)))
    other = Ledger(path)
    assert other.claim(_extract(7))["outcome"] == "published", "another ledger on the file sees it"
    other.settle(_extract(7).sha256, "quarantined")
    assert ledger.get(_extract(7).sha256)["outcome"] == "quarantined"

    child = os.fork()
    if child == 0:  # a forked child claims with a connection of its own, and leaves the parent's alone
        try:
            code = 0 if ledger.claim(_extract(100)) is None and ledger.get(_extract(3).sha256) else 1
        except BaseException:
            code = 2
        os._exit(code)
    assert os.waitpid(child, 0)[1] == 0
    assert ledger.claim(_extract(100))["outcome"] == "received"
    ledger.settle(_extract(100).sha256, "published")
    assert _outcome(path, 100) == "published"
