"""Intake: only complete files are taken, and each is placed by the folder it was dropped in."""

from __future__ import annotations

import os
import time

import pytest

from borderx.config.loader import load_config
from borderx.errors import IntakeError
from borderx.intake import intake_file_for, is_candidate_name, is_complete, scan


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


def test_a_symlink_is_never_complete(tmp_path):
    target = tmp_path / "elsewhere.csv"
    target.write_text("period\n")
    link = tmp_path / "x.csv"
    link.symlink_to(target)
    old = time.time() - 10
    os.utime(target, (old, old))
    assert not is_complete(link, settle_seconds=0)


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
