"""Files still within their settle time: `borderx run --once` says how many wait and for how long, and `--wait`
takes them once they are whole."""

from __future__ import annotations

import os
import time

from borderx.cli import main
from borderx.exchange import run_once

from borderx.dev.samples import TRAVELLER_FLOWS_COLUMNS

GOOD = (",".join(TRAVELLER_FLOWS_COLUMNS) + "\n2026-11-01,ZA-BEI,ENTRY,ZAF,18-29,F,ROAD,VISITOR,17\n"
        "2026-11-01,ZA-BEI,EXIT,ZAF,18-29,F,ROAD,VISITOR,23\n").encode()


def _fresh(folder, count: int) -> list:
    """Files written just now, as if still arriving."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for n in range(count):
        path = folder / f"arriving-{n:02d}.csv"
        path.write_bytes(GOOD.replace(b"2026-11-01", f"2026-10-{n + 1:02d}".encode()))
        made.append(path)
    return made


def _age(paths, seconds: float) -> None:
    for path in (p for p in paths if p.exists()):
        past = path.stat().st_mtime - seconds
        os.utime(path, (past, past))


def test_run_once_counts_files_within_their_settle_time_and_says_how_long_they_wait(
        demo_home, s3_endpoint, bucket, capsys):
    for path in (demo_home.intake).rglob("*.csv"):
        path.unlink()
    folder = demo_home.intake / "ZA-DHA" / "traveller_flows"
    arriving = _fresh(folder, 12)
    _age(arriving[6:], 30)  # half of them written 30 s ago: 60 - 30 s left

    capsys.readouterr()
    code = main(["run", "--once", "--settle", "60", "--home", str(demo_home.root), "--s3-endpoint", s3_endpoint,
                 "--bucket", bucket])
    out = capsys.readouterr().out
    assert code == 0
    assert "0 file(s) found" in out
    assert "12 file(s) still being written or within their settle time, complete in 30 to 60 s" in out
    assert "--wait" in out
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in arriving], "nothing taken"


def test_run_once_without_files_waiting_says_nothing_of_settling(runtime, capsys):
    from borderx.cli.summary import print_run_summary

    summary = run_once(runtime, settle_seconds=0)
    assert summary.settling == []
    print_run_summary(runtime, summary)
    assert "settle" not in capsys.readouterr().out


def test_wait_takes_the_files_once_they_settle(runtime):
    for path in runtime.home.intake.rglob("*.csv"):
        path.unlink()
    arriving = _fresh(runtime.home.intake / "ZA-DHA" / "traveller_flows", 3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        # Instead of waiting, the clock of the files moves: they were written `seconds` earlier.
        slept.append(seconds)
        _age(arriving, seconds)

    without = run_once(runtime, settle_seconds=20)
    assert (without.files, len(without.settling)) == (0, 3)
    summary = run_once(runtime, settle_seconds=20, wait=True, sleep=sleep)
    assert summary.files == 3 and summary.settling == []
    assert len(summary.published) == 3 * 2, "each file to both of its recipients"
    assert slept and 15 < slept[0] <= 20 and sum(slept) <= 21, "it waited only as long as the files needed"
    assert not any(p.exists() for p in arriving)


def test_a_signature_still_arriving_holds_its_file_back(runtime):
    from borderx.intake import scan, settling

    for path in runtime.home.intake.rglob("*.csv"):
        path.unlink()
    (extract,) = _fresh(runtime.home.intake / "ZA-DHA" / "traveller_flows", 1)
    _age([extract], 3600)
    signature = extract.with_name(extract.name + ".sig")
    signature.write_bytes(b"arriving")
    now = time.time()
    assert scan(runtime.config, runtime.home, 10) == []
    (left,) = settling(runtime.config, runtime.home, 10, now=now)
    assert 9 < left <= 10
