"""The exchange DAG's one-task pass over a burst of small files: validated together, each delivered once to
every recipient, a bad one among them quarantined alone with its own report."""

from __future__ import annotations

import datetime as dt
import json
import os

from borderx.airflow.tasks import discover, exchange_here
from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, traveller_flows_rows, write_csv


def test_a_burst_of_small_files_in_one_task_quarantines_only_the_bad_one(runtime, s3):
    for path in runtime.home.intake.rglob("*.csv"):
        path.unlink()
    folder = runtime.home.intake / "ZA-DHA" / "traveller_flows"
    for day in range(1, 11):
        rows = list(traveller_flows_rows(["ZA-BEI"], dt.date(2026, 3, day), 1, seed=day))
        if day == 6:
            rows[2][TRAVELLER_FLOWS_COLUMNS.index("travellers")] = "-3"
        path = write_csv(folder / f"burst-{day:02d}.csv", TRAVELLER_FLOWS_COLUMNS, rows)
        os.utime(path, (path.stat().st_mtime - 60,) * 2)
    actor = {"dag_id": "borderx_exchange", "run_id": "asset_triggered__burst", "task_id": "intake", "map_index": -1}

    assert exchange_here(runtime, discover(runtime, settle_seconds=0), actor) == []

    quarantined = sorted(p.name for p in runtime.home.quarantine.rglob("burst-*.csv"))
    assert quarantined == ["burst-06.csv"]
    report = json.loads(next(runtime.home.quarantine.rglob("burst-06.csv.report.json")).read_text())
    assert [r["column"] for r in report["reasons"]] == ["travellers"]
    assert len(list(runtime.home.archive.rglob("burst-*.csv"))) == 9
    sigs = [o["Key"] for o in s3.list_objects_v2(Bucket=runtime.target.bucket, Prefix="deliveries/")["Contents"]
            if o["Key"].endswith("manifest.json.sig")]
    assert len(sigs) == 9 * 2
    manifest = json.loads(s3.get_object(Bucket=runtime.target.bucket, Key=sigs[0].removesuffix(".sig"))["Body"].read())
    assert manifest["airflow"]["run_id"] == "asset_triggered__burst"
    events = list(runtime.trail.events())
    assert sum(e["type"] == "validated" for e in events) == 10
    assert sum(e["type"] == "published" for e in events) == 18
    assert runtime.trail.verify() == (len(events), None)
