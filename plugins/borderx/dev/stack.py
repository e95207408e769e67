"""Airflow on one machine for a borderx home: `airflow standalone` with the project's dags/ and plugins/.

`airflow_env` is the whole configuration, as environment variables, shared by every Airflow component;
`running` starts the stack (a local S3 endpoint unless one is given, then `airflow standalone`) and
stops everything it started when its block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from borderx.airflow.warm import TASK_MODULES
from borderx.home import HOME_ENV, Home

PROJECT_ROOT = Path(__file__).resolve().parents[3]
UPLOAD_POOL = ("borderx_uploads", "4", "concurrent uploads to the bucket")
DAG_PREFIX = "borderx_"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"

# Imported once by the scheduler's forkserver, so every LocalExecutor worker, and every task process it forks,
# starts with them loaded (borderx.airflow.warm). Names that fail to import are skipped by multiprocessing, so a
# missing one costs speed only.
WARM_MODULES = ("airflow.executors.local_executor", "airflow.sdk.execution_time.supervisor", *TASK_MODULES)

# Seconds, tuned so a dropped file reaches the bucket in seconds rather than tens of them, at the price of
# a few more idle database polls than Airflow's defaults, which a single-machine SQLite deployment affords.
TRIGGER_POLL_SECONDS = "0.5"
FAST_EVENTS = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": ",".join(WARM_MODULES),
    # A changed agency list (a new intake to watch) is picked up within this many seconds.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
}


@dataclass(frozen=True)
class StackPaths:
    home: Home
    airflow_home: Path

    @classmethod
    def for_home(cls, home: Home) -> StackPaths:
        return cls(home, home.root / "airflow")

    @property
    def database(self) -> Path:
        return self.airflow_home / "airflow.db"

    @property
    def password_file(self) -> Path:
        return self.airflow_home / "simple_auth_manager_passwords.json.generated"

    @property
    def log(self) -> Path:
        return self.airflow_home / "standalone.log"


def airflow_env(paths: StackPaths, *, s3_endpoint: str, port: int, base: dict[str, str] | None = None,
                parallelism: int = 4) -> dict[str, str]:
    """The environment of every Airflow component: this project's DAGs and plugins, the home, the bucket."""
    env = dict(os.environ if base is None else base)
    # `airflow standalone` starts its components as plain `airflow`: they must be this environment's.
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    api = f"http://127.0.0.1:{port}"
    env.update({
        HOME_ENV: str(paths.home.root),
        "BORDERX_S3_ENDPOINT_URL": s3_endpoint,
        "BORDERX_TRIGGER_POLL_SECONDS": TRIGGER_POLL_SECONDS,
        "AIRFLOW_HOME": str(paths.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(paths.password_file),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{paths.database}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        **FAST_EVENTS,
    })
    # Every component must sign and check the same task tokens; a fresh secret per start is enough.
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_hex(32))
    for name, value in _local_credentials().items():
        env.setdefault(name, value)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return env


def _local_credentials() -> dict[str, str]:
    from borderx.dev.local_s3 import LOCAL_CREDENTIALS

    return LOCAL_CREDENTIALS


def ensure_home(root: Path) -> tuple[Home, bool]:
    """The home at `root`; a fresh demo home (config, keys, empty intake folders) if there is none yet."""
    from borderx.dev.demo import prepare_home

    home = Home(root.resolve())
    if (home.config / "settings.yaml").exists():
        return home, False
    return prepare_home(home.root, dt.date.today()), True


def intake_folders(home: Home) -> list[Path]:
    from borderx.config.loader import load_config
    from borderx.intake import provided_datasets

    config = load_config(home.root)
    return [home.intake_folder(a, d, config.agencies[a].intake.folder) for a, d in sorted(provided_datasets(config))]


@dataclass
class Stack:
    """A running stack: where its UI, bucket and files are, and the processes to stop."""

    paths: StackPaths
    port: int
    s3_endpoint: str
    env: dict[str, str]
    started_s3: bool = False
    process: subprocess.Popen | None = None
    seen: set = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, sql: str, *args) -> list[tuple]:
        """Reads Airflow's metadata database; nothing while it is being created or locked."""
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.paths.database}?mode=ro", uri=True,
                                                    timeout=5)) as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.Error:
            return []

    def api_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def dags_parsed(self) -> bool:
        return bool(self.query("SELECT 1 FROM dag WHERE dag_id = 'borderx_exchange'"))

    def watching(self) -> int:
        """How many intake triggers the triggerer runs now."""
        return len(self.query("SELECT id FROM trigger WHERE classpath = 'borderx.airflow.triggers.IntakeFolderTrigger' "
                              "AND triggerer_id IS NOT NULL"))

    def remember_descendants(self) -> None:
        """Notes every process below the stack now: task processes leave its process group, so a stop that
        only signalled the group could leave them behind."""
        import psutil

        if self.process is None:
            return
        try:
            self.seen.update(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(Path(sys.executable).with_name("airflow")), *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout)


def wait_until(what: str, check: Callable[[], object], stack: Stack, timeout: float, step: float = 0.5):
    """Polls `check` until it is truthy; fails naming `what` and the log if Airflow exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if stack.process is not None and stack.process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited with {stack.process.returncode} while waiting for "
                               f"{what}; see {stack.paths.log}")
        stack.remember_descendants()
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}; see {stack.paths.log}")


def _prepare_database(stack: Stack) -> None:
    for args in (("db", "migrate"), ("pools", "set", *UPLOAD_POOL)):
        done = stack.airflow(*args, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args[:2])} failed ({done.returncode}): {done.stderr[-2000:]}")


def _stop(stack: Stack, grace: float = 30) -> None:
    """Ctrl-C to standalone, which stops its components; then whatever is still alive below it, by force."""
    proc = stack.process
    if proc is None:
        return
    stack.remember_descendants()
    # A second Ctrl-C while stopping would leave half the stack running; this one is seen through.
    patient = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if patient else None
    try:
        _stop_all(stack, proc, grace)
    finally:
        if patient:
            signal.signal(signal.SIGINT, previous)


def _stop_all(stack: Stack, proc: subprocess.Popen, grace: float) -> None:
    import psutil

    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    left = [p for p in stack.seen if p.is_running()]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(left, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=10)


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def running(home: Home, *, port: int, s3_endpoint: str | None = None, ready_timeout: float = 300,
            on_progress: Callable[[str], None] = lambda line: None) -> Iterator[Stack]:
    """Starts the stack on `home` and yields it once the API answers and the intake folders are watched."""
    from borderx.dev.local_s3 import local_s3

    paths = StackPaths.for_home(home)
    paths.airflow_home.mkdir(parents=True, exist_ok=True)
    if not port_is_free(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    with contextlib.ExitStack() as cleanup:
        started_s3 = not s3_endpoint
        if started_s3:
            from borderx.dev.tsa import local_tsa_for_home

            s3_endpoint = cleanup.enter_context(local_s3())
            on_progress(f"local S3 endpoint on {s3_endpoint}")
            # Beside the local bucket, a local TSA: the settings point at it while the stack runs.
            on_progress(f"local time-stamping authority on {cleanup.enter_context(local_tsa_for_home(home.root))}")
        stack = Stack(paths, port, s3_endpoint, airflow_env(paths, s3_endpoint=s3_endpoint, port=port), started_s3)
        on_progress("preparing Airflow's database")
        _prepare_database(stack)
        log = cleanup.enter_context(open(paths.log, "ab"))
        on_progress(f"starting airflow standalone (log: {paths.log})")
        # A session of its own: a Ctrl-C at the terminal reaches us only, and we stop Airflow in order.
        stack.process = subprocess.Popen([str(Path(sys.executable).with_name("airflow")), "standalone"],
                                         env=stack.env, stdout=log, stderr=subprocess.STDOUT, cwd=paths.airflow_home,
                                         start_new_session=True)
        cleanup.callback(_stop, stack)
        cleanup.callback(on_progress, "stopping Airflow")
        wait_until("the exchange DAG to be parsed", stack.dags_parsed, stack, ready_timeout)
        unpaused = stack.airflow("dags", "unpause", "--treat-dag-id-as-regex", "--yes", f"^{DAG_PREFIX}")
        if unpaused.returncode != 0:
            raise RuntimeError(f"could not unpause the borderx DAGs: {unpaused.stderr[-2000:]}")
        wait_until("the API server", stack.api_answers, stack, ready_timeout)
        wait_until("the triggerer to watch the intake folders", stack.watching, stack, ready_timeout)
        yield stack
