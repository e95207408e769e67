"""Intake from an S3 prefix, against a real moto server over HTTP: the bucket announces uploads to SQS, the trigger
reads them, and each object is copied into the intake folder whole and once, the agency's object left in place."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import boto3
import pytest
import yaml

from airflow_procs import DAGS, run_python
from borderx.exchange import Runtime
from borderx.airflow.triggers import S3IntakeTrigger
from borderx.intake.sources.s3_uploads import (copy_object, objects_for_keys, objects_from_events, objects_in_message,
                                               queue_name, setup_notifications, waiting_objects)

AGENCY = "ZA-SARS"
PREFIX = "intake/ZA-SARS/"
GOODS = b"declaration_ref,lodged_date\nT0001,2026-11-01\n"


@pytest.fixture
def s3_home(demo_home, s3_endpoint, bucket, monkeypatch):
    """The demo home with ZA-SARS uploading to the bucket, and the environment pointing the hub at moto."""
    path = demo_home.config / "agencies" / f"{AGENCY}.yaml"
    data = yaml.safe_load(path.read_text())
    data["intake"] = {"s3_prefix": PREFIX.rstrip("/")}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("BORDERX_S3_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("BORDERX_BUCKET", bucket)
    return demo_home


@pytest.fixture
def sqs(s3_endpoint):
    return boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def rt(s3_home, s3_endpoint, bucket, s3, sqs) -> Runtime:
    setup_notifications(s3, sqs, bucket, {AGENCY: PREFIX})
    return Runtime.open(s3_home.root)


def intake(home) -> Path:
    return home.intake / AGENCY / "goods_crossings"


def drain(sqs, url: str) -> list[dict]:
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])


def collect(trigger: S3IntakeTrigger, count: int, seconds: float) -> list[dict]:
    """Runs the trigger as the triggerer would until it fired `count` events or the time is up."""

    async def main():
        events: list[dict] = []

        async def consume():
            async for event in trigger.run():
                events.append(event.payload)
                if len(events) >= count:
                    return

        try:
            await asyncio.wait_for(consume(), seconds)
        except asyncio.TimeoutError:
            pass
        return events

    return asyncio.run(main())


def test_notification_set_up_keeps_other_notifications_and_can_be_run_again(s3, sqs, bucket):
    s3.create_bucket(Bucket=bucket)
    other = sqs.create_queue(QueueName=f"{bucket}-audit-copies")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [
        {"Id": "audit-copies", "QueueArn": other_arn, "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "audit/"}]}}}]})

    first = setup_notifications(s3, sqs, bucket, {AGENCY: PREFIX, "BW-DIC": "intake/BW-DIC"})
    again = setup_notifications(s3, sqs, bucket, {AGENCY: PREFIX, "BW-DIC": "intake/BW-DIC"})

    assert first == again and set(first) == {AGENCY, "BW-DIC"}
    assert first[AGENCY].endswith("/" + queue_name(bucket, AGENCY))
    configs = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert sorted((c["Id"], c["Filter"]["Key"]["FilterRules"][0]["Value"]) for c in configs) == [
        ("audit-copies", "audit/"), ("borderx-intake-BW-DIC", "intake/BW-DIC/"), ("borderx-intake-ZA-SARS", PREFIX)]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=first[AGENCY], AttributeNames=["Policy"])
                        ["Attributes"]["Policy"])
    assert policy["Statement"][0]["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"

    # A prefix dropped from the config loses its notification; what is not ours stays.
    setup_notifications(s3, sqs, bucket, {AGENCY: PREFIX})
    configs = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert sorted(c["Id"] for c in configs) == ["audit-copies", "borderx-intake-ZA-SARS"]


def test_setup_command_announces_each_upload_to_its_agency_queue(s3_home, s3, sqs, bucket, capsys):
    from borderx.cli import main

    assert main(["s3-intake", "setup", "--home", str(s3_home.root)]) == 0
    url = sqs.get_queue_url(QueueName=queue_name(bucket, AGENCY))["QueueUrl"]
    assert capsys.readouterr().out.strip() == f"{AGENCY}: s3://{bucket}/{PREFIX} -> {url}"
    s3.put_object(Bucket=bucket, Key=PREFIX + "goods_crossings/a.csv", Body=GOODS)
    # S3 also sends a test event when notifications are set up: it announces no object.
    announced = [o["key"] for m in drain(sqs, url) for o in objects_in_message(m["Body"], bucket, PREFIX)]
    assert announced == [PREFIX + "goods_crossings/a.csv"]


def test_setup_command_names_the_bucket_and_endpoint_when_it_fails(s3_home, capsys):
    from borderx.cli import main

    assert main(["s3-intake", "setup", "--home", str(s3_home.root), "--s3-endpoint", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9" in err and "bucket" in err


def test_long_bucket_names_still_give_valid_queue_names():
    name = queue_name("b" * 63, "ZA-ABCDEFGHIJKL")
    assert len(name) <= 80 and name.endswith("-intake-ZA-ABCDEFGHIJKL")
    assert queue_name("hub.example", AGENCY) == "hub-example-intake-ZA-SARS"


def test_an_upload_reaches_the_trigger_once_and_leftovers_do_not(rt, s3, sqs, bucket):
    for key in (PREFIX + "goods_crossings/upload.csv.part", PREFIX + "goods_crossings/.hidden.csv",
                PREFIX + "goods_crossings/deeper/x.csv", PREFIX + "x.csv", "intake/BW-DIC/traveller_flows/y.csv"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"a,b\n")
    put = s3.put_object(Bucket=bucket, Key=PREFIX + "goods_crossings/nov 2026.csv", Body=GOODS)

    events = collect(S3IntakeTrigger(home=str(rt.home.root), agency=AGENCY, poll_interval=0.1, wait_seconds=1),
                     count=2, seconds=8)

    assert events == [{"agency": AGENCY, "bucket": bucket, "key": PREFIX + "goods_crossings/nov 2026.csv",
                       "etag": put["ETag"].strip('"'), "size": len(GOODS)}]
    # The trigger deleted what it read, announcement or not: nothing comes round again.
    url = sqs.get_queue_url(QueueName=queue_name(bucket, AGENCY))["QueueUrl"]
    assert drain(sqs, url) == []
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX)["Contents"]) == 5


def test_the_trigger_serializes_to_itself_and_outlives_a_missing_queue(s3_home, s3, sqs, bucket, monkeypatch):
    import borderx.airflow.triggers

    monkeypatch.setattr(borderx.airflow.triggers, "RETRY_SECONDS", 0.2)
    trigger = S3IntakeTrigger(home=str(s3_home.root), agency=AGENCY, poll_interval=0.1, wait_seconds=1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "borderx.airflow.triggers.S3IntakeTrigger"
    assert S3IntakeTrigger(**kwargs).serialize() == (classpath, kwargs)

    # No queue yet: the watch keeps trying instead of ending (an ended watch leaves the asset deaf), and
    # hears the first upload once the queue is there.
    async def main():
        events = []

        async def set_up_later():
            await asyncio.sleep(1)
            await asyncio.to_thread(setup_notifications, s3, sqs, bucket, {AGENCY: PREFIX})
            await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=PREFIX + "goods_crossings/a.csv", Body=GOODS)

        later = asyncio.create_task(set_up_later())
        async for event in trigger.run():
            events.append(event.payload)
            break
        await later
        return events

    [event] = asyncio.run(asyncio.wait_for(main(), 20))
    assert event["key"] == PREFIX + "goods_crossings/a.csv"


def test_event_messages_are_read_strictly():
    def message(key: str, **over) -> str:
        record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "hub"},
                  "object": {"key": key, "size": 3, "eTag": "abc"}}}
        record.update(over)
        return json.dumps({"Records": [record]})

    assert objects_in_message(message("intake/ZA-SARS/goods_crossings/a+b%C3%A9.csv"), "hub", PREFIX) == [
        {"bucket": "hub", "key": "intake/ZA-SARS/goods_crossings/a bé.csv", "etag": "abc", "size": 3}]
    assert objects_in_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}), "hub", PREFIX) == []
    assert objects_in_message("not json", "hub", PREFIX) == []
    assert objects_in_message(message("intake/ZA-SARS/goods_crossings/a.csv", eventName="ObjectRemoved:Delete"),
                              "hub", PREFIX) == []
    assert objects_in_message(message("intake/ZA-SARS/goods_crossings/a.csv"), "other-bucket", PREFIX) == []
    for key in ("intake/ZA-SARS/goods_crossings/a.csv.tmp", "intake/ZA-SARS/goods_crossings/.a.csv",
                "intake/ZA-SARS/a.csv", "intake/ZA-SARS//a.csv", "intake/BW-DIC/traveller_flows/a.csv"):
        assert objects_in_message(message(key), "hub", PREFIX) == [], key


class SpyingS3:
    """The real client, watching the intake file while the object's bytes are being written."""

    def __init__(self, client, target: Path):
        self.client, self.target, self.seen_during_copy = client, target, []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def get_object(self, **kw):
        response = self.client.get_object(**kw)
        body, spy = response["Body"], self

        class Body:
            def iter_chunks(self, size):
                for chunk in body.iter_chunks(size):
                    spy.seen_during_copy.append(spy.target.exists())
                    yield chunk

            def close(self):
                body.close()

        return {**response, "Body": Body()}


def test_the_copy_is_atomic_exactly_once_and_leaves_the_object(rt, s3, bucket):
    key = PREFIX + "goods_crossings/big.csv"
    data = GOODS + b"T0002,2026-11-02\n" * 200_000  # several MiB: several chunks
    put = s3.put_object(Bucket=bucket, Key=key, Body=data)
    payload = {"agency": AGENCY, "bucket": bucket, "key": key, "etag": put["ETag"].strip('"'), "size": len(data)}

    # The same event twice, and once from another bucket: one object to copy.
    [obj] = objects_from_events(rt, [payload, dict(payload), {**payload, "bucket": "elsewhere"}])
    target = intake(rt.home) / "big.csv"
    rt.s3 = spy = SpyingS3(rt.s3, target)
    outcome = copy_object(rt, obj)

    assert outcome.status == "copied" and outcome.path == str(target)
    assert len(spy.seen_during_copy) > 1 and not any(spy.seen_during_copy), "visible before it was whole"
    assert target.read_bytes() == data
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".part")]
    # Where the exchange finds it, as if the agency had dropped it into the folder.
    from borderx.intake import scan

    assert str(target) in {f.path for f in scan(rt.config, rt.home, settle_seconds=0)}
    assert copy_object(rt, obj).status == "seen"
    # Even once the exchange took the file away, the same object is not copied again.
    target.unlink()
    assert copy_object(rt, obj).status == "seen" and not target.exists()
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert waiting_objects(rt) == []


def test_concurrent_copies_of_one_object_make_one_file(rt, s3, bucket):
    key = PREFIX + "goods_crossings/twice.csv"
    put = s3.put_object(Bucket=bucket, Key=key, Body=GOODS)
    [obj] = objects_from_events(rt, [{"bucket": bucket, "key": key, "etag": put["ETag"], "size": len(GOODS)}])
    outcomes: list[str] = []

    def copy():
        outcomes.append(copy_object(Runtime.open(rt.home.root), obj).status)

    threads = [threading.Thread(target=copy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["copied", "seen", "seen", "seen"]


def test_a_replaced_object_is_copied_as_its_new_version_only(rt, s3, bucket):
    key = PREFIX + "goods_crossings/replaced.csv"
    first = s3.put_object(Bucket=bucket, Key=key, Body=GOODS)
    stale = objects_from_events(rt, [{"bucket": bucket, "key": key, "etag": first["ETag"], "size": len(GOODS)}])
    newer = GOODS + b"T0003,2026-11-03\n"
    s3.put_object(Bucket=bucket, Key=key, Body=newer)

    assert copy_object(rt, stale[0]).status == "changed"
    assert not (intake(rt.home) / "replaced.csv").exists()
    [current] = waiting_objects(rt)
    assert copy_object(rt, current).status == "copied"
    assert (intake(rt.home) / "replaced.csv").read_bytes() == newer


def test_a_name_still_taken_in_intake_waits_for_the_exchange(rt, s3, bucket):
    target = intake(rt.home) / "same-name.csv"
    target.write_bytes(b"an earlier extract, not yet taken\n")
    key = PREFIX + "goods_crossings/same-name.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=GOODS)
    [obj] = objects_for_keys(rt, [key])

    assert copy_object(rt, obj).status == "waiting"
    assert target.read_bytes() == b"an earlier extract, not yet taken\n"
    target.unlink()  # the exchange took it
    assert copy_object(rt, obj).status == "copied" and target.read_bytes() == GOODS


def test_keys_outside_a_provided_dataset_are_left_alone(rt, s3, bucket):
    s3.put_object(Bucket=bucket, Key=PREFIX + "traveller_flows/not-provided.csv", Body=b"a\n")
    s3.put_object(Bucket=bucket, Key=PREFIX + "goods_crossings/ok.csv", Body=GOODS)
    s3.put_object(Bucket=bucket, Key=PREFIX + "goods_crossings/ok.csv.part", Body=GOODS)
    assert objects_for_keys(rt, [PREFIX + "traveller_flows/not-provided.csv"]) == []
    assert [o["name"] for o in waiting_objects(rt)] == ["ok.csv"]


def test_dag_test_copies_the_keys_in_conf_then_the_sweep_copies_the_rest(airflow_env, s3_home, s3_endpoint,
                                                                          bucket, s3, sqs):
    setup_notifications(s3, sqs, bucket, {AGENCY: PREFIX})
    given = PREFIX + "goods_crossings/given.csv"
    s3.put_object(Bucket=bucket, Key=given, Body=GOODS)
    s3.put_object(Bucket=bucket, Key=PREFIX + "goods_crossings/later.csv", Body=GOODS + b"T9,2026-11-09\n")
    s3.put_object(Bucket=bucket, Key=PREFIX + "goods_crossings/later.csv.part", Body=b"half")
    env = {**airflow_env, "BORDERX_HOME": str(s3_home.root), "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
           "BORDERX_BUCKET": bucket, "AWS_ACCESS_KEY_ID": "borderx-test", "AWS_SECRET_ACCESS_KEY": "borderx-test"}
    done = run_python(
        f"""
        import importlib.util, json
        spec = importlib.util.spec_from_file_location("s3_intake_dag", {str(DAGS / "borderx_s3_intake.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        dag = module.s3_intake_dag
        states = [str(dag.test(run_conf={{"keys": [{given!r}]}}).state)]
        states.append(str(dag.test(run_conf={{"keys": [{given!r}]}}).state))
        # dag.test() keeps the last run's conf in the DAG's params: the sweep says it has no keys.
        states.append(str(dag.test(run_conf={{"keys": None}}).state))
        print(json.dumps({{"states": states, "assets": [a.uri for a in module.S3_INTAKE_ASSETS],
                          "timetable": type(dag.timetable).__name__}}))
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [s.rsplit(".", 1)[-1] for s in result["states"]] == ["success"] * 3, done.stderr[-5000:]
    assert result["assets"] == [f"x-borderx-s3-intake://{AGENCY}"]
    assert result["timetable"] == "AssetOrTimeSchedule"
    folder = intake(s3_home)
    assert (folder / "given.csv").read_bytes() == GOODS
    assert (folder / "later.csv").exists() and not (folder / "later.csv.part").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    # One row per object in the copy store: the second run and the sweep copied nothing twice.
    import sqlite3

    with sqlite3.connect(s3_home.state / "pulled.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM announced").fetchone()[0] == 2
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX)["Contents"]) == 3
