"""Pull over SFTP from a real OpenSSH server on 127.0.0.1: new extracts are copied in once, whole, and the server
is only read; a file still being written waits; a server with another host key, or one that refuses the hub's
key, is refused with a clear error, an audit event and a `borderx check` line; hostile names break nothing."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml

from airflow_procs import DAGS, run_python
from borderx.audit.trail import AuditTrail
from borderx.config.loader import load_config
from borderx.errors import KeyMaterialError, SourceRefused, is_permanent
from borderx.intake.sources.copy import SourceObject, pulled_store
from borderx.intake.sources.pull import pull, pull_schedules
from borderx.intake.sources.sftp import copy_from_server, session, waiting_on_server

from intake_drops import FLOWS, SECRET, check, holding, old, refusals, set_pull, snapshot
from sshd import keypair, start_sshd

AGENCY, DATASET = "ZA-DHA", "traveller_flows"
KEY_ENV = "BORDERX_TEST_SFTP_KEY"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def server_exports(tmp_path, sshd):
    """ZA-DHA's export folder on the server, DATASET/FILE, with what a pull must leave alone beside the extracts."""
    root = tmp_path / "server" / "exports"
    old(root / DATASET / "dha_2026-11.csv", FLOWS)
    old(root / DATASET / "dha_2026-12.csv", FLOWS + b"2026-12-01,ZA-BEI,EXIT\n")
    old(root / DATASET / "upload.csv.part", b"half")
    old(root / DATASET / ".hidden.csv", FLOWS)
    old(root / DATASET / "folder.csv" / "inner.csv", FLOWS)
    (root / DATASET / "fresh.csv").write_bytes(FLOWS)  # still being written, as far as anyone can tell
    old(tmp_path / "server" / "secret.csv", SECRET)
    (root / DATASET / "link.csv").symlink_to(tmp_path / "server" / "secret.csv")
    return root


def sftp_source(sshd, path, **changes) -> dict:
    return {"sftp": {"host": "127.0.0.1", "port": sshd.port, "user": sshd.user, "path": str(path),
                     "host_key": sshd.host_key, "key": {"env": KEY_ENV}, **changes}}


def settle_after(home, seconds: int) -> None:
    path = home.config / "settings.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["intake"]["settle_seconds"] = seconds
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


@pytest.fixture
def pulling(demo_home, sshd, server_exports, monkeypatch):
    monkeypatch.setenv(KEY_ENV, sshd.client_key)
    set_pull(demo_home, AGENCY, sftp_source(sshd, server_exports))
    settle_after(demo_home, 600)  # fresh.csv is younger than that whatever this machine's pace
    return load_config(demo_home.root)


def intake(home):
    return home.intake / AGENCY / DATASET


def test_new_files_are_copied_in_once_and_the_server_is_only_read(demo_home, sshd, server_exports, pulling, caplog):
    before_intake = {p.name for p in intake(demo_home).iterdir()}
    before = snapshot(server_exports.parent)

    first = pull(pulling, demo_home, AGENCY)
    assert first.to_dict()["copied"] == ["dha_2026-11.csv", "dha_2026-12.csv"]
    assert first.source == f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{server_exports}"
    assert {p.name for p in intake(demo_home).iterdir()} - before_intake == {"dha_2026-11.csv", "dha_2026-12.csv"}
    assert (intake(demo_home) / "dha_2026-11.csv").read_bytes() == FLOWS
    assert holding(demo_home.root, SECRET) == [], "the server's link was not followed"

    # Again, and again once the exchange took the copies out of intake: nothing is copied twice.
    assert pull(pulling, demo_home, AGENCY).outcomes == []
    for name in ("dha_2026-11.csv", "dha_2026-12.csv"):
        (intake(demo_home) / name).unlink()
    assert pull(pulling, demo_home, AGENCY).outcomes == []
    assert snapshot(server_exports.parent) == before

    # The file that was being written is taken once it settled; a new version of a file is a new extract.
    os.utime(server_exports / DATASET / "fresh.csv", (time.time() - 3600,) * 2)
    old(server_exports / DATASET / "dha_2026-12.csv", FLOWS + b"2026-12-02,ZA-BEI,ENTRY\n")
    assert sorted(pull(pulling, demo_home, AGENCY).to_dict()["copied"]) == ["dha_2026-12.csv", "fresh.csv"]
    assert (intake(demo_home) / "dha_2026-12.csv").read_bytes().endswith(b"2026-12-02,ZA-BEI,ENTRY\n")
    assert not [p for p in intake(demo_home).iterdir() if p.name.startswith(".")]

    copies = [e["details"] for e in AuditTrail(demo_home.audit).events() if e["type"] == "copied-in"]
    assert sorted(c["source_name"] for c in copies) == ["dha_2026-11.csv", "dha_2026-12.csv", "dha_2026-12.csv",
                                                        "fresh.csv"]
    assert all(c["source_uri"].startswith(f"sftp://{sshd.user}@127.0.0.1:{sshd.port}/") for c in copies)
    assert AuditTrail(demo_home.audit).verify()[1] is None
    assert sshd.client_key.splitlines()[1] not in caplog.text
