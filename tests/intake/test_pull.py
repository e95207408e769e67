"""Pull sources: new extracts at an agency's export folder or S3 prefix are copied into intake once each, whole,
and the source is never touched; a bad pull source is a config problem; the borderx_pull DAG runs them."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from airflow_procs import DAGS, run_python
from borderx.audit.trail import AuditTrail
from borderx.cli import main
from borderx.config.loader import check_config, load_config
from borderx.intake.sources.pull import copy_from_folder, due_agencies, pull, pull_schedules, pulled_store, waiting_in_folder

FLOWS = b"period,border_point,direction\n2026-11-01,ZA-BEI,ENTRY\n"
OLD = time.time() - 3600


def set_pull(home, agency: str, pull_source: dict) -> Path:
    path = home.config / "agencies" / f"{agency}.yaml"
    data = yaml.safe_load(path.read_text())
    data["pull"] = pull_source
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns, p.read_bytes() if p.is_file() else b"")
            for p in folder.rglob("*")}


def write_old(path: Path, data: bytes) -> Path:
    """A file finished an hour ago: past any settle time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (OLD, OLD))
    return path


@pytest.fixture
def exports(demo_home, tmp_path):
    """ZA-DHA's export folder, laid out as DATASET/FILE, with leftovers a pull must not take."""
    root = tmp_path / "exports" / "ZA-DHA"
    write_old(root / "traveller_flows" / "dha_2026-11.csv", FLOWS)
    write_old(root / "traveller_flows" / "dha_2026-12.csv", FLOWS + b"2026-12-01,ZA-BEI,EXIT\n")
    write_old(root / "traveller_flows" / "upload.csv.part", b"half")
    write_old(root / "traveller_flows" / ".hidden.csv", FLOWS)
    write_old(root / "goods_crossings" / "not-provided-by-dha.csv", b"x\n")
    (root / "traveller_flows" / "fresh.csv").write_bytes(FLOWS)  # still being written, as far as anyone knows
    secret = tmp_path / "secret.csv"
    write_old(secret, b"not for the exchange\n")
    (root / "traveller_flows" / "link.csv").symlink_to(secret)
    set_pull(demo_home, "ZA-DHA", {"folder": str(root), "schedule": "*/10 * * * *"})
    return root


def test_a_folder_source_is_copied_once_and_left_as_it_was(demo_home, exports):
    config = load_config(demo_home.root)
    intake = demo_home.intake / "ZA-DHA" / "traveller_flows"
    before_intake = {p.name for p in intake.iterdir()}
    before = snapshot(exports)

    first = pull(config, demo_home, "ZA-DHA")
    assert first.to_dict()["copied"] == ["dha_2026-11.csv", "dha_2026-12.csv"]
    assert {p.name for p in intake.iterdir()} - before_intake == {"dha_2026-11.csv", "dha_2026-12.csv"}
    assert (intake / "dha_2026-11.csv").read_bytes() == FLOWS
    assert snapshot(exports) == before

    # Again, and again once the exchange took the copies out of intake: nothing is copied twice.
    assert pull(config, demo_home, "ZA-DHA").outcomes == []
    (intake / "dha_2026-11.csv").unlink()
    assert pull(config, demo_home, "ZA-DHA").outcomes == []
    assert not (intake / "dha_2026-11.csv").exists()

    # A new version of a file is a new extract; a file that settled since is taken now.
    write_old(exports / "traveller_flows" / "dha_2026-11.csv", FLOWS + b"2026-11-02,ZA-BEI,ENTRY\n")
    os.utime(exports / "traveller_flows" / "fresh.csv", (OLD, OLD))
    assert sorted(pull(config, demo_home, "ZA-DHA").to_dict()["copied"]) == ["dha_2026-11.csv", "fresh.csv"]
    assert not [p for p in intake.iterdir() if p.name.startswith(".")]

    # Each copy, and only a copy, is in the audit trail with where it came from; the chain still holds.
    trail = AuditTrail(demo_home.audit)
    copies = [e["details"] for e in trail.events() if e["type"] == "copied-in"]
    assert sorted(c["source_name"] for c in copies) == ["dha_2026-11.csv", "dha_2026-11.csv", "dha_2026-12.csv",
                                                        "fresh.csv"]
    assert all(c["provider"] == "ZA-DHA" and c["source_uri"].startswith(str(exports)) for c in copies)
    assert len({(c["source_uri"], c["source_version"], c["size"]) for c in copies}) == 4
    assert trail.verify() == (len(list(trail.events())), None)


def test_a_file_that_changes_while_copied_is_left_for_the_next_round(demo_home, exports):
    store = pulled_store(demo_home)
    [obj, _] = waiting_in_folder(demo_home, "ZA-DHA", ["traveller_flows"], str(exports), 5, store)
    with open(obj.uri, "ab") as fh:
        fh.write(b"2026-11-30,ZA-BEI,EXIT\n")
    intake = demo_home.intake / "ZA-DHA" / "traveller_flows"
    assert copy_from_folder(demo_home, intake, obj, store).status == "changed"
    assert not (intake / obj.name).exists() and not store.contains(*obj.identity)


def test_an_s3_source_is_copied_once_and_left_as_it_was(demo_home, s3, s3_endpoint, bucket):
    s3.create_bucket(Bucket=bucket)
    for key, body in {"exports/borderx/goods_crossings/sars_2026-11.csv": b"declaration_ref\nT1\n",
                      "exports/borderx/goods_crossings/sars.csv.tmp": b"half",
                      "exports/borderx/goods_crossings/old/sars_2025.csv": b"declaration_ref\nT0\n",
                      "exports/other/goods_crossings/x.csv": b"declaration_ref\nT9\n"}.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    set_pull(demo_home, "ZA-SARS", {"s3": f"s3://{bucket}/exports/borderx"})
    config = load_config(demo_home.root)
    intake = demo_home.intake / "ZA-SARS" / "goods_crossings"
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}

    assert pull(config, demo_home, "ZA-SARS", s3).to_dict()["copied"] == ["sars_2026-11.csv"]
    assert (intake / "sars_2026-11.csv").read_bytes() == b"declaration_ref\nT1\n"
    assert pull(config, demo_home, "ZA-SARS", s3).outcomes == []
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == before


def test_bad_pull_sources_are_reported_by_check(demo_home, tmp_path, capsys):
    set_pull(demo_home, "ZA-DHA", {"folder": str(tmp_path / "nowhere")})
    set_pull(demo_home, "BW-DIC", {"folder": "exports", "s3": "s3://bucket/x"})
    set_pull(demo_home, "ZA-SARS", {"s3": "s3://Not_A_Bucket/x", "schedule": "every hour"})
    set_pull(demo_home, "NA-MHAISS", {"folder": "intake/NA-MHAISS"})
    set_pull(demo_home, "BW-BURS", {"folder": str(tmp_path), "shedule": "@daily"})
    problems = {str(p) for p in check_config(demo_home.root)}
    assert f"config/agencies/ZA-DHA.yaml: pull.folder: {tmp_path / 'nowhere'} is not a folder" in problems
    assert "config/agencies/BW-DIC.yaml: pull: Value error, give exactly one of folder, s3, sftp" in problems
    assert any(p.startswith("config/agencies/ZA-SARS.yaml: pull.s3: String should match pattern") for p in problems)
    assert ("config/agencies/ZA-SARS.yaml: pull.schedule: Value error, 'every hour' is neither a cron expression "
            "nor a preset such as @hourly") in problems
    assert (f"config/agencies/NA-MHAISS.yaml: pull.folder: {demo_home.root / 'intake' / 'NA-MHAISS'} overlaps the "
            "hub's own intake/ folder") in problems
    assert "config/agencies/BW-BURS.yaml: pull.shedule: Extra inputs are not permitted" in problems
    assert main(["check", "--home", str(demo_home.root)]) == 1
    assert "ZA-DHA.yaml: pull.folder:" in capsys.readouterr().out


def test_schedules_say_which_agencies_are_due():
    schedules = {"ZA-DHA": "@hourly", "ZA-SARS": "*/30 * * * *", "BW-DIC": "0 6 * * 1", "NA-MHAISS": "@quarterly"}
    at = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.timezone.utc)  # a Monday
    assert due_agencies(schedules, at) == ["BW-DIC", "ZA-DHA", "ZA-SARS"]
    assert due_agencies(schedules, at.replace(minute=30)) == ["ZA-SARS"]
    assert due_agencies(schedules, dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)) == [
        "NA-MHAISS", "ZA-DHA", "ZA-SARS"]


def test_dag_test_of_the_pull_dag(airflow_env, demo_home, exports):
    (exports / "traveller_flows" / "fresh.csv").unlink()  # the demo's settle time is 2 s: it would count
    assert pull_schedules(demo_home.root) == {"ZA-DHA": "*/10 * * * *"}
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root)}
    done = run_python(
        f"""
        import importlib.util, json
        spec = importlib.util.spec_from_file_location("pull_dag", {str(DAGS / "borderx_pull.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.pull_dag
        states = [str(dag.test().state), str(dag.test(run_conf={{"agencies": ["ZA-DHA"]}}).state),
                  str(dag.test(run_conf={{"agencies": ["BW-DIC"]}}).state)]
        print(json.dumps({{"states": states, "timetable": repr(dag.timetable)}}))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # BW-DIC has no pull source: asking for it fails the run rather than doing nothing quietly.
    assert [s.rsplit(".", 1)[-1] for s in result["states"]] == ["success", "success", "failed"], done.stderr[-5000:]
    assert "*/10 * * * *" in result["timetable"]
    intake = demo_home.intake / "ZA-DHA" / "traveller_flows"
    assert (intake / "dha_2026-11.csv").read_bytes() == FLOWS and (intake / "dha_2026-12.csv").exists()
    assert not (intake / "link.csv").exists() and not (intake / "upload.csv.part").exists()
    import sqlite3

    with sqlite3.connect(demo_home.state / "pulled.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM announced").fetchone()[0] == 2
