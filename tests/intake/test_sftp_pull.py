"""Pull over SFTP from a real OpenSSH server on 127.0.0.1: new extracts are copied in once, whole, and the server
is only read; a file still being written waits; a server with another host key, or one that refuses the hub's
key, is refused with a clear error, an audit event and a `borderx check` line; hostile names break nothing."""

from __future__ import annotations

import json
import os
import stat
import threading
import time

import pytest
import yaml

from airflow_procs import DAGS, free_port, run_python
from borderx.audit.trail import AuditTrail
from borderx.config.loader import check_config, load_config
from borderx.errors import KeyMaterialError, SourceRefused, is_permanent
from borderx.intake.sources.copy import SourceObject, pulled_store
from borderx.intake.sources.pull import pull, pull_schedules
from borderx.intake.sources.sftp import copy_from_server, session, waiting_on_server

from hostile_sftp import Entry, Listing, start_hostile_sftp
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
    # A size at the end of a read window and of a request: the hub's one byte past it meets the end of the file.
    big = old(server_exports / DATASET / "big.csv", os.urandom((4 << 20) + (32 << 10)))
    assert sorted(pull(pulling, demo_home, AGENCY).to_dict()["copied"]) == ["big.csv", "dha_2026-12.csv",
                                                                            "fresh.csv"]
    assert (intake(demo_home) / "big.csv").read_bytes() == big.read_bytes()
    assert (intake(demo_home) / "dha_2026-12.csv").read_bytes().endswith(b"2026-12-02,ZA-BEI,ENTRY\n")
    assert not [p for p in intake(demo_home).iterdir() if p.name.startswith(".")]

    copies = [e["details"] for e in AuditTrail(demo_home.audit).events() if e["type"] == "copied-in"]
    assert sorted(c["source_name"] for c in copies) == ["big.csv", "dha_2026-11.csv", "dha_2026-12.csv",
                                                        "dha_2026-12.csv", "fresh.csv"]
    assert all(c["source_uri"].startswith(f"sftp://{sshd.user}@127.0.0.1:{sshd.port}/") for c in copies)
    assert AuditTrail(demo_home.audit).verify()[1] is None
    assert sshd.client_key.splitlines()[1] not in caplog.text


def test_a_file_that_grows_while_copied_is_left_for_the_next_round(demo_home, sshd, server_exports, pulling):
    source = pulling.agencies[AGENCY].pull.sftp
    store = pulled_store(demo_home)
    with session(demo_home, AGENCY, source) as sftp:
        [obj, _] = waiting_on_server(demo_home, sftp, AGENCY, source, [DATASET], 600, store)
        with open(server_exports / DATASET / obj.name, "ab") as fh:
            fh.write(b"2026-11-30,ZA-BEI,EXIT\n" * 1000)  # more than was listed: read only one byte past it
        assert copy_from_server(demo_home, sftp, source, intake(demo_home), obj, store).status == "changed"
    assert not (intake(demo_home) / obj.name).exists() and not store.contains(*obj.identity)
    assert not [p for p in intake(demo_home).iterdir() if p.name.startswith(".")]


def test_a_changed_host_key_is_refused_with_an_event_and_a_check_line(demo_home, sshd, server_exports, pulling,
                                                                      tmp_path, capsys):
    _, other = keypair(tmp_path / "other_host_key")
    set_pull(demo_home, AGENCY, sftp_source(sshd, server_exports, host_key=other))
    config = load_config(demo_home.root)
    before = {p.name for p in intake(demo_home).iterdir()}

    for _ in range(2):  # refused every time, recorded once
        with pytest.raises(SourceRefused) as refused:
            pull(config, demo_home, AGENCY)
        assert is_permanent(refused.value)
    message = str(refused.value)
    assert message.startswith(f"{AGENCY}: the SFTP server 127.0.0.1:{sshd.port} presents host key SHA256:")
    assert "not the pinned host key SHA256:" in message and "nothing was read there" in message
    assert {p.name for p in intake(demo_home).iterdir()} == before
    [event] = refusals(demo_home)
    assert event["reason"] == "host-key-changed" and event["provider"] == AGENCY
    assert event["host"] == f"127.0.0.1:{sshd.port}" and event["presented"] != event["pinned"]

    code, out = check(demo_home, capsys)
    assert code == 1
    assert f"config/agencies/{AGENCY}.yaml: pull.sftp.host_key: {message}" in out

    # A server without a key of the pinned type is refused too, not asked for another type.
    _, ecdsa = keypair(tmp_path / "ecdsa_host_key", "ecdsa")
    set_pull(demo_home, AGENCY, sftp_source(sshd, server_exports, host_key=ecdsa))
    with pytest.raises(SourceRefused, match="presents no ecdsa-sha2-nistp256 host key"):
        pull(load_config(demo_home.root), demo_home, AGENCY)
    assert [e["presented"] for e in refusals(demo_home)][1:] == ["no ecdsa-sha2-nistp256 host key"]

    # Pinned right, check has nothing to say about the server.
    set_pull(demo_home, AGENCY, sftp_source(sshd, server_exports))
    code, out = check(demo_home, capsys)
    assert "pull.sftp" not in out


def test_a_key_the_server_does_not_accept_is_refused(demo_home, sshd, server_exports, pulling, tmp_path,
                                                     monkeypatch, caplog):
    wrong, _ = keypair(tmp_path / "not_authorized")
    monkeypatch.setenv(KEY_ENV, wrong)
    with pytest.raises(SourceRefused) as refused:
        pull(pulling, demo_home, AGENCY)
    assert str(refused.value) == (f"{AGENCY}: the SFTP server 127.0.0.1:{sshd.port} does not accept the key of "
                                  f"{sshd.user} from environment variable {KEY_ENV}")
    assert is_permanent(refused.value) and refusals(demo_home) == []

    monkeypatch.setenv(KEY_ENV, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(KeyMaterialError, match=f"environment variable {KEY_ENV} holds no unencrypted OpenSSH"):
        pull(pulling, demo_home, AGENCY)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(KeyMaterialError, match=f"environment variable {KEY_ENV} is not set"):
        pull(pulling, demo_home, AGENCY)
    for line in wrong.splitlines()[1:-1] + sshd.client_key.splitlines()[1:-1]:
        assert line not in caplog.text and holding(demo_home.root, line.encode()) == []
    assert not list(intake(demo_home).glob("dha_*"))


def test_hostile_names_and_entries_break_nothing(demo_home, sshd, server_exports, pulling, tmp_path):
    folder = server_exports / DATASET
    old(folder / "line\nbreak\x1b[31m.csv", FLOWS)
    os.mkfifo(folder / "pipe.csv")
    os.utime(folder / "pipe.csv", (time.time() - 3600,) * 2)
    (folder / "loop.csv").symlink_to("loop.csv")
    copied = pull(pulling, demo_home, AGENCY).to_dict()["copied"]
    assert sorted(copied) == ["dha_2026-11.csv", "dha_2026-12.csv", "line\nbreak\x1b[31m.csv"]
    assert not (intake(demo_home) / "pipe.csv").exists() and not (intake(demo_home) / "loop.csv").exists()

    # What a hostile server may list, though no file system holds it: refused before anything is read, once.
    source = pulling.agencies[AGENCY].pull.sftp
    store = pulled_store(demo_home)
    outside = tmp_path / "server" / "secret.csv"
    with session(demo_home, AGENCY, source) as sftp:
        for name in ("../../secret.csv", str(outside), "..", "x\0.csv", "a" * 300 + ".csv"):
            obj = SourceObject(AGENCY, DATASET, name, f"sftp://server/{name}", outside.stat().st_size, "1")
            assert copy_from_server(demo_home, sftp, source, intake(demo_home), obj, store).status == "refused"
            assert copy_from_server(demo_home, sftp, source, intake(demo_home), obj, store).status == "seen"
    assert holding(demo_home.root, SECRET) == []
    assert sorted(r["reason"] for r in refusals(demo_home)) == ["name-too-long"] + ["not-a-file-name"] * 4

    # A name that is not UTF-8 stops the listing of its folder (paramiko gives up on it): said once, nothing taken.
    os.close(os.open(os.fsencode(folder) + b"/\xff.csv", os.O_CREAT | os.O_WRONLY, 0o600))
    (folder / "late.csv").write_bytes(FLOWS)
    os.utime(folder / "late.csv", (time.time() - 3600,) * 2)
    assert pull(pulling, demo_home, AGENCY).outcomes == []
    assert pull(pulling, demo_home, AGENCY).outcomes == []
    assert [r["reason"] for r in refusals(demo_home)].count("name-not-utf8") == 1


def test_dag_test_of_the_pull_dag_with_the_key_in_an_airflow_connection(airflow_env, demo_home, sshd, server_exports):
    set_pull(demo_home, AGENCY, {**sftp_source(sshd, server_exports, key={"airflow_connection": "sftp_za_dha"}),
                                 "schedule": "*/15 * * * *"})
    settle_after(demo_home, 600)
    assert pull_schedules(demo_home.root) == {AGENCY: "*/15 * * * *"}
    connection = json.dumps({"conn_type": "sftp", "extra": {"private_key": sshd.client_key}})
    env = {**airflow_env, "BORDERX_HOME": str(demo_home.root), "AIRFLOW_CONN_SFTP_ZA_DHA": connection}
    done = run_python(
        f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("pull_dag", {str(DAGS / "borderx_pull.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print("STATE", module.pull_dag.test().state)
        """,
        env,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    assert done.stdout.strip().splitlines()[-1].endswith("success"), done.stdout[-5000:] + done.stderr[-5000:]
    assert (intake(demo_home) / "dha_2026-11.csv").read_bytes() == FLOWS
    assert (intake(demo_home) / "dha_2026-12.csv").exists() and not (intake(demo_home) / "fresh.csv").exists()
    for line in sshd.client_key.splitlines()[1:-1]:
        assert line not in done.stdout + done.stderr


def test_bad_sftp_sources_are_reported_by_check(demo_home, sshd, tmp_path):
    good = sftp_source(sshd, "/exports")["sftp"]
    set_pull(demo_home, "ZA-DHA", {"sftp": {**good, "host_key": "ssh-ed25519 AAAAnotakey"}})
    set_pull(demo_home, "ZA-SARS", {"sftp": {**good, "path": "exports/../../etc"}})
    set_pull(demo_home, "BW-DIC", {"sftp": {**good, "key": {"env": "K", "airflow_connection": "c"}}})
    set_pull(demo_home, "NA-MHAISS", {"sftp": {**good, "host": "-oProxyCommand=x", "private_key": "x"}})
    set_pull(demo_home, "BW-BURS", {"sftp": {**good, "port": free_port()}})  # nobody listens there
    problems = {str(p) for p in check_config(demo_home.root)}
    assert ("config/agencies/ZA-DHA.yaml: pull.sftp.host_key: Value error, not a valid ssh-ed25519 public key"
            in problems)
    assert "config/agencies/ZA-SARS.yaml: pull.sftp.path: Value error, a `..` segment is not allowed" in problems
    assert "config/agencies/BW-DIC.yaml: pull.sftp.key: Value error, give exactly one of env, airflow_connection" \
        in problems
    assert any(p.startswith("config/agencies/NA-MHAISS.yaml: pull.sftp.host: String should match") for p in problems)
    assert "config/agencies/NA-MHAISS.yaml: pull.sftp.private_key: Extra inputs are not permitted" in problems
    assert any(p.startswith("config/agencies/BW-BURS.yaml: pull.sftp.host_key: the SFTP server 127.0.0.1:")
               and p.endswith("cannot be reached (ConnectionRefusedError)") for p in problems), problems


def test_a_lying_server_breaks_nothing(demo_home, tmp_path, monkeypatch):
    remote = "/exports"
    honest = Entry("honest.csv", FLOWS)
    listing = Listing({f"{remote}/{DATASET}": [
        honest, Entry("ctrl\x1b[2J\r.csv", FLOWS),
        Entry("../../escape.csv", SECRET), Entry("a/b.csv", SECRET), Entry("nul\0.csv", SECRET),
        Entry("n" * 300 + ".csv", SECRET), Entry("..", SECRET), Entry(".", SECRET),
        Entry("link.csv", SECRET, kind=stat.S_IFLNK), Entry("dir.csv", kind=stat.S_IFDIR),
        Entry("fifo.csv", kind=stat.S_IFIFO),
        Entry("endless.csv", size=len(FLOWS), endless=True),  # more than it listed, without end
        Entry("short.csv", FLOWS, size=1 << 40),  # a terabyte as listed, a line as read
    ]})
    server = start_hostile_sftp(tmp_path / "hostile", listing)
    died: list = []
    monkeypatch.setattr(threading, "excepthook", died.append)
    try:
        monkeypatch.setenv(KEY_ENV, server.client_key)
        set_pull(demo_home, AGENCY, {"sftp": {"host": "127.0.0.1", "port": server.port, "user": "borderx",
                                              "path": remote, "host_key": server.host_key, "key": {"env": KEY_ENV}}})
        config = load_config(demo_home.root)
        first = pull(config, demo_home, AGENCY)
        opened_first = list(listing.opened)
        # The short file stopped its reading early: the read-ahead had sent its requests before the session closed.
        read_ahead = [t for t in threading.enumerate() if "_prefetch_thread" in repr(getattr(t, "_target", None))]
        second = pull(config, demo_home, AGENCY)
    finally:
        server.stop()
    assert read_ahead == [] and died == [], [f"{d.thread}: {d.exc_value!r}" for d in died]

    status = {o.name: o.status for o in first.outcomes}
    assert sorted(first.to_dict()["copied"]) == ["ctrl\x1b[2J\r.csv", "honest.csv"]
    assert {n: status[n] for n in ("endless.csv", "short.csv")} == {"endless.csv": "changed", "short.csv": "changed"}
    assert [status[n] for n in ("a/b.csv", "nul\0.csv", "n" * 300 + ".csv")] == ["refused"] * 3
    assert not {"../../escape.csv", "..", ".", "link.csv", "dir.csv", "fifo.csv"} & set(status)
    assert sorted(o.name for o in second.outcomes) == ["endless.csv", "short.csv"], "the refused are not tried again"
    # Only files listed as regular, with names that can be intake files, were ever opened on the server.
    assert {p.rsplit("/", 1)[1] for p in opened_first} == {"honest.csv", "ctrl\x1b[2J\r.csv", "endless.csv",
                                                           "short.csv"}
    assert holding(tmp_path, SECRET) == [] and not list(tmp_path.rglob("escape.csv"))
    assert not [p for p in intake(demo_home).iterdir() if p.name.startswith(".") or p.name.startswith("endless")]
    assert (intake(demo_home) / "honest.csv").read_bytes() == FLOWS
    assert sorted(r["reason"] for r in refusals(demo_home)) == ["name-too-long"] + ["not-a-file-name"] * 2


def test_the_pin_and_only_the_pin_decides_whatever_known_hosts_says(demo_home, sshd, server_exports, pulling,
                                                                    tmp_path, monkeypatch):
    home = tmp_path / "hub-user"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    _, other = keypair(tmp_path / "other_host_key")
    known = home / ".ssh" / "known_hosts"

    # known_hosts vouches for the server's real key, the config pins another: refused, as a changed key.
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key}\n")
    set_pull(demo_home, AGENCY, sftp_source(sshd, server_exports, host_key=other))
    with pytest.raises(SourceRefused, match="presents host key SHA256:.*not the pinned host key"):
        pull(load_config(demo_home.root), demo_home, AGENCY)

    # The server presents the pinned key, known_hosts holds another: refused, naming known_hosts.
    known.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    with pytest.raises(SourceRefused, match="presents the pinned host key, but the hub user's ~/.ssh/known_hosts"):
        pull(pulling, demo_home, AGENCY)
    assert not list(intake(demo_home).glob("dha_*"))
