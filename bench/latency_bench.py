"""Drop-to-published latency under a real `airflow standalone`: how long from a file landing in an intake
folder to its signed manifest in the bucket, and where that time goes.

Starts the same stack as `borderx airflow` (plugins/borderx/dev/stack.py) on a fresh demo home in a temp
folder, with a local S3 endpoint, then drops small, distinct, valid extracts into the intake folders, the
way transfer tools do (written under a .part name, then renamed into place), and times each one:

    landed     the rename into place (the clock starts here)
    announced  the asset event the intake trigger fired (asset_event.timestamp)
    queued     the dag run created for it (dag_run.queued_at)
    <task>     start and end of each task instance of that run that ran (task_instance; a lone small file
               is done in `intake`, and the mapped stages are skipped)
    signed     the first, then the last, manifest.json.sig of the file in the bucket: the moment the stack's S3
               endpoint answered its PUT (bench/s3_clock.py, in a process of its own, writes it down, so the
               bucket is not listed over and over while the stack works)

The run is found through the manifest, which names its dag and run ids. Run from the project root:

    .venv/bin/python bench/latency_bench.py                  # 20 drops, one at a time
    .venv/bin/python bench/latency_bench.py --drops 40 --every 3   # a new file every 3 s, whatever is in flight
    .venv/bin/python bench/latency_bench.py --drops 100 --every 0.1 --one-folder   # a burst into one folder

Beside it, the floor: the same files, in the order and at the moments they landed, hashed, encrypted with the
`age` CLI for each of two recipients and uploaded with boto3 in one loop (to a moto server of its own, after
the stack has stopped), and the drop-to-uploaded latency that loop would have had.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from borderx.dev import stack as airflow_stack  # noqa: E402
from borderx.dev import samples  # noqa: E402
from borderx.home import Home  # noqa: E402

# (agency, dataset, border points or offices): every provider of the demo's agreements.
SOURCES = [
    ("ZA-DHA", "traveller_flows", ["ZA-BEI", "ZA-LEB"]),
    ("BW-DIC", "traveller_flows", ["BW-RAM", "BW-MART"]),
    ("ZA-SARS", "goods_crossings", ["ZA-BEI", "ZA-LEB"]),
]
GOAL_MEDIAN = 10.0
# 100 files dropped 10 a second into one folder under the LocalExecutor (--drops 100 --every 0.1 --one-folder).
BURST_MEDIAN, BURST_P95 = 5.0, 15.0


@dataclass
class Drop:
    n: int
    agency: str
    dataset: str
    name: str
    sha256: str
    landed: float  # wall clock, so it compares with Airflow's own timestamps
    signed: list[float] = field(default_factory=list)
    run_id: str | None = None
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> float | None:
        return max(self.signed) - self.landed if self.signed else None


def write_extract(folder: Path, n: int, agency: str, dataset: str, points: list[str], salt: int) -> tuple[Path, str]:
    """A small valid extract, distinct from every other (its seed and days differ, and from earlier benches on
    the same --home by `salt`: the hub would quarantine the same content twice), written under a .part name."""
    import hashlib

    start = dt.date.today() - dt.timedelta(days=30 + n)
    name = f"{agency.lower()}_{dataset}_{n:03d}.csv"
    partial = folder / f"{name}.part"
    if dataset == "traveller_flows":
        samples.write_csv(partial, samples.TRAVELLER_FLOWS_COLUMNS,
                          samples.traveller_flows_rows(points, start, 3, seed=salt + n, small_every=0))
    else:
        samples.write_csv(partial, samples.GOODS_CROSSINGS_COLUMNS,
                          samples.goods_crossings_rows(points, start, 3, seed=salt + n))
    return partial, hashlib.sha256(partial.read_bytes()).hexdigest()


class Bucket:
    """Signed deliveries in the bucket, by source hash, with the wall time each signature's PUT was answered
    (as `s3_clock.py`, the stack's endpoint, wrote it down)."""

    def __init__(self, endpoint: str, bucket: str, record: Path):
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        self.bucket = bucket
        self.record = record
        self.read_to = 0
        self.seen: dict[str, tuple[float, str, str]] = {}  # signature key -> (answered, source sha, run id)

    def poll(self) -> None:
        with open(self.record, encoding="utf-8") as record:
            record.seek(self.read_to)
            lines = record.read()
        complete = lines[:lines.rfind("\n") + 1]
        self.read_to += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            answered, key = line.split(" ", 1)
            if key in self.seen:
                continue
            body = self.s3.get_object(Bucket=self.bucket, Key=key.removesuffix(".sig"))["Body"].read()
            manifest = json.loads(body)
            self.seen[key] = (float(answered), manifest["source"]["sha256"],
                              (manifest.get("airflow") or {}).get("run_id"))

    def for_source(self, sha256: str) -> list[tuple[float, str]]:
        return [(t, run) for t, sha, run in self.seen.values() if sha == sha256]


@contextlib.contextmanager
def clocked_endpoint(home: Home, record: Path):
    """The stack's S3 endpoint in a process of its own (`s3_clock.py`), with the home's local TSA beside it,
    as `borderx airflow` would start the two; yields the endpoint's URL."""
    import subprocess

    from borderx.dev.local_s3 import LOCAL_CREDENTIALS
    from borderx.dev.tsa import local_tsa_for_home

    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    record.touch()
    endpoint = subprocess.Popen([sys.executable, str(REPO / "bench" / "s3_clock.py"), "--record", str(record)],
                                stdout=subprocess.PIPE, text=True)
    try:
        line = endpoint.stdout.readline()
        if not line.startswith("S3 endpoint: "):
            raise RuntimeError(f"bench/s3_clock.py did not start: {line!r}")
        with local_tsa_for_home(home.root):
            yield line.split(": ", 1)[1].strip()
    finally:
        endpoint.terminate()
        endpoint.wait(timeout=30)


def _wall(value) -> float | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def read_phases(stack, drop: Drop) -> None:
    """Fills in when each step of the drop's run happened, from Airflow's metadata database."""
    run = stack.query("SELECT id, queued_at, start_date, end_date FROM dag_run WHERE dag_id = 'borderx_exchange' "
                      "AND run_id = ?", drop.run_id)
    if not run:
        return
    run_pk, queued, started, ended = run[0]
    events = stack.query("SELECT MIN(e.timestamp) FROM asset_event e JOIN dagrun_asset_event d ON d.event_id = e.id "
                         "WHERE d.dag_run_id = ?", run_pk)
    marks = {"announced": events[0][0] if events else None, "queued": queued, "run started": started}
    for task_id, map_index, t_start, t_end in stack.query(
            "SELECT task_id, map_index, start_date, end_date FROM task_instance WHERE dag_id = 'borderx_exchange' "
            "AND run_id = ? AND state != 'skipped' ORDER BY start_date", drop.run_id):
        label = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        marks[f"{label} start"] = t_start
        marks[f"{label} end"] = t_end
    marks["run ended"] = ended
    for name, value in marks.items():
        wall = _wall(value)
        if wall is not None:
            drop.phases[name] = wall - drop.landed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drops", type=int, default=20, help="files to time (default 20)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed drops first: the first task of a fresh stack starts its worker (default 1)")
    parser.add_argument("--every", type=float, default=0.0, metavar="SECONDS",
                        help="drop a file every SECONDS whatever is in flight (default: one at a time, the next "
                             "one a second after the previous one is published)")
    parser.add_argument("--port", type=int, default=0, help="Airflow API port (default: a free one)")
    parser.add_argument("--home", metavar="DIR", help="home to use (default: a fresh one in a temp folder, removed "
                        "afterwards); made with the demo's set-up if it does not exist")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for one drop (default 120)")
    parser.add_argument("--json", metavar="FILE", help="also write every drop's timings as JSON here")
    parser.add_argument("--one-folder", action="store_true",
                        help="drop every file into ZA-DHA's traveller_flows folder (default: each provider in turn)")
    parser.add_argument("--age", default=shutil.which("age") or "/usr/bin/age", help="age CLI, for the floor")
    args = parser.parse_args(argv)

    scratch = None
    if args.home:
        root = Path(args.home)
    else:
        scratch = Path(tempfile.mkdtemp(prefix="borderx-latency-"))
        root = scratch / "home"
    status = 1
    try:
        home, _ = airflow_stack.ensure_home(root)
        status = bench(home, args)
        return status
    finally:
        if scratch is not None and status == 0:
            shutil.rmtree(scratch, ignore_errors=True)
        elif scratch is not None:
            print(f"kept {scratch} for a look (Airflow's task logs are under home/airflow/logs)")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(home: Home, args) -> int:
    from borderx.config.loader import load_config

    config = load_config(home.root)
    bucket_name = os.environ.get("BORDERX_BUCKET") or config.settings.s3.bucket
    folders = {(a, d): home.intake_folder(a, d, config.agencies[a].intake.folder) for a, d, _ in SOURCES}
    port = args.port or _free_port()
    print(f"load before start (1/5/15 min): {load()}", flush=True)
    started = time.monotonic()
    clock = tempfile.TemporaryDirectory(prefix="borderx-latency-clock-")
    record = Path(clock.name) / "signed.txt"
    with clock, clocked_endpoint(home, record) as endpoint, airflow_stack.running(
            home, port=port, s3_endpoint=endpoint, on_progress=lambda line: print(f"  {line}", flush=True)) as stack:
        print(f"stack ready in {time.monotonic() - started:.0f} s; load {load()}", flush=True)
        bucket = Bucket(stack.s3_endpoint, bucket_name, record)
        drops: list[Drop] = []
        total = args.warmup + args.drops
        salt = 1000 * (int(time.time()) % 1_000_000)
        copies = Path(tempfile.mkdtemp(prefix="borderx-latency-floor-"))
        for n in range(total):
            agency, dataset, points = SOURCES[0 if args.one_folder else n % len(SOURCES)]
            partial, sha = write_extract(folders[(agency, dataset)], n, agency, dataset, points, salt)
            shutil.copyfile(partial, copies / f"{n:05d}.csv")
            target = partial.with_name(partial.name.removesuffix(".part"))
            os.replace(partial, target)
            drops.append(Drop(n, agency, dataset, target.name, sha, time.time()))
            if args.every and n >= args.warmup:
                _collect(bucket, drops, until=time.monotonic() + args.every)
            else:
                _wait_for(bucket, drops[-1], args.timeout)
                _collect(bucket, drops, until=time.monotonic() + 1.0)
            if n + 1 == args.warmup:
                _until_idle(stack, args.timeout)
        deadline = time.monotonic() + args.timeout
        while any(len(d.signed) < 2 for d in drops) and time.monotonic() < deadline:
            _collect(bucket, drops, until=time.monotonic() + 0.5)
        time.sleep(3)  # lets the runs' last task instances record their end
        for d in drops:
            read_phases(stack, d)
        load_after = load()
    timed = drops[args.warmup:]
    report(timed, drops[:args.warmup], load_after)
    try:
        report_floor(floor_latencies(home, copies, drops, args.age)[args.warmup:])
    finally:
        shutil.rmtree(copies, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps([d.__dict__ for d in drops], indent=1), encoding="utf-8")
    done = [d.done for d in timed if d.done is not None]
    return 0 if len(done) == len(timed) and statistics.median(done) < GOAL_MEDIAN else 1


def floor_latencies(home: Home, copies: Path, drops: list[Drop], age: str) -> list[float]:
    """Drop-to-uploaded seconds of each drop had one loop hashed, age-encrypted (two recipients) and uploaded it
    with boto3 as it landed, one file after the other: each file's cost is measured, its wait is simulated."""
    import hashlib
    import subprocess

    import boto3

    from borderx.config.loader import load_config
    from borderx.dev.local_s3 import local_s3

    config = load_config(home.root)
    keys = [config.agencies[a].age_recipients[0].key for a in ("ZA-SARS", "NA-MHAISS")]
    costs = []
    with local_s3() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket="floor")
        for path in sorted(copies.iterdir()):
            started = time.perf_counter()
            hashlib.sha256(path.read_bytes()).hexdigest()
            for r, key in enumerate(keys):
                encrypted = path.with_suffix(f".{r}.age")
                subprocess.run([age, "-r", key, "-o", str(encrypted), str(path)], check=True)
                s3.upload_file(str(encrypted), "floor", f"floor/{path.stem}/{r}/data.csv.age")
                encrypted.unlink()
            costs.append(time.perf_counter() - started)
    finished, latencies = 0.0, []
    for drop, cost in zip(drops, costs):
        finished = max(finished, drop.landed) + cost
        latencies.append(finished - drop.landed)
    return latencies


def report_floor(latencies: list[float]) -> None:
    if latencies:
        print(f"floor (sha256, age -r x2, boto3 upload x2 in one loop, as the files landed): median "
              f"{statistics.median(latencies):.2f} s, p95 {percentile(latencies, 0.95):.2f} s")


def _collect(bucket: Bucket, drops: list[Drop], until: float) -> None:
    while True:
        bucket.poll()
        for d in drops:
            found = bucket.for_source(d.sha256)
            d.signed = sorted(t for t, _ in found)
            if found and not d.run_id:
                d.run_id = found[0][1]
        if time.monotonic() >= until:
            return
        time.sleep(0.1)


def _until_idle(stack, timeout: float) -> None:
    """Waits out the runs a fresh stack starts by itself (every scheduled DAG runs once when it first appears,
    the sweep among them), so the timed drops meet a hub at work rather than one starting up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = stack.query("SELECT dag_id, run_id FROM dag_run WHERE state IN ('queued', 'running')")
        if not busy:
            print(f"  stack idle; load {load()}", flush=True)
            return
        time.sleep(0.5)
    print(f"  runs still going after {timeout:.0f} s: {busy[:5]}", flush=True)


def _wait_for(bucket: Bucket, drop: Drop, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(drop.signed) < 2 and time.monotonic() < deadline:
        _collect(bucket, [drop], until=time.monotonic())
        time.sleep(0.1)
    if len(drop.signed) < 2:
        print(f"  drop {drop.n} ({drop.name}) not published within {timeout:.0f} s", flush=True)


def report(timed: list[Drop], warm: list[Drop], load_after: str) -> None:
    print()
    for d in warm:
        print(f"warm-up {d.name}: {d.done:.1f} s" if d.done is not None else f"warm-up {d.name}: not published")
    print(f"{'#':>3} {'file':34} {'first sig':>9} {'all sigs':>9}  run")
    for d in timed:
        first = f"{min(d.signed) - d.landed:9.1f}" if d.signed else f"{'-':>9}"
        last = f"{d.done:9.1f}" if d.done is not None else f"{'-':>9}"
        print(f"{d.n:3d} {d.name:34} {first} {last}  {d.run_id or '-'}")
    done = [d.done for d in timed if d.done is not None]
    firsts = [min(d.signed) - d.landed for d in timed if d.signed]
    if not done:
        print("nothing was published")
        return
    print()
    print(f"drop to every delivery signed: median {statistics.median(done):.1f} s, p95 {percentile(done, 0.95):.1f} s, "
          f"min {min(done):.1f} s, max {max(done):.1f} s ({len(done)}/{len(timed)} published)")
    print(f"drop to first delivery signed: median {statistics.median(firsts):.1f} s, "
          f"p95 {percentile(firsts, 0.95):.1f} s")
    print(f"goal: median under {GOAL_MEDIAN:.0f} s: {'met' if statistics.median(done) < GOAL_MEDIAN else 'NOT met'}")
    print(f"burst goal (median at most {BURST_MEDIAN:.0f} s, p95 at most {BURST_P95:.0f} s): "
          f"{'met' if statistics.median(done) <= BURST_MEDIAN and percentile(done, 0.95) <= BURST_P95 else 'NOT met'}")
    twice = [d.name for d in timed if len(d.signed) > 2]
    print(f"published more than once: {len(twice)}" + (f" ({', '.join(twice[:5])})" if twice else ""))
    names: list[str] = []
    for d in timed:
        for name in d.phases:
            if name not in names:
                names.append(name)
    names.sort(key=lambda name: statistics.median([d.phases[name] for d in timed if name in d.phases]))
    print("\nphases, seconds after the file landed (median, p95, over the drops that had them):")
    for name in names:
        values = [d.phases[name] for d in timed if name in d.phases]
        print(f"  {name:24} {statistics.median(values):6.1f} {percentile(values, 0.95):6.1f}   ({len(values)})")
    print(f"\nload at the end (1/5/15 min): {load_after}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    sys.exit(main())
