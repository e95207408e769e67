"""Pull over SFTP: how fast the hub copies extracts from an SFTP server, against OpenSSH's own `sftp` client
on the same files, and how much memory the copy takes.

Starts an OpenSSH server on 127.0.0.1 (as the tests do, tests/sshd.py), writes FILES random files of SIZE
under its export folder, and times, in turn: `pull()` of a fresh demo home (through Airflow's SFTP hook,
the copy-in and the audit trail), with and without `compress`, and `sftp -b` getting the same files into a
temp folder. Each pull starts from an empty copy store, so every round copies everything. Run from the
project root:

    .venv/bin/python bench/sftp_bench.py                        # 4 files of 64 MiB, best of 3
    .venv/bin/python bench/sftp_bench.py --files 1 --size 1GiB --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO / "tests")]

from borderx.config.loader import load_config  # noqa: E402
from borderx.dev.demo import prepare_home  # noqa: E402
from borderx.intake.sources.pull import pull  # noqa: E402
from sshd import start_sshd  # noqa: E402

AGENCY, DATASET, KEY_ENV = "ZA-DHA", "traveller_flows", "BORDERX_BENCH_SFTP_KEY"
UNITS = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10, "GB": 10**9, "MB": 10**6, "KB": 10**3}


def size_of(text: str) -> int:
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def write_files(folder: Path, files: int, size: int) -> None:
    folder.mkdir(parents=True)
    old = time.time() - 3600
    for i in range(files):
        path = folder / f"bench_{i:03}.csv"
        with open(path, "wb") as fh:
            left = size
            while left:
                block = os.urandom(min(left, 1 << 20))
                fh.write(block)
                left -= len(block)
        os.utime(path, (old, old))


def fresh_home(root: Path, server, exports: Path, compress: bool):
    home = prepare_home(root, dt.date.today())
    path = home.config / "agencies" / f"{AGENCY}.yaml"
    data = yaml.safe_load(path.read_text())
    data["pull"] = {"sftp": {"host": "127.0.0.1", "port": server.port, "user": server.user, "path": str(exports),
                             "host_key": server.host_key, "key": {"env": KEY_ENV},
                             "compress": compress}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return home


def time_pull(work: Path, server, exports: Path, round_: int, compress: bool) -> float:
    home = fresh_home(work / f"home{round_}", server, exports, compress)
    config = load_config(home.root)
    start = time.perf_counter()
    result = pull(config, home, AGENCY)
    took = time.perf_counter() - start
    assert all(o.status == "copied" for o in result.outcomes), result.to_dict()
    shutil.rmtree(home.root)
    return took


def time_openssh(work: Path, server, exports: Path, round_: int) -> float:
    target = work / f"openssh{round_}"
    target.mkdir()
    batch = work / "batch"
    batch.write_text(f"get {exports / DATASET}/* {target}/\n")
    command = ["sftp", "-q", "-b", str(batch), "-i", str(server.root / "client_ed25519"), "-P", str(server.port),
               "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={work / 'known_hosts'}",
               f"{server.user}@127.0.0.1"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - start
    shutil.rmtree(target)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size", default="64MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = size_of(args.size)
    with tempfile.TemporaryDirectory(prefix="borderx-sftp-bench-") as tmp:
        work = Path(tmp)
        server = start_sshd(work / "sshd")
        try:
            exports = work / "exports"
            write_files(exports / DATASET, args.files, size)
            os.environ[KEY_ENV] = server.client_key
            total = args.files * size / (1 << 20)
            hub = {c: min(time_pull(work, server, exports, r, c) for r in range(args.repeat)) for c in (False, True)}
            openssh = min(time_openssh(work, server, exports, r) for r in range(args.repeat))
        finally:
            server.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.files} x {args.size} over SFTP on 127.0.0.1, best of {args.repeat}:")
    for compress, took in hub.items():
        label = f"borderx pull, compress: {str(compress).lower()}"
        print(f"  {label:41} {took:7.2f} s  {total / took:8.1f} MiB/s")
    print(f"  OpenSSH sftp -b get                       {openssh:7.2f} s  {total / openssh:8.1f} MiB/s")
    print(f"  peak RSS of this process                  {peak:7.0f} MiB")


if __name__ == "__main__":
    main()
