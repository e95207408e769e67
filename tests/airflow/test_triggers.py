"""The intake trigger announces each complete file once and touches nothing; runs hand files off safely."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from borderx.config.loader import load_config
from borderx.airflow.tasks import announced_waiting, discover, receive, validate
from borderx.exchange import Runtime
from borderx.intake import INFLIGHT_DIR, scan
from borderx.airflow.triggers import IntakeFolderTrigger
from borderx.intake.watch import IntakeWatch, watched_agencies


def collect(trigger: IntakeFolderTrigger, seconds: float) -> list[dict]:
    """Runs the trigger as the triggerer would, for a bounded time, and returns the payloads it fired."""

    async def main():
        events: list[dict] = []

        async def consume():
            async for event in trigger.run():
                events.append(event.payload)

        try:
            await asyncio.wait_for(consume(), seconds)
        except asyncio.TimeoutError:
            pass
        return events

    return asyncio.run(main())


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def trigger_for(home, **kw) -> IntakeFolderTrigger:
    return IntakeFolderTrigger(home=str(home.root), poll_interval=kw.pop("poll_interval", 0.1),
                               settle_seconds=kw.pop("settle_seconds", 0.5), **kw)


def test_one_event_per_complete_file_and_nothing_touched(demo_home):
    folder = demo_home.intake / "ZA-DHA" / "traveller_flows"
    (folder / ".hidden.csv").write_text("period\n")
    (folder / "upload.csv.tmp").write_text("period\n")
    growing = folder / "growing.csv"
    growing.write_text("period\n")
    complete = {f.path for f in scan(load_config(demo_home.root), demo_home, settle_seconds=5)}
    assert len(complete) == 6
    before = snapshot(demo_home.intake)

    stop = threading.Event()

    def keep_writing():
        while not stop.is_set():
            with open(growing, "a") as fh:
                fh.write("2026-01-01\n")
            time.sleep(0.05)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        events = collect(trigger_for(demo_home), 2.5)
    finally:
        stop.set()
        writer.join()

    assert sorted(e["path"] for e in events) == sorted(complete)
    for e in events:
        assert set(e) == {"path", "agency", "dataset", "name", "size", "mtime"}
        assert Path(e["path"]).name == e["name"] and Path(e["path"]).stat().st_size == e["size"]
        assert (e["agency"], e["dataset"]) in {("ZA-DHA", "traveller_flows"), ("BW-DIC", "traveller_flows"),
                                               ("ZA-SARS", "goods_crossings")}
    after = snapshot(demo_home.intake)
    assert {p: v for p, v in after.items() if p != str(growing)} == {p: v for p, v in before.items()
                                                                     if p != str(growing)}
    assert not (folder / INFLIGHT_DIR).exists()


def test_a_restarted_trigger_does_not_repeat_but_sees_new_files(demo_home):
    first = collect(trigger_for(demo_home), 1.5)
    assert len(first) == 6

    assert collect(trigger_for(demo_home), 1.5) == []

    fresh = demo_home.intake / "ZA-SARS" / "goods_crossings" / "late.csv"
    fresh.write_text("declaration_ref\n")
    again = collect(trigger_for(demo_home), 1.5)
    assert [e["path"] for e in again] == [str(fresh)]

    # A file taken away and later put back, unchanged, is news again.
    kept = demo_home.root / "kept-aside.csv"
    os.replace(fresh, kept)
    assert collect(trigger_for(demo_home), 1.0) == []
    os.replace(kept, fresh)
    assert [e["path"] for e in collect(trigger_for(demo_home), 1.5)] == [str(fresh)]


def test_one_trigger_per_agency_sees_only_that_agency(demo_home):
    events = collect(trigger_for(demo_home, agency="ZA-SARS"), 1.5)
    assert len(events) == 2 and {e["agency"] for e in events} == {"ZA-SARS"}
    # The other agencies' files were not marked as announced by this one.
    assert len(collect(trigger_for(demo_home, agency="ZA-DHA"), 1.5)) == 2


def test_a_copy_that_keeps_an_old_mtime_while_growing_waits_until_its_size_holds(demo_home):
    clock = [1000.0]
    watch = IntakeWatch(demo_home.root, agency="BW-DIC", settle_seconds=5, monotonic=lambda: clock[0])
    target = demo_home.intake / "BW-DIC" / "traveller_flows" / "copied.csv"
    old = time.time() - 3600
    ready = lambda: [p["name"] for p in watch.poll() if p["name"] == "copied.csv"]  # noqa: E731
    for size in (10, 20, 30):
        target.write_text("x" * size)
        os.utime(target, (old, old))  # as `cp -p` leaves it
        clock[0] += 3
        assert ready() == []
    clock[0] += 5
    assert ready() == ["copied.csv"]


def test_a_file_renamed_into_place_is_announced_without_the_settle_wait(demo_home):
    clock = [0.0]  # seconds the test lets pass, on both clocks
    watch = IntakeWatch(demo_home.root, agency="ZA-DHA", settle_seconds=60, clock=lambda: time.time() + clock[0],
                        monotonic=lambda: time.monotonic() + clock[0])
    folder = demo_home.intake / "ZA-DHA" / "traveller_flows"
    ready = lambda: sorted(p["name"] for p in watch.poll() if p["name"] in ("renamed.csv", "written.csv"))  # noqa: E731
    assert ready() == []  # the files already there wait out the settle time as before

    partial = folder / "renamed.csv.part"
    partial.write_text("period\n2026-01-01\n")
    assert ready() == []
    os.replace(partial, folder / "renamed.csv")
    (folder / "written.csv").write_text("period\n2026-01-01\n")
    assert ready() == ["renamed.csv"]
    watch.announced(_payload(folder / "renamed.csv"))
    assert ready() == []

    clock[0] += 61
    assert ready() == ["written.csv"]
    watch.close()


def test_a_file_written_to_after_its_rename_waits_the_settle_time(demo_home):
    clock = [0.0]
    watch = IntakeWatch(demo_home.root, agency="ZA-DHA", settle_seconds=60, clock=lambda: time.time() + clock[0],
                        monotonic=lambda: time.monotonic() + clock[0])
    folder = demo_home.intake / "ZA-DHA" / "traveller_flows"
    ready = lambda: [p["name"] for p in watch.poll() if p["name"] == "late.csv"]  # noqa: E731
    watch.poll()
    staged = demo_home.root / "staged.csv"  # a move from elsewhere on the same filesystem is a rename too
    staged.write_text("period\n")
    os.replace(staged, folder / "late.csv")
    with open(folder / "late.csv", "a") as fh:
        fh.write("2026-01-01\n")
    assert ready() == []
    clock[0] += 61
    assert ready() == ["late.csv"]
    watch.close()


def _payload(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def test_a_trigger_announces_a_renamed_file_without_waiting_out_the_settle_time(demo_home):
    folder = demo_home.intake / "BW-DIC" / "traveller_flows"
    trigger = IntakeFolderTrigger(home=str(demo_home.root), agency="BW-DIC", poll_interval=0.1, settle_seconds=30)

    async def main():
        events, landed = [], []

        async def consume():
            async for event in trigger.run():
                events.append((time.monotonic(), event.payload))
                if event.payload["name"] == "fresh.csv":
                    return

        async def drop():
            await asyncio.sleep(0.5)
            partial = folder / "fresh.csv.part"
            partial.write_text("period\n2026-02-02\n")
            os.replace(partial, folder / "fresh.csv")
            landed.append(time.monotonic())

        await asyncio.wait_for(asyncio.gather(consume(), drop()), 10)
        return events, landed[0]

    # Announced within wait_for's 10 s, so without the 30 s settle time the files already there still wait.
    events, _ = asyncio.run(main())
    assert [e["name"] for _, e in events] == ["fresh.csv"], "the files already there still wait 30 s"


def test_serializes_for_the_triggerer_and_is_a_valid_asset_watcher(demo_home):
    from airflow.sdk import Asset, AssetWatcher
    from airflow.triggers.base import BaseEventTrigger
    from airflow.sdk.module_loading import import_string

    trigger = IntakeFolderTrigger(home=str(demo_home.root), agency="ZA-DHA", poll_interval=3, settle_seconds=1)
    classpath, kwargs = trigger.serialize()
    assert kwargs == {"home": str(demo_home.root), "agency": "ZA-DHA", "poll_interval": 3.0, "settle_seconds": 1.0}
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert BaseEventTrigger.hash(classpath, kwargs) == BaseEventTrigger.hash(*again.serialize())
    Asset(name="x", uri="x-borderx-intake://ZA-DHA", watchers=[AssetWatcher(name="x", trigger=trigger)])
    assert watched_agencies(demo_home.root) == ["BW-DIC", "ZA-DHA", "ZA-SARS"]


def test_event_runs_also_take_files_announced_but_left_out_of_their_events(runtime):
    # Airflow leaves events newer than a run's queue entry out of that run; the run still takes their files.
    announced = collect(trigger_for(runtime.home), 1.5)
    assert len(announced) == 6
    assert sorted(f["path"] for f in announced_waiting(runtime)) == sorted(e["path"] for e in announced)

    unannounced = runtime.home.intake / "ZA-SARS" / "goods_crossings" / "after.csv"
    unannounced.write_text("declaration_ref\n")
    changed = Path(announced[0]["path"])
    with open(changed, "a") as fh:
        fh.write("\n")  # written to since it was announced: the trigger has yet to see it whole
    taken = Path(announced[1]["path"])
    assert receive(runtime, next(f for f in announced_waiting(runtime) if f["path"] == str(taken)), _run(1))[
        "status"] == "received"

    waiting = {f["path"] for f in announced_waiting(runtime)}
    assert waiting == {e["path"] for e in announced} - {str(changed), str(taken)}


# -- the hand-off: whichever run takes a file first has it, the other sees it gone ----------------------


def _run(n: int) -> dict:
    return {"dag_id": "borderx_exchange", "run_id": f"run-{n}", "task_id": "receive", "map_index": 0}


def test_two_runs_reaching_for_one_file_process_it_once(runtime):
    files = discover(runtime, settle_seconds=0)
    one = next(f for f in files if f["name"].startswith("za-dha_flows") and "resent" not in f["name"])
    first = receive(runtime, one, _run(1))
    second = receive(runtime, one, _run(2))
    assert first["status"] == "received"
    assert second == {"status": "gone", "name": one["name"]}
    assert not Path(one["path"]).exists()
    held = Path(first["extract"]["path"])
    assert held.exists() and INFLIGHT_DIR in held.parts and held.name == one["name"]
    assert not list(runtime.home.quarantine.rglob("*.csv"))
    # The sweep does not see a file a live run holds.
    assert one["name"] not in {f["name"] for f in discover(runtime, settle_seconds=0, run_is_live=lambda d, r: True)}
    assert validate(runtime, first, _run(1))["status"] == "accepted"


def test_a_retried_receive_resumes_what_its_first_attempt_took(runtime):
    one = discover(runtime, settle_seconds=0)[0]
    first = receive(runtime, one, _run(1))
    again = receive(runtime, one, _run(1))
    assert again["status"] == "received"
    assert again["extract"]["path"] == first["extract"]["path"]
    assert again["extract"]["received_at"] == first["extract"]["received_at"]


def test_the_sweep_adopts_files_of_runs_that_are_over_and_leaves_live_ones(runtime):
    files = [f for f in discover(runtime, settle_seconds=0) if f["dataset"] == "goods_crossings"]
    taken = [receive(runtime, f, _run(i)) for i, f in enumerate(files)]
    assert {t["status"] for t in taken} == {"received"}
    assert discover(runtime, settle_seconds=0, run_is_live=lambda d, r: True) == [
        f for f in discover(runtime, settle_seconds=0) if f["dataset"] != "goods_crossings"]

    over = {"run-0"}
    adopted = [f for f in discover(runtime, settle_seconds=0, run_is_live=lambda d, r: r not in over)
               if f["dataset"] == "goods_crossings"]
    assert [f["path"] for f in adopted] == [taken[0]["extract"]["path"]]
    resumed = receive(runtime, adopted[0], _run(9))
    assert resumed["status"] == "received"
    assert resumed["extract"]["sha256"] == taken[0]["extract"]["sha256"]
    assert resumed["extract"]["received_at"] == taken[0]["extract"]["received_at"]
    # The run that was over, should it be cleared and try again, finds the file gone, not doubled.
    assert receive(runtime, adopted[0], _run(0))["status"] == "gone"


def test_a_retried_sweep_takes_up_what_its_first_attempt_took_and_no_other_live_runs_files(runtime):
    from types import SimpleNamespace

    from borderx.airflow.tasks import _run_is_live

    sweep = {"dag_id": "borderx_sweep", "run_id": "scheduled__1", "task_id": "discover", "map_index": -1}
    files = [f for f in discover(runtime, settle_seconds=0) if f["dataset"] == "goods_crossings"]
    by_sweep = receive(runtime, files[0], sweep)
    by_live_run = receive(runtime, files[1], _run(1))
    assert {by_sweep["status"], by_live_run["status"]} == {"received"}
    live = {("borderx_exchange", "run-1")}

    def ti(try_number: int) -> SimpleNamespace:
        return SimpleNamespace(dag_id="borderx_sweep", run_id="scheduled__1", try_number=try_number,
                               get_dr_count=lambda dag_id, run_ids, states: int((dag_id, run_ids[0]) in live))

    def held(attempt: int) -> list[str]:
        return [f["path"] for f in discover(runtime, settle_seconds=0,
                                            run_is_live=lambda d, r: _run_is_live(ti(attempt), d, r))
                if f["dataset"] == "goods_crossings"]

    assert by_sweep["extract"]["path"] not in held(1), "the first attempt is the one running"
    assert by_sweep["extract"]["path"] in held(2), "a retry takes up what the attempt before it took"
    assert by_live_run["extract"]["path"] not in held(2), "a file of another run that is live is left to it"
    resumed = receive(runtime, next(f for f in discover(runtime, settle_seconds=0, run_is_live=lambda d, r: _run_is_live(
        ti(2), d, r)) if f["path"] == by_sweep["extract"]["path"]), {**sweep})
    assert resumed["status"] == "received"
    assert resumed["extract"]["sha256"] == by_sweep["extract"]["sha256"]


def test_a_sweep_leaves_files_just_announced_to_the_event_runs_and_takes_the_rest(runtime):
    import datetime as dt
    import sqlite3

    from borderx.airflow.tasks import SWEEP_LEAVES_ANNOUNCED_SECONDS
    from borderx.intake.watch import STORE_FILE, AnnouncedStore

    just, long_ago, never = discover(runtime, settle_seconds=0)[:3]
    store = AnnouncedStore(runtime.home.state / STORE_FILE)
    for f in (just, long_ago):
        st = os.lstat(f["path"])
        store.add(f["path"], st.st_size, st.st_mtime_ns)
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=SWEEP_LEAVES_ANNOUNCED_SECONDS + 60)).isoformat()
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE announced SET announced_at = ? WHERE path = ?", (old, long_ago["path"]))

    swept = {f["path"] for f in discover(runtime, settle_seconds=0, run_is_live=lambda d, r: True,
                                         leave_announced_within=SWEEP_LEAVES_ANNOUNCED_SECONDS)}
    assert just["path"] not in swept, "the event runs take what the trigger has just announced"
    assert {long_ago["path"], never["path"]} <= swept, "what no event run took, or no event announced, is swept"
    assert just["path"] in {f["path"] for f in discover(runtime, settle_seconds=0)}, "`borderx run` takes all"
    # Changed since it was announced (another size): not the file that was announced, so the sweep takes it.
    with open(just["path"], "a") as fh:
        fh.write("\n")
    assert just["path"] in {f["path"] for f in discover(runtime, settle_seconds=0, leave_announced_within=300)}


def test_a_file_taken_by_the_event_run_is_not_quarantined_by_a_sweep_that_listed_it(runtime, s3_endpoint, bucket):
    from borderx.airflow.tasks import deliver, finish
    from borderx.bucket.publish import ensure_bucket

    ensure_bucket(runtime.s3, bucket)
    swept = discover(runtime, settle_seconds=0)
    one = next(f for f in swept if f["dataset"] == "goods_crossings" and "draft" not in f["name"])
    accepted = validate(runtime, receive(runtime, one, _run(1)), _run(1))
    finish(runtime, accepted, [deliver(runtime, accepted, p, _run(1)) for p in accepted["plans"]], _run(1))
    # The sweep listed the file before the event run took it; by the time it gets there it is gone.
    late = receive(runtime, one, {**_run(2), "dag_id": "borderx_sweep"})
    assert late["status"] == "gone"
    assert not list(runtime.home.quarantine.rglob(one["name"] + "*"))
    assert len(list(runtime.home.archive.rglob(one["name"]))) == 1


def test_cli_run_finishes_files_a_dead_process_left_taken(demo_home, s3_endpoint, bucket):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, signal, sys
        from borderx.exchange import Runtime, discover, receive
        rt = Runtime.open(sys.argv[1], endpoint_url=sys.argv[2], bucket=sys.argv[3])
        for f in discover(rt, settle_seconds=0):
            receive(rt, f)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    died = subprocess.run([sys.executable, "-c", code, str(demo_home.root), s3_endpoint, bucket], timeout=120)
    assert died.returncode == -9
    assert not list(demo_home.intake.glob("*/*/*.csv")), "everything was taken before the crash"

    from borderx.exchange import run_once

    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    assert summary.files == 6 and len(summary.published) == 6 and len(summary.quarantined) == 3
    assert not list(demo_home.intake.rglob("*.csv"))
    discover(rt, settle_seconds=0)
    assert not [p for p in demo_home.intake.rglob(f"{INFLIGHT_DIR}/*/*") if p.is_dir()], "emptied folders tidied"


def test_an_event_is_trusted_only_for_a_file_directly_in_its_agencys_intake_folder(demo_home):
    from borderx.intake import intake_file_from_event

    config = load_config(demo_home.root)
    good = next((demo_home.intake / "ZA-DHA" / "traveller_flows").glob("*.csv"))
    event = {"path": str(good), "agency": "ZA-DHA", "dataset": "traveller_flows", "name": good.name, "size": 7}
    placed = intake_file_from_event(config, demo_home, event)
    assert placed is not None and (placed.path, placed.agency, placed.size) == (str(good), "ZA-DHA", 7)
    for forged in (
        {**event, "path": str(demo_home.root / "config" / "settings.yaml")},
        {**event, "agency": "BW-DIC"},
        {**event, "dataset": "goods_crossings"},
        {**event, "path": str(good.parent / ".inflight" / "x" / good.name)},
        {**event, "path": str(good.with_name("x.csv.part"))},
        {"path": str(good)},
    ):
        assert intake_file_from_event(config, demo_home, forged) is None, forged


def test_a_pass_that_failed_part_way_is_finished_by_the_next_pass_of_the_same_process(runtime, monkeypatch):
    from borderx.exchange import run_once, stages as exchange

    real = exchange.validate
    calls = []

    def fail_once(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker lost")
        return real(*args)

    monkeypatch.setattr(exchange, "validate", fail_once)
    try:
        run_once(runtime, settle_seconds=0)
    except RuntimeError:
        pass
    monkeypatch.setattr(exchange, "validate", real)
    held = [p for p in runtime.home.intake.rglob(f"{INFLIGHT_DIR}/*/*/*.csv")]
    # The file the failed pass was on stays taken, with any group it had taken ahead while delivering another.
    assert held, "the files the failed pass had taken stay taken"
    run_once(runtime, settle_seconds=0)
    assert not list(runtime.home.intake.rglob("*.csv"))
    assert len(list(runtime.home.archive.rglob("*.csv"))) == 3
    assert len(list(runtime.home.quarantine.rglob("*.csv"))) == 3


def test_a_one_task_pass_cut_short_hands_its_files_to_the_mapped_stages_without_doubling(runtime, monkeypatch):
    """The exchange DAG does a few small files in its first task; a transient failure part-way hands the
    file it was on, as far as it got, and those after it (the group taken ahead among them) to the mapped
    stages, which finish them: each delivery is published once."""
    import json

    from borderx.airflow.tasks import deliver, exchange_here, finish
    from borderx.bucket.publish import ensure_bucket
    from borderx.exchange import TransientError, stages as exchange

    actor = {"dag_id": "borderx_exchange", "run_id": "asset_triggered__one", "task_id": "intake", "map_index": -1}

    waiting = discover(runtime, settle_seconds=0)
    first = next(f for f in waiting if f["agency"] == "ZA-DHA" and "resent" not in f["name"])
    cut = next(f for f in waiting if f["dataset"] == "goods_crossings" and "draft" not in f["name"])
    after = next(f for f in waiting if f["agency"] == "BW-DIC" and "_v2" not in f["name"])
    real = exchange.deliver
    calls = []

    def fourth_fails(*args):
        calls.append(1)
        if len(calls) == 4:  # the second delivery of the second file
            raise TransientError("bucket unreachable")
        return real(*args)

    monkeypatch.setattr(exchange, "deliver", fourth_fails)
    assert exchange_here(runtime, [first, cut, after], actor) == [cut, after]
    monkeypatch.setattr(exchange, "deliver", real)
    assert len(list(runtime.home.archive.rglob(first["name"]))) == 1, "the first file was done in the one task"
    assert not Path(cut["path"]).exists(), "the file it was on stays taken by the run"
    # The next group was taken and validated while the second was delivered: it stays taken by the run too.
    assert not Path(after["path"]).exists(), "the group taken ahead stays taken by the run"

    mapped = {**actor, "task_id": "receive", "map_index": 0}
    done = []
    for f in (cut, after):
        accepted = validate(runtime, receive(runtime, f, mapped), mapped)
        assert accepted["status"] == "accepted"
        ensure_bucket(runtime.s3, runtime.target.bucket)
        results = [deliver(runtime, accepted, plan, {**mapped, "task_id": "deliver"}) for plan in accepted["plans"]]
        finish(runtime, accepted, results, mapped)
        done.append((accepted, sorted(r["status"] for r in results)))
    assert done[0][1] == ["already-published", "published"]
    assert done[1][1] == ["published", "published"]

    trail = [json.loads(line) for line in (runtime.home.audit / "trail.jsonl").read_text().splitlines()]
    for accepted, _ in done:
        published = [e for e in trail if e["type"] == "published" and e["details"]["source_sha256"] ==
                     accepted["extract"]["sha256"]]
        assert len(published) == len(accepted["plans"]) == 2
        assert len(list(runtime.home.archive.rglob(accepted["extract"]["name"]))) == 1
    assert not list(runtime.home.quarantine.rglob("*.csv"))


def test_a_one_task_pass_finishes_the_others_then_fails_for_a_permanent_failure(runtime, monkeypatch):
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    from borderx.airflow.tasks import exchange_here
    from borderx.errors import PublishError
    from borderx.exchange import stages as exchange

    actor = {"dag_id": "borderx_exchange", "run_id": "r", "task_id": "intake", "map_index": -1}
    waiting = discover(runtime, settle_seconds=0)
    refused = next(f for f in waiting if f["agency"] == "ZA-DHA" and "resent" not in f["name"])
    fine = next(f for f in waiting if f["agency"] == "BW-DIC" and "_v2" not in f["name"])
    real = exchange.deliver

    def refuse_za(rt, accepted, plan, actor=None):
        if accepted.extract.agency == "ZA-DHA":
            raise PublishError("s3://bucket/key: AccessDenied")
        return real(rt, accepted, plan, actor)

    monkeypatch.setattr(exchange, "deliver", refuse_za)
    with pytest.raises(AirflowFailException, match=refused["name"]):
        exchange_here(runtime, [refused, fine], actor)
    assert len(list(runtime.home.archive.rglob(fine["name"]))) == 1
    assert not list(runtime.home.archive.rglob(refused["name"]))
