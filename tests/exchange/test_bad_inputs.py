"""Every kind of wrong file an agency may drop: each ends in quarantine unchanged with a report naming the
cause, nothing of it is published, and the hub goes on with the next file."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import stat

import pytest

from borderx.exchange import Runtime, run_once
from borderx.dev.samples import (
    GOODS_CROSSINGS_COLUMNS, TRAVELLER_FLOWS_COLUMNS, goods_crossings_rows, write_csv,
)

HEADER = ",".join(TRAVELLER_FLOWS_COLUMNS)
ROW = "2026-11-01,ZA-BEI,ENTRY,ZAF,18-29,F,ROAD,VISITOR,17"
ROW2 = "2026-11-01,ZA-BEI,EXIT,ZAF,18-29,F,ROAD,VISITOR,23"
GOOD = f"{HEADER}\n{ROW}\n{ROW2}\n".encode()

BAD = {
    "empty": b"",
    "header-only": f"{HEADER}\n".encode(),
    "wrong-header": ("when,where,way,who,age,sex,mode,category,count\n" + ROW + "\n").encode(),
    "missing-column": (HEADER.rsplit(",", 1)[0] + "\n" + ROW.rsplit(",", 1)[0] + "\n").encode(),
    "extra-column": (HEADER + ",passport_number\n" + ROW + ",A1234567\n").encode(),
    "semicolons": (HEADER.replace(",", ";") + "\n" + ROW.replace(",", ";") + "\n").encode(),
    "unbalanced-quotes": (HEADER + "\n" + ROW.replace("ZAF", '"ZAF') + "\n" + ROW2 + "\n").encode(),
    "truncated-last-line": (HEADER + "\n" + ROW + "\n" + ROW2[:20]).encode(),
    "nul-bytes": (HEADER + "\n" + ROW.replace("ZAF", "Z\x00F") + "\n").encode(),
    "latin-1": (HEADER + "\n" + ROW.replace("VISITOR", "VISITÉ") + "\n").encode("latin-1"),
    "utf-16": (HEADER + "\n" + ROW + "\n").encode("utf-16"),
    "one-huge-line": (HEADER + "\n" + "x" * (10 << 20) + "\n").encode(),
    "many-fields": (HEADER + "\n" + ",".join(["1"] * 200_000) + "\n").encode(),
    "out-of-range": (HEADER + "\n" + ROW.replace(",17", ",-17") + "\n").encode(),
    "wrong-types": (HEADER + "\n" + ROW.replace(",17", ",seventeen") + "\n").encode(),
    "duplicate-rows": (HEADER + "\n" + ROW + "\n" + ROW + "\n").encode(),
    "gzip": gzip.compress(GOOD),
}
ACCEPTED = {
    "bom": b"\xef\xbb\xbf" + GOOD,
    "crlf": GOOD.replace(b"\n", b"\r\n"),
}


def _drop(home, name: str, data: bytes):
    folder = home.intake / "ZA-DHA" / "traveller_flows"
    path = folder / name
    path.write_bytes(data)
    old = dt.datetime.now().timestamp() - 60
    os.utime(path, (old, old))
    return path


@pytest.fixture
def clean_home(demo_home):
    for path in demo_home.intake.rglob("*"):
        if path.is_file():
            path.unlink()
    return demo_home


def _published_sources(s3, bucket):
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        return set()
    return {json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())["source"]["name"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/")
            for o in page.get("Contents", []) if o["Key"].endswith("manifest.json")}


def test_each_bad_file_is_quarantined_unchanged_with_a_report(clean_home, s3_endpoint, bucket, s3):
    for kind, data in BAD.items():
        _drop(clean_home, f"{kind}.csv", data)
    _drop(clean_home, "zz-good.csv", GOOD)  # sorted last: the hub must still get to it
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    quarantined = {q["name"]: q for q in summary.quarantined}
    assert sorted(quarantined) == sorted(f"{k}.csv" for k in BAD)
    folder = clean_home.quarantine / "ZA-DHA" / "traveller_flows"
    for kind, data in BAD.items():
        assert (folder / f"{kind}.csv").read_bytes() == data, kind
        report = json.loads((folder / f"{kind}.csv.report.json").read_text())
        assert report["reasons"] and all(r["message"] for r in report["reasons"]), kind
        assert (folder / f"{kind}.csv.report.txt").read_text().startswith("QUARANTINED")
    assert _published_sources(s3, bucket) == {"zz-good.csv"}
    assert len(summary.published) == 2


def test_a_bom_and_crlf_line_ends_are_accepted(clean_home, s3_endpoint, bucket, s3):
    for kind, data in ACCEPTED.items():
        # Different rows so the two files are not the same content.
        _drop(clean_home, f"{kind}.csv", data.replace(b"17", b"18") if kind == "crlf" else data)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert not summary.quarantined, summary.quarantined
    assert _published_sources(s3, bucket) == {"bom.csv", "crlf.csv"}


def test_the_same_content_under_two_names_is_published_once(clean_home, s3_endpoint, bucket, s3):
    _drop(clean_home, "first.csv", GOOD)
    _drop(clean_home, "second.csv", GOOD)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert len(summary.published) == 2
    [dup] = summary.quarantined
    assert dup["name"] == "second.csv" and dup["reasons"][0]["rule"] == "duplicate"


def _unread_since_now(path) -> int:
    """Sets the access time before the modification time, so that any read moves it (relatime); returns it."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_mtime_ns - 10**12, st.st_mtime_ns))
    return os.stat(path).st_atime_ns


def _report(home, name):
    folder = home.quarantine / "ZA-DHA" / "traveller_flows"
    return json.loads((folder / f"{name}.report.json").read_text()), (folder / f"{name}.report.txt").read_text()


def test_a_symlink_is_quarantined_as_the_link_itself_and_its_target_is_never_read(
        clean_home, s3_endpoint, bucket, s3, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_bytes(GOOD)
    atime = _unread_since_now(outside)
    folder = clean_home.intake / "ZA-DHA" / "traveller_flows"
    (folder / "symlinked.csv").symlink_to(outside)
    _drop(clean_home, "zz-good.csv", GOOD.replace(b",17", b",19"))
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)

    [q] = summary.quarantined
    assert q["name"] == "symlinked.csv" and q["reasons"][0]["rule"] == "symlink"
    kept = clean_home.quarantine / "ZA-DHA" / "traveller_flows" / "symlinked.csv"
    assert kept.is_symlink() and os.readlink(kept) == str(outside), "the link itself, pointing where it did"
    assert not os.path.lexists(folder / "symlinked.csv")
    report, text = _report(clean_home, "symlinked.csv")
    assert report["entry"] == {"kind": "symbolic link", "target": str(outside)} and report["sha256"] is None
    assert str(outside) in text and "Links are never followed" in text
    assert os.stat(outside).st_atime_ns == atime, "the target was never read"
    assert outside.read_bytes() == GOOD
    assert _published_sources(s3, bucket) == {"zz-good.csv"}


def test_a_hard_link_is_quarantined_with_its_inode_and_never_read(clean_home, s3_endpoint, bucket, s3, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_bytes(GOOD)
    folder = clean_home.intake / "ZA-DHA" / "traveller_flows"
    os.link(outside, folder / "hardlinked.csv")
    atime = _unread_since_now(outside)
    _drop(clean_home, "zz-good.csv", GOOD.replace(b",17", b",19"))
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)

    [q] = summary.quarantined
    assert q["name"] == "hardlinked.csv" and q["reasons"][0]["rule"] == "hard-link"
    kept = clean_home.quarantine / "ZA-DHA" / "traveller_flows" / "hardlinked.csv"
    # Unchanged means the same inode: moved by rename, neither copied nor read, and still shared with its
    # outside name, which the hub left alone.
    assert kept.stat().st_ino == outside.stat().st_ino and outside.stat().st_nlink == 2
    assert os.stat(outside).st_atime_ns == atime, "never read"
    assert outside.read_bytes() == GOOD
    report, text = _report(clean_home, "hardlinked.csv")
    assert report["entry"]["inode"] == outside.stat().st_ino and report["entry"]["links"] == 2
    assert report["sha256"] is None and f"inode {outside.stat().st_ino}" in text and "find / -xdev -inum" in text
    assert _published_sources(s3, bucket) == {"zz-good.csv"}


def test_a_named_pipe_is_quarantined_without_the_hub_waiting_on_it(clean_home, s3_endpoint, bucket, s3):
    folder = clean_home.intake / "ZA-DHA" / "traveller_flows"
    os.mkfifo(folder / "pipe.csv")  # opening it to read would block until someone writes
    _drop(clean_home, "zz-good.csv", GOOD)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    [q] = summary.quarantined
    assert q["reasons"][0]["rule"] == "not-a-file" and "named pipe" in q["reasons"][0]["message"]
    assert stat.S_ISFIFO((clean_home.quarantine / "ZA-DHA" / "traveller_flows" / "pipe.csv").lstat().st_mode)
    assert _published_sources(s3, bucket) == {"zz-good.csv"}


def test_another_agencys_extract_in_the_wrong_folder_is_quarantined_naming_both(clean_home, s3_endpoint, bucket, s3):
    botswana = (f"{HEADER}\n" + ROW.replace("ZA-BEI", "BW-RAM") + "\n" + ROW2.replace("ZA-BEI", "BW-MART") + "\n"
                + ROW.replace("ZA-BEI", "ZA-LEB").replace(",17", ",31") + "\n").encode()
    _drop(clean_home, "bw-dic_flows.csv", botswana)
    _drop(clean_home, "zz-good.csv", GOOD)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)

    [q] = summary.quarantined
    [reason] = q["reasons"]
    assert reason["rule"] == "other-agency" and reason["column"] == "border_point"
    assert reason["rows"] == [1, 2] and reason["count"] == 2
    assert "BW-DIC" in reason["message"] and "ZA-DHA" in reason["message"]
    folder = clean_home.quarantine / "ZA-DHA" / "traveller_flows"
    assert (folder / "bw-dic_flows.csv").read_bytes() == botswana
    report, text = _report(clean_home, "bw-dic_flows.csv")
    assert "another agency" in text and "rows 1, 2" in text and "BW-RAM" not in text
    assert _published_sources(s3, bucket) == {"zz-good.csv"}


@pytest.mark.parametrize("name", ["with space.csv", "ünïcødé-ファイル.csv", "line\nbreak.csv", "..dots.csv"])
def test_odd_file_names_are_handled(clean_home, s3_endpoint, bucket, s3, name):
    _drop(clean_home, name, GOOD)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    if name.startswith("."):
        assert summary.files == 0  # hidden files are never taken
        return
    assert len(summary.published) == 2 and not summary.quarantined
    assert list((clean_home.archive / "ZA-DHA" / "traveller_flows").rglob(name))


def test_a_folder_for_an_unknown_dataset_is_reported_not_touched(clean_home, s3_endpoint, bucket):
    stray = clean_home.intake / "ZA-DHA" / "weather"
    stray.mkdir()
    (stray / "x.csv").write_bytes(GOOD)
    unknown_agency = clean_home.intake / "XX-NOBODY" / "traveller_flows"
    unknown_agency.mkdir(parents=True)
    (unknown_agency / "y.csv").write_bytes(GOOD)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert summary.files == 0 and not summary.published
    assert (stray / "x.csv").read_bytes() == GOOD and (unknown_agency / "y.csv").read_bytes() == GOOD


def test_customs_declarations_of_another_country_name_its_customs_agency(clean_home, s3_endpoint, bucket, s3):
    today = dt.date.today()
    folder = clean_home.intake / "ZA-SARS" / "goods_crossings"
    path = write_csv(folder / "declarations.csv", GOODS_CROSSINGS_COLUMNS,
                     goods_crossings_rows(["ZA-BEI", "BW-RAM"], today - dt.timedelta(days=3), 1, per_day=12))
    original = path.read_bytes()
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    [q] = summary.quarantined
    [reason] = q["reasons"]
    assert reason["rule"] == "other-agency" and reason["column"] == "customs_office" and 0 < reason["count"] < 12
    assert "BW-BURS" in reason["message"] and "ZA-SARS" in reason["message"]
    assert (clean_home.quarantine / "ZA-SARS" / "goods_crossings" / "declarations.csv").read_bytes() == original
    assert not _published_sources(s3, bucket)
