"""What the intake tests drop and run: files written past any settle time, folders of the hub's to attack,
`borderx run --once` and `borderx check` through the CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from borderx.audit.trail import AuditTrail
from borderx.cli import main

FLOWS = b"period,border_point,direction\n2026-11-01,ZA-BEI,ENTRY\n"
SECRET = b"what only the hub may read\n"


def old(path: Path, data: bytes) -> Path:
    """A file written an hour ago: past any settle time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (path.stat().st_mtime - 3600,) * 2)
    return path


def private_folder(where: Path) -> Path:
    """A 0700 folder of the hub's with files in it, laid out as an intake folder would be."""
    old(where / "traveller_flows" / "secret.csv", SECRET)
    old(where / "secret.csv", SECRET)
    for folder in (where, where / "traveller_flows"):
        folder.chmod(0o700)
    return where


def snapshot(*roots: Path) -> dict[str, tuple]:
    return {str(p): (p.lstat().st_ino, p.lstat().st_mode, p.lstat().st_mtime_ns,
                     p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for root in roots for p in [root, *root.rglob("*")]}


def holding(root: Path, content: bytes) -> list[Path]:
    """Every file under `root` whose bytes contain `content` (links not followed)."""
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and content in p.read_bytes()]


def refusals(home) -> list[dict]:
    return [e["details"] for e in AuditTrail(home.audit).events() if e["type"] == "refused"]


def run_once(home, s3_endpoint, bucket) -> int:
    return main(["run", "--once", "--home", str(home.root), "--s3-endpoint", s3_endpoint, "--bucket", bucket,
                 "--settle", "0"])


def check(home, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["check", "--home", str(home.root)])
    return code, capsys.readouterr().out


def empty_intake(home) -> None:
    """Only the attack waits in intake, so each run below is about it alone."""
    for folder in home.intake.glob("*/*"):
        shutil.rmtree(folder)
        folder.mkdir()


def set_pull(home, agency: str, source: dict) -> None:
    path = home.config / "agencies" / f"{agency}.yaml"
    data = yaml.safe_load(path.read_text())
    data["pull"] = source
    path.write_text(yaml.safe_dump(data, sort_keys=False))
