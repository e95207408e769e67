"""Faults around the exchange: the S3 endpoint down at the start or in the middle, a corrupted ledger, files that
change while they are read, full disks. After recovery every file is published exactly once or quarantined,
and the audit trail still verifies."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from borderx.cli import main
from borderx.exchange import Runtime, run_once
from faultproxy import FaultProxy
from filesystems import small_fs


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _signatures_per_source(s3, bucket):
    counts: dict[tuple, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("manifest.json"):
                m = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                key = (m["source"]["name"], m["recipient"])
                counts[key] = counts.get(key, 0) + 1
    return counts


def test_endpoint_down_at_start_fails_cleanly_and_loses_nothing(demo_home, s3_endpoint, bucket, s3, capsys):
    waiting = sorted(p.name for p in demo_home.intake.rglob("*.csv"))
    code = main(["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", _closed_port(), "--bucket", bucket,
                 "--settle", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "borderx:" in err and "Traceback" not in err
    assert sorted(p.name for p in demo_home.intake.rglob("*.csv")) == waiting, "every file still waits in intake"

    summary = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert len(summary.published) == 6 and len(summary.quarantined) == 3
    assert set(_signatures_per_source(s3, bucket).values()) == {1}


def test_endpoint_down_mid_run_then_back_publishes_each_file_once(demo_home, s3_endpoint, bucket, s3):
    # Four requests a small delivery (HEAD, three PUTs): the endpoint goes away after about half of the six.
    with FaultProxy(s3_endpoint, fail_after=13) as dying:
        with pytest.raises(Exception):
            run_once(Runtime.open(demo_home.root, endpoint_url=dying.url, bucket=bucket), settle_seconds=0)
    assert dying.injected["503"] > 0
    # Deliveries run side by side: when the endpoint goes, some may have their manifest up but not yet their
    # signature. Those count as not published, and the next run completes them.
    signed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/").get("Contents", [])
              if o["Key"].endswith("manifest.json.sig")]
    assert 0 < len(signed) < 6, "the endpoint went away part-way through"

    again = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    counts = _signatures_per_source(s3, bucket)
    assert len(counts) == 6 and set(counts.values()) == {1}
    assert len(again.published) == 6 - len(signed)
    assert not list(demo_home.intake.rglob("*.csv"))
    assert Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket).trail.verify()[1] is None


def test_a_corrupted_ledger_is_set_aside_and_nothing_is_published_twice(demo_home, s3_endpoint, bucket, s3):
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    assert len(run_once(rt, settle_seconds=0).published) == 6
    ledger = demo_home.state / "ledger.sqlite"
    ledger.write_bytes(b"this is not a database" * 100)
    for archived in list(demo_home.archive.rglob("*.csv")):
        agency, dataset = archived.relative_to(demo_home.archive).parts[:2]
        archived.rename(demo_home.intake / agency / dataset / archived.name)
    again = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert not again.published and len(again.already_published) == 6
    assert list(demo_home.state.glob("ledger.sqlite.corrupt-*")), "the damaged ledger is kept for inspection"
    assert set(_signatures_per_source(s3, bucket).values()) == {1}


# -- files that change while the hub reads them ------------------------------------------------------

HEADER = "period,border_point,direction,nationality,age_band,sex,travel_mode,traveller_category,travellers"
GOOD = (f"{HEADER}\n2026-11-01,ZA-BEI,ENTRY,ZAF,18-29,F,ROAD,VISITOR,17\n"
        "2026-11-01,ZA-BEI,EXIT,ZAF,18-29,F,ROAD,VISITOR,23\n")
MORE = "2026-11-02,ZA-BEI,ENTRY,ZAF,18-29,F,ROAD,VISITOR,29\n"


def _fresh(home):
    for path in home.intake.rglob("*"):
        if path.is_file():
            path.unlink()
    return home.intake / "ZA-DHA" / "traveller_flows"


class Writer(threading.Thread):
    """An agency's tool that opened the file before the hub took it and writes through its own descriptor when
    told to: the real thing a rename into `.inflight` cannot stop."""

    def __init__(self, path: Path, act):
        super().__init__(daemon=True)
        self.fh = open(path, "r+b")
        self.act = act
        self.go, self.done = threading.Event(), threading.Event()

    def run(self):
        self.go.wait(30)
        self.act(self.fh)
        self.fh.close()
        self.done.set()

    def now(self):
        """Called from inside the hub's read: lets the writer write, and waits until it has."""
        self.go.set()
        assert self.done.wait(30), "the writer never wrote"


def _append(fh):
    fh.seek(0, os.SEEK_END)
    fh.write(MORE.encode())
    fh.flush()


def _overwrite(fh):
    fh.seek(len(HEADER) + 1)
    fh.write(b"2026-11-09")  # same length, same size: only the times show it
    fh.flush()


class _HashHook:
    """Stands in for hashlib in the intake module: the first block hashed from a file lets the writer write."""

    def __init__(self, writer):
        self.writer = writer

    def sha256(self, data=b""):
        real, writer = hashlib.sha256(data), self.writer

        class Hooked:
            def update(self, block):
                writer.now()
                real.update(block)

            def hexdigest(self):
                return real.hexdigest()

        return Hooked()


def _published(s3, bucket) -> list[str]:
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        return []
    return sorted(json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())["source"]["name"]
                  for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/")
                  for o in page.get("Contents", []) if o["Key"].endswith("manifest.json"))


def _assert_changed_file_quarantined(home, name: str, now_bytes: bytes):
    folder = home.quarantine / "ZA-DHA" / "traveller_flows"
    assert (folder / name).read_bytes() == now_bytes, "kept as the writer left it, not as the hub saw it"
    report = json.loads((folder / f"{name}.report.json").read_text())
    assert [r["rule"] for r in report["reasons"]] == ["changed-while-read"]
    assert "while the hub was reading it" in report["reasons"][0]["message"]
    assert "temporary name" in (folder / f"{name}.report.txt").read_text()


@pytest.mark.parametrize("act", [_append, _overwrite], ids=["appended", "overwritten"])
def test_a_file_written_to_while_it_is_hashed_is_quarantined(demo_home, s3_endpoint, bucket, s3, monkeypatch, act):
    folder = _fresh(demo_home)
    (folder / "a-growing.csv").write_text(GOOD)
    (folder / "b-next.csv").write_text(GOOD.replace(",17", ",18"))
    writer = Writer(folder / "a-growing.csv", act)
    writer.start()
    from borderx.intake import entries as intake

    monkeypatch.setattr(intake, "HASH_BLOCK", 64)  # several reads per file, so the write lands mid-hash
    hook = _HashHook(writer)
    monkeypatch.setattr(intake, "hashlib", hook)
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    writer.join(5)

    assert [q["name"] for q in summary.quarantined] == ["a-growing.csv"]
    expected = GOOD.encode()
    if act is _append:
        expected += MORE.encode()
    else:
        expected = expected.replace(b"2026-11-01", b"2026-11-09", 1)
    _assert_changed_file_quarantined(demo_home, "a-growing.csv", expected)
    assert _published(s3, bucket) == ["b-next.csv", "b-next.csv"]
    assert rt.ledger.get(hashlib.sha256(expected).hexdigest()) is None, "nothing about it was claimed"
    assert rt.trail.verify()[1] is None


def test_a_file_replaced_by_rename_while_hashed_is_published_once_and_its_replacement_next(
        demo_home, s3_endpoint, bucket, s3, monkeypatch):
    folder = _fresh(demo_home)
    (folder / "flows.csv").write_text(GOOD)
    replacement = GOOD.replace(",23", ",24")

    def replace(fh):
        (folder / "flows.csv.part").write_text(replacement)
        os.replace(folder / "flows.csv.part", folder / "flows.csv")  # as an upload tool finishes a transfer

    writer = Writer(folder / "flows.csv", replace)
    writer.start()
    from borderx.intake import entries as intake

    monkeypatch.setattr(intake, "HASH_BLOCK", 64)
    monkeypatch.setattr(intake, "hashlib", _HashHook(writer))
    first = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    writer.join(5)
    # The hub had already taken the first file out of intake: it read a file nobody else was writing.
    assert len(first.published) == 2 and not first.quarantined
    assert (folder / "flows.csv").read_text() == replacement, "the replacement waits for the next run"
    second = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert len(second.published) == 2 and not second.quarantined
    manifests = [json.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read())
                 for k in (o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")["Contents"])
                 if k.endswith("manifest.json")]
    by_source = sorted(m["source"]["sha256"] for m in manifests)
    assert by_source == sorted([hashlib.sha256(GOOD.encode()).hexdigest()] * 2
                               + [hashlib.sha256(replacement.encode()).hexdigest()] * 2)


def test_a_file_renamed_after_it_was_found_is_taken_once_under_its_new_name(demo_home, s3_endpoint, bucket, s3,
                                                                              monkeypatch):
    folder = _fresh(demo_home)
    (folder / "a.csv").write_text(GOOD)
    (folder / "b.csv").write_text(GOOD.replace(",17", ",18"))
    writer = Writer(folder / "b.csv", lambda fh: os.rename(folder / "b.csv", folder / "b-final.csv"))
    writer.start()
    from borderx.intake import entries as intake

    monkeypatch.setattr(intake, "hashlib", _HashHook(writer))  # b.csv is renamed while a.csv is being hashed
    first = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert first.files == 2 and _published(s3, bucket) == ["a.csv", "a.csv"] and not first.quarantined
    second = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert second.files == 1 and len(second.published) == 2
    assert _published(s3, bucket) == ["a.csv", "a.csv", "b-final.csv", "b-final.csv"]


def test_a_file_appended_to_during_validation_is_quarantined(demo_home, s3_endpoint, bucket, s3, monkeypatch):
    folder = _fresh(demo_home)
    (folder / "a-growing.csv").write_text(GOOD)
    (folder / "b-next.csv").write_text(GOOD.replace(",17", ",18"))
    writer = Writer(folder / "a-growing.csv", _append)
    writer.start()
    from borderx import validation

    real = validation.validate_extract

    def validate_then_write(path, *args, **kwargs):
        outcome = real(path, *args, **kwargs)
        writer.now()  # the suite passed on what was hashed; the file grows before anything is published
        return outcome

    from borderx.validation import batched

    validate_together = batched.validate_files

    def validate_together_then_write(*args, **kwargs):
        outcomes = validate_together(*args, **kwargs)
        writer.now()
        return outcomes

    monkeypatch.setattr(validation, "validate_extract", validate_then_write)
    monkeypatch.setattr(batched, "validate_files", validate_together_then_write)
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    assert [q["name"] for q in summary.quarantined] == ["a-growing.csv"]
    _assert_changed_file_quarantined(demo_home, "a-growing.csv", (GOOD + MORE).encode())
    assert _published(s3, bucket) == ["b-next.csv", "b-next.csv"]
    assert rt.trail.verify()[1] is None


def _by_run_once(rt) -> list[str]:
    return [q["name"] for q in run_once(rt, settle_seconds=0).quarantined]


def _by_the_mapped_airflow_stages(rt) -> list[str]:
    """The sweep's tasks, in the order the DAG runs them, each given what the one before returned as an XCom."""
    from borderx.airflow import tasks

    actor = {"dag_id": "borderx_sweep", "run_id": "scheduled__1", "task_id": "receive", "map_index": 0}
    validated = [tasks.validate(rt, tasks.receive(rt, f, actor), actor) for f in tasks.discover(rt, settle_seconds=0)]
    delivered = [tasks.deliver_job(rt, job, {**actor, "task_id": "deliver"}) for job in tasks.delivery_jobs(validated)]
    tasks.archive(rt, validated, delivered, {**actor, "task_id": "archive", "map_index": -1})
    return [d["quarantined"]["name"] for d in delivered if d.get("quarantined")]


@pytest.mark.parametrize("exchange", [_by_run_once, _by_the_mapped_airflow_stages])
def test_a_file_appended_to_during_encryption_is_not_published(demo_home, s3_endpoint, bucket, s3, monkeypatch,
                                                               exchange):
    folder = _fresh(demo_home)
    (folder / "a-growing.csv").write_text(GOOD)
    (folder / "b-next.csv").write_text(GOOD.replace(",17", ",18"))
    writer = Writer(folder / "a-growing.csv", _append)
    writer.start()
    from borderx.delivery import seal

    real = seal.minimise

    def minimise_then_write(path, *args, **kwargs):
        cut = real(path, *args, **kwargs)
        writer.now()  # the ciphertext is made from what was hashed, but the file no longer is that
        return cut

    monkeypatch.setattr(seal, "minimise", minimise_then_write)
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    assert exchange(rt) == ["a-growing.csv"]
    _assert_changed_file_quarantined(demo_home, "a-growing.csv", (GOOD + MORE).encode())
    assert _published(s3, bucket) == ["b-next.csv", "b-next.csv"], "not one recipient got the changed file"
    assert not list(demo_home.work.iterdir()), "its ciphertext was removed"
    assert [p.name for p in demo_home.archive.rglob("*.csv")] == ["b-next.csv"]
    events = [e for e in rt.trail.events() if e["details"].get("source_name") == "a-growing.csv"]
    assert [e["type"] for e in events].count("quarantined") == 1
    assert "archived" not in [e["type"] for e in events]
    assert rt.trail.verify()[1] is None


# -- full disks ---------------------------------------------------------------------------------------


def _home_files(home) -> dict[str, bytes]:
    return {str(p.relative_to(home.root)): p.read_bytes() for p in home.root.rglob("*")
            if p.is_file() and not p.is_symlink() and p.name != ".filler"}


def test_a_full_work_folder_fails_the_run_naming_it_then_publishes_once_when_space_returns(
        demo_home, s3_endpoint, bucket, s3, capsys):
    folder = _fresh(demo_home)
    (folder / "flows.csv").write_text(GOOD)
    args = ["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
            "--settle", "0"]
    with small_fs(demo_home.work) as filler:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert f"work folder {demo_home.work}: no space left" in err and "Traceback" not in err
        assert [p.name for p in demo_home.work.iterdir()] == [".filler"], "no partial ciphertext"
        assert not _published(s3, bucket)
        [held] = [p for p in folder.rglob("flows.csv")]
        assert held.read_text() == GOOD and ".inflight" in held.parts, "still in the intake folder, unchanged"
        plaintext = {k for k, v in _home_files(demo_home).items() if b"ZA-BEI,ENTRY" in v}
        assert plaintext == {str(held.relative_to(demo_home.root))}, "no plaintext copy anywhere"

        filler.unlink()  # space returns
        assert main(args) == 0
    assert _published(s3, bucket) == ["flows.csv", "flows.csv"]
    assert set(_signatures_per_source(s3, bucket).values()) == {1}
    assert list(demo_home.archive.rglob("flows.csv")) and not list(folder.rglob("flows.csv"))
    assert main(["audit", "verify", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint,
                 "--bucket", bucket]) == 0


def test_a_full_quarantine_folder_fails_the_run_naming_it_then_quarantines_when_space_returns(
        demo_home, s3_endpoint, bucket, s3, capsys):
    folder = _fresh(demo_home)
    bad = (HEADER + "\n" + "x" * (300 << 10) + "\n").encode()  # unreadable, and larger than the space left
    (folder / "a-bad.csv").write_bytes(bad)
    (folder / "b-good.csv").write_text(GOOD)
    args = ["run", "--once", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
            "--settle", "0"]
    with small_fs(demo_home.quarantine, leave=64 << 10) as filler:
        assert main(args) == 1
        err = capsys.readouterr().err
        assert f"quarantine folder {demo_home.quarantine / 'ZA-DHA' / 'traveller_flows'}" in err
        assert "No space left" in err and "Traceback" not in err
        left = [p for p in demo_home.quarantine.rglob("*") if p.is_file() and p != filler]
        assert not left, f"nothing half-written in quarantine: {left}"
        [held] = folder.rglob("a-bad.csv")
        assert held.read_bytes() == bad

        filler.unlink()
        assert main(args) == 1  # the bad file is quarantined now, and the good one published
        kept = demo_home.quarantine / "ZA-DHA" / "traveller_flows" / "a-bad.csv"
        assert kept.read_bytes() == bad and kept.with_name("a-bad.csv.report.txt").is_file()
        assert not [p for p in kept.parent.iterdir() if p.name.startswith(".")], "no temporary file left"
    assert _published(s3, bucket) == ["b-good.csv", "b-good.csv"]
    rt = Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
    assert rt.trail.verify()[1] is None
    assert [e["details"]["source_name"] for e in rt.trail.events() if e["type"] == "quarantined"] == ["a-bad.csv"]


def test_links_are_quarantined_unread_when_the_quarantine_is_another_file_system(
        demo_home, s3_endpoint, bucket, s3, tmp_path):
    folder = _fresh(demo_home)
    outside = tmp_path / "outside.csv"
    outside.write_text(GOOD)
    (folder / "sym.csv").symlink_to(outside)
    os.link(outside, folder / "hard.csv")
    st = outside.stat()
    os.utime(outside, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))  # any read now moves the access time
    atime = outside.stat().st_atime_ns
    with small_fs(demo_home.quarantine):
        os.unlink(demo_home.quarantine / ".filler")
        summary = run_once(Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
        assert sorted(q["reasons"][0]["rule"] for q in summary.quarantined) == ["hard-link", "symlink"]
        kept = demo_home.quarantine / "ZA-DHA" / "traveller_flows"
        assert os.readlink(kept / "sym.csv") == str(outside), "the link made again, pointing where it did"
        # A hard link cannot cross file systems without its content being read: only its intake name goes.
        assert not os.path.lexists(kept / "hard.csv") and not os.path.lexists(folder / "hard.csv")
        report = json.loads((kept / "hard.csv.report.json").read_text())
        assert report["entry"]["in_quarantine"] is False and report["entry"]["inode"] == st.st_ino
        assert "other file system" in (kept / "hard.csv.report.txt").read_text()
    assert outside.stat().st_atime_ns == atime and outside.stat().st_nlink == 1
    assert outside.read_text() == GOOD and not _published(s3, bucket)
