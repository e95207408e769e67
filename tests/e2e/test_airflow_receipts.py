"""Under `borderx airflow` (a real `airflow standalone` and local S3 endpoint) a signed drop and a bad drop each
get a hub-signed receipt in the agency's receipts folder within seconds, checked with the real ssh-keygen."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import yaml

from borderx.crypto import sshsig
from borderx.dev import samples
from conftest import free_port
from tests.e2e.test_airflow_cmd import BORDERX, START_DEADLINE, _alive, _read, _wait

RECEIPT_DEADLINE = 120


def _verify(home: Path, receipt: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    settings = yaml.safe_load((home / "config" / "settings.yaml").read_text())
    signers = tmp_path / "allowed_signers"
    signers.write_text(sshsig.allowed_signers_line("hub", settings["hub"]["signing_public_key"],
                                                   "borderx-receipt") + "\n")
    return subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "hub", "-n", "borderx-receipt",
                           "-s", str(receipt) + ".sig"], stdin=receipt.open("rb"), capture_output=True)


def _drop(intake: Path, name: str, rows, columns=samples.TRAVELLER_FLOWS_COLUMNS) -> Path:
    partial = intake / f"{name}.part"
    samples.write_csv(partial, columns, rows)
    os.replace(partial, intake / name)
    return intake / name


def test_receipts_appear_within_seconds_of_a_drop(tmp_path):
    home = tmp_path / "home"
    port = free_port()
    out = tmp_path / "borderx-airflow.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BORDERX_", "AIRFLOW"))}
    seen: set[psutil.Process] = set()
    with open(out, "wb") as sink:
        proc = subprocess.Popen([BORDERX, "airflow", "--home", str(home), "--port", str(port)], env=env,
                                stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait("the ready banner", lambda: "drop extracts into:" in _read(out), proc, out,
              time.monotonic() + START_DEADLINE, seen)
        intake = home.resolve() / "intake" / "ZA-DHA" / "traveller_flows"
        receipts = home.resolve() / "intake" / "ZA-DHA" / "receipts" / "traveller_flows"
        start = dt.date.today() - dt.timedelta(days=11)
        # Signed before it is dropped: the signature lies in the folder first, as an officer would do it.
        staged = tmp_path / "signed_drop.csv"
        samples.write_csv(staged, samples.TRAVELLER_FLOWS_COLUMNS,
                          samples.traveller_flows_rows(["ZA-BEI"], start, 2, seed=7))
        subprocess.run(["ssh-keygen", "-Y", "sign", "-n", "borderx-extract", "-f",
                        str(home / "keys" / "ZA-DHA" / "ssh_ed25519"), str(staged)], check=True, capture_output=True)
        os.replace(staged.with_name("signed_drop.csv.sig"), intake / "signed_drop.csv.sig")
        dropped = time.monotonic()
        os.replace(staged, intake / "signed_drop.csv")
        bad = list(samples.traveller_flows_rows(["ZA-BEI"], start, 2, seed=8))
        bad[1][2] = "SIDEWAYS"
        _drop(intake, "bad_drop.csv", bad)

        def both() -> bool:
            return all((receipts / f"{n}.receipt.json.sig").exists() for n in ("signed_drop.csv", "bad_drop.csv"))

        _wait("both receipts", both, proc, out, time.monotonic() + RECEIPT_DEADLINE, seen)
        took = time.monotonic() - dropped
        print(f"receipts {took:.1f} s after the drop")

        signed = json.loads((receipts / "signed_drop.csv.receipt.json").read_text())
        assert signed["outcome"] == "accepted" and len(signed["deliveries"]) == 2
        assert signed["provider_signature"]["status"] == "valid"
        rejected = json.loads((receipts / "bad_drop.csv.receipt.json").read_text())
        assert rejected["outcome"] == "quarantined" and rejected["reasons"]
        assert "SIDEWAYS" not in (receipts / "bad_drop.csv.receipt.txt").read_text()
        for name in ("signed_drop.csv", "bad_drop.csv"):
            result = _verify(home, receipts / f"{name}.receipt.json", tmp_path)
            assert result.returncode == 0, result.stderr

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, _read(out)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for p in [p for p in seen if _alive(p)]:
            with contextlib.suppress(psutil.Error):
                p.kill()
