"""Shared fixtures: a real S3 endpoint over HTTP (the moto server in its own process) and demo homes."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from borderx.dev.demo import drop_samples, prepare_home
from borderx.exchange import Runtime

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1, started for this test session and stopped after it."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "borderx-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "borderx-test")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("moto server exited at start")
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start within 30 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint) -> str:
    """A bucket of its own per test, so tests never see each other's deliveries."""
    return f"bx-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(s3_endpoint):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def demo_home(tmp_path):
    """A sample deployment (the project's config, fresh keys) with the demo's extracts in its intake."""
    today = dt.date.today()
    home = prepare_home(tmp_path / "home", today)
    drop_samples(home, today)
    return home


@pytest.fixture
def runtime(demo_home, s3_endpoint, bucket) -> Runtime:
    return Runtime.open(demo_home.root, endpoint_url=s3_endpoint, bucket=bucket)
