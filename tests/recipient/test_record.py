"""The record of what was fetched into an output folder."""

from __future__ import annotations

import json

import pytest

from borderx.bucket.objects import parse_location
from borderx.errors import RecipientError
from borderx.recipient import RECORD_FILE, FetchedRecord
from borderx.recipient.listing import local_folder

PREFIX = "deliveries/DSA-2026-001/NA-MHAISS/traveller_flows/2026/11/28/{}/"


def _location(n: int):
    return parse_location(PREFIX.format(f"{n:032x}"))


def test_two_records_of_one_folder_keep_each_others_additions(tmp_path):
    first, second = FetchedRecord(tmp_path), FetchedRecord(tmp_path)
    first.add(_location(1), local_folder(tmp_path, _location(1)))
    second.add(_location(2), local_folder(tmp_path, _location(2)))
    again = FetchedRecord(tmp_path)
    assert _location(1) in again and _location(2) in again
    saved = json.loads((tmp_path / RECORD_FILE).read_text())["fetched"]
    assert saved[_location(1).prefix]["folder"] == "DSA-2026-001/traveller_flows/2026-11-28_" + f"{1:032x}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORD_FILE], "no temporary file is left"


@pytest.mark.parametrize("body", ["not json", '{"version": 2, "fetched": {}}', '{"version": 1, "fetched": []}'])
def test_a_record_that_is_not_one_is_named_and_left_alone(tmp_path, body):
    (tmp_path / RECORD_FILE).write_text(body)
    with pytest.raises(RecipientError) as caught:
        FetchedRecord(tmp_path)
    assert str(tmp_path / RECORD_FILE) in str(caught.value) and "not a record of fetched deliveries" in str(caught.value)
    assert (tmp_path / RECORD_FILE).read_text() == body
