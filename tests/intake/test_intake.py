"""Intake: only complete files are taken, each placed by the folder it was dropped in; links and special files
are named without being read, and a file that changes after it was hashed is noticed."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest

from borderx.config.loader import load_config
from borderx.errors import IntakeError
from borderx.intake import (
    ChangedWhileRead, Extract, UnsafeEntry, check_entry, check_unchanged, fingerprint, foreign_codes, hash_taken,
    intake_file_for, is_candidate_name, is_complete, scan,
)


@pytest.mark.parametrize("name", [".hidden.csv", "x.csv.part", "x.csv.tmp", "x.csv~", "x.csv.crdownload",
                                  "x.csv.report.json", "x.csv.report.txt"])
def test_transfer_leftovers_and_reports_are_not_extracts(name):
    assert not is_candidate_name(name)


def test_a_plain_csv_is_an_extract():
    assert is_candidate_name("za-dha_flows_2026-11-21.csv")


def test_a_file_still_being_written_is_not_complete(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("period\n")
    assert not is_complete(path, settle_seconds=5)
    old = time.time() - 10
    os.utime(path, (old, old))
    assert is_complete(path, settle_seconds=5)


def test_a_symlink_is_judged_by_its_own_times_never_its_target(tmp_path):
    target = tmp_path / "elsewhere.csv"
    target.write_text("period\n")
    old = time.time() - 10
    os.utime(target, (old, old))
    link = tmp_path / "x.csv"
    link.symlink_to(target)
    assert not is_complete(link, settle_seconds=5)  # the link is new, however old its target
    os.utime(link, (old, old), follow_symlinks=False)
    assert is_complete(link, settle_seconds=5)
    os.utime(target, None)
    assert is_complete(link, settle_seconds=5)  # a fresh target does not hold the link back either


def test_check_entry_names_links_and_special_files_without_reading_them(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("period\n")
    (tmp_path / "sym.csv").symlink_to(outside)
    os.link(outside, tmp_path / "hard.csv")
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "plain.csv").write_text("period\n")
    rules = {}
    for name in ("sym.csv", "hard.csv", "pipe.csv"):
        with pytest.raises(UnsafeEntry) as caught:
            check_entry(tmp_path / name)
        rules[name] = caught.value
    assert rules["sym.csv"].rule == "symlink" and rules["sym.csv"].details["target"] == str(outside)
    assert rules["hard.csv"].rule == "hard-link" and rules["hard.csv"].details["links"] == 2
    assert rules["hard.csv"].details["inode"] == outside.stat().st_ino
    assert rules["pipe.csv"].rule == "not-a-file" and rules["pipe.csv"].details["kind"] == "named pipe"
    check_entry(tmp_path / "plain.csv")


def test_hash_taken_never_opens_a_pipe_or_follows_a_link(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")  # opening it for reading would block forever
    with pytest.raises(UnsafeEntry):
        hash_taken(tmp_path / "pipe.csv")
    (tmp_path / "sym.csv").symlink_to("/etc/hostname")
    with pytest.raises(UnsafeEntry, match="symbolic link to /etc/hostname"):
        hash_taken(tmp_path / "sym.csv")


def test_hash_taken_returns_the_hash_and_a_fingerprint_that_later_writes_break(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"period\n2026-11-01\n")
    digest, fp = hash_taken(path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    extract = Extract("ZA-DHA", "traveller_flows", str(path), "x.csv", fp[1], digest, "2026-11-01T00:00:00Z", fp)
    assert Extract.from_dict(json.loads(json.dumps(extract.to_dict()))) == extract  # survives an XCom
    check_unchanged(extract)
    with open(path, "r+b") as fh:  # same size, new content
        fh.write(b"PERIOD")
    with pytest.raises(ChangedWhileRead, match="rewritten"):
        check_unchanged(extract)
    with open(path, "ab") as fh:
        fh.write(b"2026-11-02\n")
    with pytest.raises(ChangedWhileRead, match="changed size"):
        check_unchanged(extract)
    (tmp_path / "y.csv").write_bytes(b"period\n2026-11-01\n")
    os.replace(tmp_path / "y.csv", path)  # as `mv` replaces it
    with pytest.raises(ChangedWhileRead, match="replaced"):
        check_unchanged(extract)


def test_foreign_codes_counts_rows_by_column_and_country(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("period,border_point,travellers\n2026-11-01,ZA-BEI,5\n2026-11-01,BW-RAM,6\n"
                    "2026-11-02,BW-MART,7\n2026-11-02,NA-X1,8\n2026-11-03,not a code,9\n")
    found = foreign_codes(path, "ZA")
    assert [(f.column, f.country, f.count, f.rows) for f in found] == [
        ("border_point", "BW", 2, (2, 3)), ("border_point", "NA", 1, (4,))]
    assert foreign_codes(path, "BW")[0].country == "NA" and foreign_codes(path, "BW")[-1].rows == (1,)
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe not csv at all \x00")
    assert foreign_codes(tmp_path / "bad.csv", "ZA") == []


def test_foreign_codes_in_a_parquet_extract(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "x.parquet"
    table = pa.table({"period": ["2026-11-01"] * 4, "border_point": ["ZA-BEI", None, "BW-RAM", "BW-MART"],
                      "travellers": [5, 6, 7, 8]})
    pq.write_table(table, path, row_group_size=2)
    found = foreign_codes(path, "ZA")
    assert [(f.column, f.country, f.count, f.rows) for f in found] == [("border_point", "BW", 2, (3, 4))]
    (tmp_path / "bad.parquet").write_text("period,border_point\n2026-11-01,BW-RAM\n")
    assert foreign_codes(tmp_path / "bad.parquet", "ZA") == []


def test_scan_finds_complete_files_per_agency_and_dataset(demo_home):
    config = load_config(demo_home.root)
    folder = demo_home.intake / "ZA-DHA" / "traveller_flows"
    (folder / "fresh.csv").write_text("still arriving")
    found = scan(config, demo_home, settle_seconds=5)
    names = {(f.agency, f.dataset, f.name) for f in found}
    assert len(found) == 6
    assert {(agency, dataset) for agency, dataset, _ in names} == {
        ("ZA-DHA", "traveller_flows"), ("BW-DIC", "traveller_flows"), ("ZA-SARS", "goods_crossings")}
    assert "fresh.csv" not in {n for _, _, n in names}
    assert not any(n.endswith(".part") for _, _, n in names)


def test_a_given_file_is_placed_by_its_folder(demo_home):
    config = load_config(demo_home.root)
    path = next((demo_home.intake / "BW-DIC" / "traveller_flows").glob("*.csv"))
    placed = intake_file_for(config, demo_home, path.relative_to(demo_home.root))
    assert (placed.agency, placed.dataset, placed.name) == ("BW-DIC", "traveller_flows", path.name)
    stray = demo_home.root / "elsewhere.csv"
    stray.write_text("x")
    with pytest.raises(IntakeError, match="not in the intake folder"):
        intake_file_for(config, demo_home, stray)


def test_a_rehash_catches_a_change_that_the_timestamps_cannot_show(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"period\n2026-11-01\n")
    digest, fp = hash_taken(path)
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.write(b"PERIOD")
    # Put the times back, as a coarse clock would have left them: only the content tells now.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    disguised = fingerprint(path.lstat())
    extract = Extract("ZA-DHA", "traveller_flows", str(path), "x.csv", fp[1], digest, "2026-11-01T00:00:00Z",
                      disguised)
    check_unchanged(extract)
    with pytest.raises(ChangedWhileRead, match="no longer has the content"):
        check_unchanged(extract, rehash=True)


def test_what_dag_files_read_comes_from_the_one_loader_and_a_broken_agency_file_is_an_error(demo_home):
    from borderx.errors import ConfigError
    from borderx.intake.sources.pull import pull_schedules
    from borderx.intake.sources.s3_uploads import s3_intake_agencies
    from borderx.intake.watch import watched_agencies

    assert watched_agencies(demo_home.root) == ["BW-DIC", "ZA-DHA", "ZA-SARS"]
    assert pull_schedules(demo_home.root) == {} and s3_intake_agencies(demo_home.root) == []
    (demo_home.config / "agencies" / "ZA-DHA.yaml").write_text("id: ZA-DHA\nname: [unclosed\n")
    for read in (watched_agencies, pull_schedules, s3_intake_agencies):
        with pytest.raises(ConfigError, match="config/agencies/ZA-DHA.yaml: line 3: not valid YAML"):
            read(demo_home.root)
