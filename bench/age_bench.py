"""Benchmark borderx's age implementation against the age CLI on one large file.

Run by hand, e.g. ``.venv/bin/python bench/age_bench.py --size 1GiB``; see
bench/README.md. Every measured operation runs in its own child process so
that its wall time includes interpreter start-up (what a user waits for) and
its peak RSS is its own (see ``measure`` for why that needs /usr/bin/time).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")
_MEMORY_LIMIT_MIB = 200
_WRITE_BLOCK = 4 << 20
_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def parse_size(text: str) -> int:
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256MiB, 1GiB, 2GiB)")
    return int(float(match.group(1)) * _UNITS[unit])


def human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


# --------------------------------------------------------------------------
# Child side: the operations measured for our implementation
# --------------------------------------------------------------------------

# Run with ``python -c`` rather than by re-running this script, so that the
# child imports only what a small command-line tool around the library would,
# not this script's argparse, subprocess and friends.
_CHILD_CODE = """
import sys
sys.path.insert(0, sys.argv[1])
from borderx.crypto import age
operation, src, dst, key = sys.argv[2:]
if operation == "encrypt":
    age.encrypt_file(src, dst, [age.parse_recipient(key)])
elif operation == "decrypt":
    with open(key) as identity_file:
        age.decrypt_file(src, dst, age.parse_identities(identity_file.read()))
elif operation != "import":
    sys.exit(f"unknown operation {operation!r}")
"""
_PLUGINS = str(Path(__file__).resolve().parents[1] / "plugins")


def import_age():
    # Works from a checkout even where the package is not installed.
    sys.path.insert(0, _PLUGINS)
    from borderx.crypto import age

    return age


# --------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    max_rss_kib: int


def measure(cmd: list[str], rss_file: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` to completion; return its wall time and its own peak RSS."""
    # On Linux a child's ru_maxrss starts from its parent's RSS at fork time and
    # survives exec, so a child forked straight from this (large) interpreter
    # would report our size, not its own. /usr/bin/time is a tiny parent whose
    # wait4 sees the command's real peak; without it, wait4 is the fallback.
    if _TIME:
        cmd = [_TIME, "-f", "%M", "-o", str(rss_file), *cmd]
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    # Reaping with wait4 rather than proc.wait() gives this child's rusage alone,
    # unlike RUSAGE_CHILDREN, which only ever reports the largest child so far.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with exit code {proc.returncode}: {stderr.strip()}")
    max_rss_kib = usage.ru_maxrss
    if _TIME:
        max_rss_kib = int(rss_file.read_text().split()[-1])
        rss_file.unlink()
    return Run(seconds, max_rss_kib)


def make_plaintext(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, _WRITE_BLOCK))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as src:
        buf = bytearray(_WRITE_BLOCK)
        view = memoryview(buf)
        while n := src.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def settle(input_path: Path) -> None:
    """Flush dirty pages, then pull the next run's input into the page cache.

    Writeback of one run would otherwise slow down the next, and on machines
    that page out idle memory (VMs with DAMON reclaim, memory ballooning) the
    input may have been dropped since it was written, so a run would measure
    the disk instead of the implementation.
    """
    os.sync()
    with open(input_path, "rb", buffering=0) as src:
        buf = bytearray(_WRITE_BLOCK)
        while src.readinto(buf):
            pass


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1GiB"), help="plaintext size (default 1GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per operation; the best counts (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first, to get past cold-memory costs (default 1)"
    )
    parser.add_argument("--age", default=shutil.which("age") or "/usr/bin/age", help="age CLI to compare with")
    parser.add_argument("--tmpdir", default=None, help="where to put the files (default: the system temp dir)")
    args = parser.parse_args()
    if args.repeat < 1 or args.warmup < 0:
        parser.error("--repeat must be at least 1 and --warmup at least 0")
    if not Path(args.age).is_file():
        parser.error(f"age CLI not found at {args.age}")
    if not _TIME:
        print("note: /usr/bin/time not found; peak RSS includes this script's own size at fork time")

    # The plaintext, both ciphertexts and one decrypted copy exist at once.
    free = shutil.disk_usage(args.tmpdir or tempfile.gettempdir()).free
    if free < 4.2 * args.size:
        parser.error(f"needs about {human(int(4.2 * args.size))} free in the temp dir, has {human(free)}")

    age = import_age()
    age_version = subprocess.run([args.age, "--version"], capture_output=True, text=True).stdout.strip()
    me = [sys.executable, "-c", _CHILD_CODE, _PLUGINS]
    with tempfile.TemporaryDirectory(prefix="age-bench-", dir=args.tmpdir) as tmp_name:
        tmp = Path(tmp_name)
        # An installed package runs from cached bytecode; with writing it
        # disabled (PYTHONDONTWRITEBYTECODE) every child would recompile age.py
        # and the timings would measure the compiler. A private cache in the
        # temp folder, warmed once, keeps the source tree untouched.
        child_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        child_env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        subprocess.run(me + ["import", "", "", ""], env=child_env, check=True)
        identity_s, recipient_s = age.generate_x25519_identity()
        id_file = tmp / "identity.txt"
        id_file.write_text(age.format_identity_file(identity_s, recipient_s, datetime.now(timezone.utc)))
        id_file.chmod(0o600)

        plain = tmp / "plain.bin"
        print(f"writing {human(args.size)} of random plaintext to {tmp} ...", flush=True)
        expected = make_plaintext(plain, args.size)

        ours_age, cli_age = tmp / "ours.age", tmp / "cli.age"
        ours_out, cli_out = tmp / "ours.out", tmp / "cli.out"
        # name: (command, its input, its output, environment)
        operations = {
            "encrypt (ours)": (
                me + ["encrypt", str(plain), str(ours_age), recipient_s],
                plain,
                ours_age,
                child_env,
            ),
            "encrypt (age -r)": ([args.age, "-r", recipient_s, "-o", str(cli_age), str(plain)], plain, cli_age, None),
            "decrypt (ours)": (
                me + ["decrypt", str(ours_age), str(ours_out), str(id_file)],
                ours_age,
                ours_out,
                child_env,
            ),
            "decrypt (age -d)": (
                [args.age, "-d", "-i", str(id_file), "-o", str(cli_out), str(cli_age)],
                cli_age,
                cli_out,
                None,
            ),
        }
        best: dict[str, Run] = {}
        # The first runs pay for memory the machine has not touched in a
        # while: page-cache pages for the output, and on VMs that hand free
        # memory back to the host (free page reporting), a host-side fault per
        # page. That can cost several times the work being measured, and hits
        # whichever implementation happens to run first, hence warm-up rounds.
        for round_no in range(1 - args.warmup, args.repeat + 1):
            label = f"round {round_no}" if round_no > 0 else "warm-up"
            # Interleaving the implementations spreads slow moments of the
            # machine over both instead of penalising whichever ran then.
            for name, (cmd, source, output, env) in operations.items():
                remove(output)
                settle(source)
                run = measure(cmd, tmp / "rss.txt", env)
                rss_mib = run.max_rss_kib / 1024
                print(f"  {label:>8}: {name:<17} {run.seconds:7.3f} s {rss_mib:7.1f} MiB", flush=True)
                if round_no <= 0:
                    continue
                previous = best.get(name)
                best[name] = Run(
                    min(run.seconds, previous.seconds) if previous else run.seconds,
                    max(run.max_rss_kib, previous.max_rss_kib) if previous else run.max_rss_kib,
                )

        print("verifying plaintexts and cross-decryption ...", flush=True)
        checks = {
            "encrypted by ours, decrypted by ours": sha256_file(ours_out) == expected,
            "encrypted by age, decrypted by age": sha256_file(cli_out) == expected,
        }
        for output in (ours_out, cli_out):
            remove(output)
        cross_cli = tmp / "cross-cli.out"
        measure([args.age, "-d", "-i", str(id_file), "-o", str(cross_cli), str(ours_age)], tmp / "rss.txt")
        checks["encrypted by ours, decrypted by age"] = sha256_file(cross_cli) == expected
        remove(cross_cli)
        cross_ours = tmp / "cross-ours.out"
        measure(me + ["decrypt", str(cli_age), str(cross_ours), str(id_file)], tmp / "rss.txt", child_env)
        checks["encrypted by age, decrypted by ours"] = sha256_file(cross_ours) == expected
        remove(cross_ours)

    size = args.size
    print()
    print(
        f"age benchmark: {human(size)} plaintext, one X25519 recipient, age {age_version}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(
        f"seconds: best of {args.repeat} timed runs after {args.warmup} warm-up round(s), child process wall time; "
        "peak RSS: highest of the timed runs"
    )
    header = (
        f"{'operation':<18} {'seconds':>8} {'MB/s':>8} {'peak RSS MiB':>13} {'ours/age time':>14} {'ours/age RSS':>13}"
    )
    print(header)
    print("-" * len(header))
    for name, run in best.items():
        rate = size / run.seconds / 1e6
        ratio_time = ratio_rss = ""
        if "(ours)" in name:
            other = best[name.replace("(ours)", "(age -r)" if name.startswith("encrypt") else "(age -d)")]
            ratio_time = f"{run.seconds / other.seconds:.2f}"
            ratio_rss = f"{run.max_rss_kib / other.max_rss_kib:.2f}"
        rss_mib = run.max_rss_kib / 1024
        print(f"{name:<18} {run.seconds:8.3f} {rate:8.0f} {rss_mib:13.1f} {ratio_time:>14} {ratio_rss:>13}")
    print()
    for name, ok in checks.items():
        print(f"plaintext sha256, {name:<36} {'OK' if ok else 'MISMATCH'}")
    ours_peak = max(run.max_rss_kib for name, run in best.items() if "(ours)" in name) / 1024
    print(
        f"our peak RSS {ours_peak:.1f} MiB is {'under' if ours_peak < _MEMORY_LIMIT_MIB else 'OVER'} "
        f"{_MEMORY_LIMIT_MIB} MiB for a {human(size)} file"
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
