"""Many small extracts through `borderx run --once`, beside their floor.

Run by hand from the project root, e.g. ``.venv/bin/python bench/small_files_bench.py --files 300``; see
bench/README.md. The whole command is timed (interpreter start-up, imports and config loading included), on a
fresh demo home (two recipients of ZA-DHA's traveller_flows: ZA-SARS and NA-MHAISS) with a moto S3 server. The
floor does the least the hub must do with the same files in one Python loop: hash each file, encrypt it with the
`age` CLI once per recipient, and upload each ciphertext with boto3. A third run counts the S3 requests the hub
makes, by kind, per delivery; a fourth makes only as many PUTs, from four threads: what the S3 endpoint
alone allows on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from age_bench import human, parse_size  # noqa: E402
from exchange_bench import BUCKET, PLUGINS, Bench, make_extract, measure  # noqa: E402

FLOOR = r"""
import hashlib, json, subprocess, sys
from pathlib import Path
import boto3

args = json.loads(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1")
out = Path(args["out"])
for n, path in enumerate(sorted(Path(args["src"]).iterdir())):
    hashlib.sha256(path.read_bytes()).hexdigest()
    for r, key in enumerate(args["keys"]):
        enc = out / f"{n}-{r}.age"
        subprocess.run([args["age"], "-r", key, "-o", str(enc), str(path)], check=True)
        s3.upload_file(str(enc), args["bucket"], f"floor/{n}/{r}/data.csv.age")
        enc.unlink()
"""

# The endpoint alone: as many PUTs as the hub makes (three per delivery), each of the extracts' size and with the
# hub's checksum, on as many threads as the hub delivers on, and nothing else. No exchange of these files can be
# faster on this machine.
PUTS_ONLY = r"""
import json, os, sys
from concurrent.futures import ThreadPoolExecutor
import boto3
from botocore.config import Config

args = json.loads(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1",
                  config=Config(max_pool_connections=args["threads"]))
body = os.urandom(args["size"])
with ThreadPoolExecutor(args["threads"]) as pool:
    list(pool.map(lambda n: s3.put_object(Bucket=args["bucket"], Key=f"puts/{n}", Body=body,
                                          ChecksumAlgorithm="SHA256"), range(args["puts"])))
"""

# borderx run --once with every HTTP request to S3 counted by operation, printed as JSON at the end.
COUNTED = r"""
import atexit, collections, json, sys
import botocore.endpoint

calls = collections.Counter()
send = botocore.endpoint.Endpoint.make_request

def make_request(self, operation_model, request_dict):
    calls[operation_model.name] += 1
    return send(self, operation_model, request_dict)

botocore.endpoint.Endpoint.make_request = make_request
atexit.register(lambda: print("S3-CALLS " + json.dumps(calls), file=sys.stderr))
sys.argv = ["borderx"] + sys.argv[1:]
from borderx.cli import main
sys.exit(main())
"""

# borderx run --once under cProfile, its deliveries made in the main thread (the profiler sees no other), one
# after another: the profile shows what each costs, waiting included, not how they overlap.
PROFILED = r"""
import cProfile, sys
from concurrent.futures import Future
import borderx.exchange.spine as spine

class InTurn:
    def __init__(self, max_workers=None):
        pass
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def map(self, fn, items):
        return [fn(item) for item in items]
    def submit(self, fn, *args):
        done = Future()
        done.set_result(fn(*args))
        return done

spine.ThreadPoolExecutor = InTurn
out = sys.argv[1]
sys.argv = ["borderx"] + sys.argv[2:]
from borderx.cli import main
cProfile.run("main()", out)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=300, help="how many extracts (default 300)")
    parser.add_argument("--size", type=parse_size, default=parse_size("9KB"), help="each (default 9KB)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each side; the best counts")
    parser.add_argument("--age", default=shutil.which("age") or "/usr/bin/age", help="age CLI, for the floor")
    parser.add_argument("--tmpdir", default=None)
    parser.add_argument("--profile", action="store_true",
                        help="also run the command under cProfile and show where the time goes")
    parser.add_argument("--top", type=int, default=25, help="with --profile: how many functions to list")
    parser.add_argument("--save-profile", type=Path, metavar="FILE",
                        help="with --profile: keep the cProfile data there, for pstats or snakeviz")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="borderx-small-", dir=args.tmpdir))
    bench = Bench(argparse.Namespace(workers=0, warmup=0, repeat=args.repeat), tmp)
    try:
        return run(bench, args, tmp)
    finally:
        bench.stop_s3()
        shutil.rmtree(tmp, ignore_errors=True)


def run(bench: Bench, args, tmp: Path) -> int:
    import datetime as dt

    from borderx.dev.demo import prepare_home

    bench.start_s3()
    source = tmp / "small"
    source.mkdir()
    total = rows = 0
    for i in range(args.files):
        path = source / f"flows-{i:05d}.csv"
        # A day of its own per file: no two files have the same content.
        rows += make_extract(path, args.size, seed=i, first_day=i, points=1)
        total += path.stat().st_size
    bench.ours("import")  # compiles the package's bytecode into the bench's cache, untimed
    puts_count = 3 * 2 * args.files  # three objects per delivery, two deliveries per file
    puts = puts_only(bench, args, puts_count)  # first, while the endpoint holds nothing yet

    def fresh_home(name: str) -> Path:
        home = prepare_home(tmp / name, dt.date.today())
        intake = home.intake / "ZA-DHA" / "traveller_flows"
        intake.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            shutil.copyfile(path, intake / path.name)
        return home.root

    s3_args = ["--s3-endpoint", bench.endpoint, "--bucket", BUCKET, "--settle", "0"]
    borderx = str(Path(sys.executable).with_name("borderx"))
    ours = floor = None
    for round_no in range(args.repeat):
        home = fresh_home(f"home-{round_no}")
        server_before = bench.s3_cpu()
        run_ = measure([borderx, "run", "--once", "--home", str(home), *s3_args], bench.scratch, bench.env,
                       check=False)
        run_.server_cpu = bench.s3_cpu() - server_before
        published = bench.count_deliveries()
        bench.empty_bucket()
        shutil.rmtree(home, ignore_errors=True)
        if run_.returncode != 0 or published != 2 * args.files:
            print(run_.output[-3000:])
            raise SystemExit(f"borderx run --once: exit {run_.returncode}, {published} deliveries")
        ours = run_ if ours is None or run_.seconds < ours.seconds else ours
        floor_run = floor_loop(bench, args, source, tmp)
        floor = floor_run if floor is None or floor_run.seconds < floor.seconds else floor
    home = fresh_home("home-counted")
    counted = measure([sys.executable, "-c", COUNTED, "run", "--once", "--home", str(home), *s3_args],
                      bench.scratch, bench.env, check=False)
    calls = json.loads(counted.output.split("S3-CALLS ", 1)[1].splitlines()[0])
    bench.empty_bucket()
    shutil.rmtree(home, ignore_errors=True)

    prof_seconds = None
    if args.profile:
        home = fresh_home("home-profile")
        profile = tmp / "run.prof"
        code = PROFILED
        prof_seconds = measure([sys.executable, "-c", code, str(profile), "run", "--once", "--home", str(home),
                                *s3_args], bench.scratch, bench.env, check=False).seconds
        bench.empty_bucket()

    n, deliveries = args.files, 2 * args.files
    print(f"\n{n} traveller_flows extracts of about {human(args.size)} ({rows:,} rows, {human(total)}), "
          f"2 recipients each, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"{'':<34} {'s':>7} {'files/s':>8} {'ms/file':>8} {'peak MiB':>9} {'CPU s':>6} {'S3 CPU s':>8}")
    for label, r in (("borderx run --once (whole command)", ours), ("floor: sha256, age -r, boto3", floor),
                     (f"S3 alone: {puts_count:,} PUTs, 4 threads", puts)):
        print(f"{label:<34} {r.seconds:7.2f} {n / r.seconds:8.1f} {r.seconds / n * 1000:8.1f} "
              f"{r.rss_kib / 1024:9.0f} {r.cpu:6.2f} {r.server_cpu:8.2f}")
    print(f"ours / floor: {ours.seconds / floor.seconds:.2f}; goal 50 files/s: "
          f"{'met' if n / ours.seconds >= 50 else 'NOT met'}")
    print(f"S3 requests of the hub: {sum(calls.values())} in all, {sum(calls.values()) / deliveries:.2f} per "
          f"delivery: " + ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])))
    if prof_seconds is not None:
        print(f"\nthe same run under cProfile: {prof_seconds:.1f} s")
        bench.print_profile(profile, n, prof_seconds)
        if args.save_profile:
            shutil.copyfile(profile, args.save_profile)
        print("\nfunctions with the most time of their own:")
        pstats.Stats(str(profile)).sort_stats("tottime").print_stats(args.top)
    return 0


def puts_only(bench: Bench, args, count: int):
    """The hub's count of PUTs, of the extracts' size, on four threads (as `borderx run` delivers)."""
    from borderx.exchange.spine import DELIVERY_THREADS

    spec = {"endpoint": bench.endpoint, "bucket": BUCKET, "size": args.size, "puts": count,
            "threads": DELIVERY_THREADS}
    server_before = bench.s3_cpu()
    run_ = measure([sys.executable, "-c", PUTS_ONLY, json.dumps(spec)], bench.scratch, bench.env)
    run_.server_cpu = bench.s3_cpu() - server_before
    bench.empty_bucket()
    return run_


def floor_loop(bench: Bench, args, source: Path, tmp: Path):
    import datetime as dt

    from borderx.config.loader import load_config
    from borderx.dev.demo import prepare_home

    home = prepare_home(tmp / "home-floor", dt.date.today())
    config = load_config(home.root, today=dt.date.today())
    keys = [config.agencies[a].age_recipients[0].key for a in ("ZA-SARS", "NA-MHAISS")]
    out = tmp / "floor-out"
    out.mkdir(exist_ok=True)
    spec = {"endpoint": bench.endpoint, "bucket": BUCKET, "src": str(source), "out": str(out), "keys": keys,
            "age": args.age}
    server_before = bench.s3_cpu()
    run_ = measure([sys.executable, "-c", FLOOR, json.dumps(spec)], bench.scratch, bench.env)
    run_.server_cpu = bench.s3_cpu() - server_before
    bench.empty_bucket()
    shutil.rmtree(home.root, ignore_errors=True)
    return run_


if __name__ == "__main__":
    sys.path.insert(0, str(PLUGINS))
    raise SystemExit(main())
