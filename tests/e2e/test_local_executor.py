"""The exchange under a real scheduler, triggerer, dag-processor and api-server on SQLite with the LocalExecutor:
files dropped into intake are published exactly once, each by the run its own asset event started."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

from airflow_procs import (UPLOAD_POOL, airflow, drop, free_port, port_open, serving_env, signed, start_components,
                           stop, wait_for)

E2E_DEADLINE = 240


def _query(db: Path, sql: str, *args) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []


def test_end_to_end_files_dropped_are_published_exactly_once(airflow_env, demo_home, s3_endpoint, bucket, s3,
                                                            tmp_path):
    # Agencies drop the good extracts once Airflow is up; the bad ones and the .part stay out of this.
    stash = tmp_path / "stash"
    good = []
    for p in sorted(demo_home.intake.rglob("*.csv")):
        if any(tag in p.name for tag in ("resent", "_v2", "_draft")):
            p.unlink()
            continue
        kept = stash / p.relative_to(demo_home.intake)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(p, kept)
        good.append(kept)
    assert len(good) == 3
    sources = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in good}

    port = free_port()
    db = Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db"
    env = {
        **serving_env(airflow_env, port, executor="LocalExecutor"),
        "BORDERX_HOME": str(demo_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint, "BORDERX_BUCKET": bucket,
        "BORDERX_TRIGGER_POLL_SECONDS": "1",
        "AIRFLOW__CORE__PARALLELISM": "8",
    }
    airflow(env, "pools", "set", *UPLOAD_POOL)

    logs = tmp_path / "logs"
    procs: list[subprocess.Popen] = []
    started = time.monotonic()
    deadline = started + E2E_DEADLINE
    try:
        procs += start_components(env, port, logs, tmp_path)
        wait_for("the exchange DAG to be parsed",
                 lambda: _query(db, "SELECT 1 FROM dag WHERE dag_id = 'borderx_exchange'"), deadline, procs, logs)
        airflow(env, "dags", "unpause", "borderx_exchange")
        # Watchers are attached at the first parse after the unpause, then the triggerer takes them up.
        wait_for("the triggerer to run one intake trigger per agency", lambda: len(_query(
            db, "SELECT id FROM trigger WHERE classpath = 'borderx.airflow.triggers.IntakeFolderTrigger' "
                "AND triggerer_id IS NOT NULL")) == 3, deadline, procs, logs)
        wait_for("the api-server", lambda: port_open(port), deadline, procs, logs)
        ready = time.monotonic()

        dropped_at = time.monotonic()
        for p in good:
            drop(p, demo_home.intake / p.relative_to(stash))

        published_at: dict[str, float] = {}

        def all_published():
            for sha, name in sources.items():
                if name not in published_at and len(signed(s3, bucket).get(sha, [])) == 2:
                    published_at[name] = time.monotonic() - dropped_at
            return len(published_at) == len(sources)

        wait_for("all three extracts to be published", all_published, deadline, procs, logs, step=1)
        wait_for("the runs to finish", lambda: _query(db, "SELECT state FROM dag_run WHERE dag_id = 'borderx_exchange'")
                 and all(s == "success" for (s,) in _query(db, "SELECT state FROM dag_run WHERE dag_id = "
                                                               "'borderx_exchange'")), deadline, procs, logs)
        runs = _query(db, "SELECT run_type, state FROM dag_run WHERE dag_id = 'borderx_exchange'")
    finally:
        stop(procs)

    print(f"\nend to end: ready {ready - started:.0f} s after start; {len(runs)} run(s); drop to published "
          + ", ".join(f"{name} {secs:.1f} s" for name, secs in sorted(published_at.items())))
    assert runs and all(t == "asset_triggered" for t, _ in runs), runs
    by_source = signed(s3, bucket)
    assert {sha: len(keys) for sha, keys in by_source.items()} == {sha: 2 for sha in sources}
    trail = [json.loads(line) for line in (demo_home.audit / "trail.jsonl").read_text().splitlines()]
    published = [e["details"]["source_sha256"] for e in trail if e["type"] == "published"]
    assert sorted(published) == sorted(sha for sha in sources for _ in range(2)), "each delivery published once"
    assert not [e for e in trail if e["type"] in ("quarantined", "already-published")]
    assert sorted(p.name for p in demo_home.archive.rglob("*.csv")) == sorted(sources.values())
    assert not list(demo_home.intake.rglob("*.csv")) and not list(demo_home.quarantine.rglob("*.csv"))
    assert list(demo_home.intake.rglob("*.part")), "the half-transferred sample is left alone"
