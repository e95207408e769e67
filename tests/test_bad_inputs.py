"""Every kind of wrong file an agency may drop: each ends in quarantine unchanged with a report naming the
cause, nothing of it is published, and the hub goes on with the next file."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os

import pytest

from borderx.exchange import Runtime, run_once
from borderx.samples import TRAVELLER_FLOWS_COLUMNS

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


def test_links_pointing_outside_the_intake_are_not_followed(clean_home, s3_endpoint, bucket, s3, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_bytes(GOOD)
    folder = clean_home.intake / "ZA-DHA" / "traveller_flows"
    (folder / "symlinked.csv").symlink_to(outside)
    summary = run_once(Runtime.open(clean_home.root, endpoint_url=s3_endpoint, bucket=bucket), settle_seconds=0)
    assert not summary.published
    assert outside.read_bytes() == GOOD
    assert not _published_sources(s3, bucket)


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
