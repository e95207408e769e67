"""Airflow's own components as real processes for end-to-end tests: an Airflow home, the settings the
components share, starting them, waiting on them, and ending them with everything they forked."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
UPLOAD_POOL = ("borderx_uploads", "4", "concurrent uploads to the bucket")
# The long-running components every deployment has; executors add their own (Celery workers).
COMPONENTS = (["scheduler"], ["dag-processor"], ["triggerer"])


def home_env(airflow_home: Path, sql_alchemy_conn: str) -> dict[str, str]:
    """An Airflow home of its own with the project's dags and plugins, on the metadata database given."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn,
    }


def airflow(env: dict, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise AssertionError(f"airflow {' '.join(args)} exited with {done.returncode}\n{done.stderr[-3000:]}")
    return done


def migrate(env: dict) -> None:
    airflow(env, "db", "migrate", timeout=300)


def run_python(code: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `code` (dedented) in a Python process of its own, as Airflow would, with the environment given."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving_env(env: dict, port: int, *, executor: str) -> dict[str, str]:
    """What the components must agree on to run tasks together: one api-server, one JWT secret, one executor;
    plus short intervals so a test does not wait on defaults made for production."""
    return {
        **env,
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # Each component would otherwise make up its own secret, and the api-server would refuse the tokens
        # the scheduler hands to tasks.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
    }


def start(args: list[str], env: dict, log: Path, cwd: Path) -> subprocess.Popen:
    """`airflow ARGS` in a session of its own (so stop() reaches what it forks), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([AIRFLOW, *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=cwd)


def start_components(env: dict, port: int, logs: Path, cwd: Path) -> list[subprocess.Popen]:
    """api-server, scheduler, dag-processor and triggerer, each logging to LOGS/NAME.log."""
    procs = [start(["api-server", "--port", str(port), "--host", "127.0.0.1"], env, logs / "api-server.log", cwd)]
    procs += [start(args, env, logs / f"{args[0]}.log", cwd) for args in COMPONENTS]
    return procs


def descendants(pids: list[int]) -> list[int]:
    """Every process below `pids`, from /proc, so what the components forked is ended too."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop(procs: list[subprocess.Popen]) -> None:
    below = descendants([p.pid for p in procs])
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_for(what: str, check: Callable, deadline: float, procs: list[subprocess.Popen], logs: Path,
             step: float = 0.5):
    """check()'s first truthy value; fails early, with the components' log tails, if one of them exits."""
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args} exited with {p.returncode} while waiting for {what}\n" + tails(logs))
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}\n" + tails(logs))


def tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(logs.glob("*.log")))


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def signed(s3, bucket: str) -> dict[str, list[str]]:
    """Signature objects per source hash, read from each signed delivery's manifest."""
    found: dict[str, list[str]] = {}
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        return found
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith("manifest.json.sig"):
                manifest = json.loads(s3.get_object(Bucket=bucket, Key=o["Key"].removesuffix(".sig"))["Body"].read())
                found.setdefault(manifest["source"]["sha256"], []).append(o["Key"])
    return found


def worker_name() -> str:
    """`[core] hostname_callable` for several workers on one machine: the name each was started with, so a
    task instance's `hostname` tells which worker ran it (in containers the host name already does)."""
    return os.environ["BORDERX_WORKER_NAME"]


def drop(source: Path, target: Path) -> None:
    """Drops a file the way transfer tools do: written under a .part name, then renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
