"""Small files taken together by `borderx run --once` (received first, validated in shared batches) end as they
would one by one: the same outcome, report, deliveries and audit events for each, in the same order."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest

from borderx.audit.trail import AuditTrail
from borderx.bucket.publish import ensure_bucket
from borderx.dev.demo import drop_samples, prepare_home
from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS, traveller_flows_rows, write_csv
from borderx.exchange import Runtime, run_once, stages
from borderx.exchange import spine
from borderx.exchange.spine import RunSummary, exchange_one


def _drop_small_files(home) -> None:
    folder = home.intake / "ZA-DHA" / "traveller_flows"
    for day in range(1, 13):
        rows = list(traveller_flows_rows(["ZA-BEI"], dt.date(2026, 2, day), 1 + day % 2, seed=day))
        if day == 5:
            rows[3][2] = "SIDEWAYS"  # direction outside ENTRY/EXIT
        write_csv(folder / f"small-{day:02d}.csv", TRAVELLER_FLOWS_COLUMNS, rows)
    shutil.copyfile(folder / "small-02.csv", folder / "small-99-copy.csv")
    old = dt.datetime.now().timestamp() - 60
    for path in folder.iterdir():
        os.utime(path, (old, old))


def _home(root):
    home = _home_of_samples(root)
    _drop_small_files(home)
    return home


def _home_of_samples(root):
    today = dt.date.today()
    home = prepare_home(root, today)
    drop_samples(home, today)
    return home


def _events(home) -> dict[str, list[tuple]]:
    """Each source's events in order: kind and what it is about, without times, hashes of the chain or keys (the
    two homes' keys differ). Files are delivered on several threads, so only each file's own order counts."""
    about = ("source_name", "provider", "dataset", "agreement", "recipient", "rows_in", "rows_out", "success",
             "rows", "rule", "reasons", "statistics")
    by_source: dict[str, list[tuple]] = {}
    for e in AuditTrail(home.audit).events():
        source = e["details"].get("source_sha256")
        if source:
            by_source.setdefault(source, []).append((e["type"], *(str(e["details"].get(k)) for k in about)))
    return by_source


def _pages(home) -> list[str]:
    """The Data Docs pages, and the sources of those still to be rendered."""
    return sorted(str(p.relative_to(home.root)) for p in home.root.rglob("*.validation.*"))


def _one_by_one(rt: Runtime) -> RunSummary:
    rt.prepare()
    rt.record_config_changes()
    summary = RunSummary()
    found = stages.discover(rt, 0)
    summary.files = len(found)
    ensure_bucket(rt.s3, rt.target.bucket)
    for f in found:
        summary.add(exchange_one(rt, f))
    stages.close_segment(rt)
    return summary


def _reasons(summary: RunSummary) -> dict:
    return {q["name"]: [(r["rule"], r.get("column"), r.get("rows")) for r in q["reasons"]]
            for q in summary.quarantined}


# Groups of 8: the next group is validated while the one before is delivered, and the copy of small-02 comes
# in the group after its original's, while that may still be delivered.
@pytest.mark.parametrize("group_files", [spine.GROUP_FILES, 8])
def test_small_files_taken_together_end_as_they_would_one_by_one(tmp_path, s3_endpoint, s3, monkeypatch,
                                                                group_files):
    monkeypatch.setattr(spine, "GROUP_FILES", group_files)
    singly_home, together_home = _home(tmp_path / "singly"), _home(tmp_path / "together")
    s3.create_bucket(Bucket="singly")
    s3.create_bucket(Bucket="together")
    s3.create_bucket(Bucket="samples")
    singly = _one_by_one(Runtime.open(singly_home.root, endpoint_url=s3_endpoint, bucket="singly"))
    together = run_once(Runtime.open(together_home.root, endpoint_url=s3_endpoint, bucket="together"),
                        settle_seconds=0)

    assert together.files == singly.files == 19
    assert _reasons(together) == _reasons(singly)
    assert set(_reasons(together)) == {
        "small-05.csv", "small-99-copy.csv", *(q["name"] for q in singly.quarantined if "small" not in q["name"])}
    assert [d["prefix"].split("/")[-2] for d in together.published] == [
        d["prefix"].split("/")[-2] for d in singly.published]
    demo_only = _one_by_one(Runtime.open(_home_of_samples(tmp_path / "samples").root, endpoint_url=s3_endpoint,
                                         bucket="samples"))
    assert len(together.published) == 2 * 11 + len(demo_only.published), "each good small file to both recipients"
    events = _events(together_home)
    assert events == _events(singly_home)
    assert len(events) == 19 - 1, "the copy's events are its original's (the same content)"
    assert all(kinds[0][0] == "received" for kinds in events.values())
    # A copy of content an earlier run took is quarantined unvalidated, as alone: no Data Docs page of its own.
    for home, run in ((singly_home, lambda: _one_by_one(Runtime.open(singly_home.root, endpoint_url=s3_endpoint,
                                                                     bucket="singly"))),
                      (together_home, lambda: run_once(Runtime.open(together_home.root, endpoint_url=s3_endpoint,
                                                                    bucket="together"), settle_seconds=0))):
        archived = next(home.archive.rglob("small-03.csv"))
        shutil.copyfile(archived, home.intake / "ZA-DHA" / "traveller_flows" / "small-03-resent.csv")
        assert [q["name"] for q in run().quarantined] == ["small-03-resent.csv"]
    assert _pages(together_home) == _pages(singly_home)
    assert not any("small-03-resent" in page or "small-99-copy" in page for page in _pages(together_home))
    bad = together_home.quarantine / "ZA-DHA" / "traveller_flows"
    assert sorted(p.name for p in bad.iterdir() if p.name.startswith("small")) == sorted(
        p.name for p in (singly_home.quarantine / "ZA-DHA" / "traveller_flows").iterdir()
        if p.name.startswith("small"))
