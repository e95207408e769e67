"""The light client as a recipient installs it: the wheel alone in a new virtualenv, pinned by requirements.lock,
fetching and verifying from a real bucket with no part of the hub installed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from borderx.exchange import Runtime

REPO = Path(__file__).resolve().parents[2]
SIZE_BUDGET_MB = 120
HUB_MODULES = ("airflow", "great_expectations", "pandas", "pyarrow", "numpy", "moto")


def _disk_mb(folder: Path) -> float:
    """The space the folder takes on disk, as `du -s` counts it (blocks, not file lengths)."""
    return sum(p.lstat().st_blocks * 512 for p in [folder, *folder.rglob("*")]) / 2**20


def _sources() -> list[Path]:
    plugins = [p for p in (REPO / "plugins").rglob("*") if p.is_file() and "__pycache__" not in p.parts
               and not any(part.endswith(".egg-info") for part in p.parts)]
    return sorted([REPO / "pyproject.toml", REPO / "README.md", *plugins])


def _wheel(cache: Path, work: Path) -> Path:
    """The borderx wheel of the sources as they are, built once for them and kept in pytest's cache.

    It is built from a copy of the sources, so the build leaves nothing in the working tree.
    """
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    kept = cache / digest.hexdigest()[:16]
    if not list(kept.glob("borderx-*.whl")):
        src = work / "src"
        for path in _sources():
            (src / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, src / path.relative_to(REPO))
        subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", "wheel", "--no-deps",
                        "-w", str(kept), str(src)], check=True, capture_output=True)
    return next(kept.glob("borderx-*.whl"))


@pytest.fixture(scope="session")
def light_venv(tmp_path_factory, request) -> Path:
    """A fresh virtualenv holding the borderx wheel and only what its base install pulls in, pinned by the lock."""
    work = tmp_path_factory.mktemp("light")
    wheel = _wheel(Path(request.config.cache.mkdir("light-client-wheel")), work)
    venv = work / "venv"
    # The interpreter the project runs on, not this virtualenv: the new one must not see its packages.
    subprocess.run([sys._base_executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                    "-c", str(REPO / "requirements.lock"), str(wheel)], check=True, capture_output=True)
    return venv


@pytest.fixture(scope="module")
def published(published_demo) -> Runtime:
    return published_demo


def _light(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BORDERX_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run([str(venv / "bin" / "borderx"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_light_install_is_small_and_holds_no_part_of_the_hub(light_venv):
    python = str(light_venv / "bin" / "python")
    found = subprocess.run([python, "-c", "import importlib.util, sys; "
                            f"print([m for m in {HUB_MODULES!r} if importlib.util.find_spec(m)])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    assert found == "[]"
    size = _disk_mb(light_venv)
    assert size < SIZE_BUDGET_MB, f"the light client's virtualenv takes {size:.0f} MB"


def test_light_client_fetches_and_verifies_from_the_bucket(light_venv, published, tmp_path):
    rt, bucket, endpoint = published, published.target.bucket, published.target.endpoint_url
    keys = rt.home.root / "keys"
    out = tmp_path / "inbox"
    # No home on the recipient's machine: everything it trusts is given on the command line.
    fetched = _light(light_venv, "fetch", "--recipient", "NA-MHAISS", "--identity", str(keys / "NA-MHAISS" / "age.key"),
                     "--hub-key", str(keys / "allowed_signers"), "--out", str(out), "--s3-endpoint", endpoint,
                     "--bucket", bucket, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.count("fetched  ") == 3
    folders = sorted(p.parent for p in out.rglob("manifest.json"))
    assert len(folders) == 3
    for folder in folders:
        manifest = json.loads((folder / "manifest.json").read_text())
        assert len((folder / "data.csv").read_text().splitlines()) == manifest["rows"] + 1

        prefix = manifest["published"]["key"].rpartition("/")[0]
        verified = _light(light_venv, "verify", f"s3://{bucket}/{prefix}/", "--recipient", "NA-MHAISS",
                          "--hub-key", str(keys / "allowed_signers"), "--s3-endpoint", endpoint, cwd=tmp_path)
        assert verified.returncode == 0, verified.stderr
        assert verified.stdout.startswith("ok  ")
    # The checks are the same in the light install: a delivery claimed for another recipient is refused.
    refused = _light(light_venv, "verify", f"s3://{bucket}/{prefix}/", "--recipient", "ZA-SARS",
                     "--hub-key", str(keys / "allowed_signers"), "--s3-endpoint", endpoint, cwd=tmp_path)
    assert refused.returncode == 1 and "manifest-mismatch" in refused.stdout, refused.stdout

def test_light_client_makes_keys_signs_and_asks_for_keys(light_venv, published, tmp_path):
    made = _light(light_venv, "keys", "generate", "ZA-DHA", "--out", str(tmp_path / "new-keys"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "new-keys").iterdir()) == ["age.key", "ssh_ed25519", "ssh_ed25519.pub"]
    keys = published.home.root / "keys" / "ZA-DHA"
    extract = tmp_path / "flows.csv"
    extract.write_text("a,b\n1,2\n")
    signed = _light(light_venv, "sign", str(extract), "--key", str(keys / "ssh_ed25519"), cwd=tmp_path)
    assert signed.returncode == 0, signed.stderr
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"ZA-DHA {(keys / 'ssh_ed25519.pub').read_text()}")
    with extract.open("rb") as fh:
        subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "ZA-DHA", "-n", "borderx-extract",
                        "-s", f"{extract}.sig"], stdin=fh, check=True, capture_output=True)

    requested = _light(light_venv, "keys", "request", "ZA-DHA", "--ssh-key", str(keys / "ssh_ed25519.pub"),
                       "--sign-with", str(keys / "ssh_ed25519"), "--out", str(tmp_path / "req.json"), cwd=tmp_path)
    assert requested.returncode == 0, requested.stderr
    assert json.loads((tmp_path / "req.json").read_text())["agency"] == "ZA-DHA"


def test_hub_command_on_the_light_install_names_the_extra(light_venv, tmp_path):
    ran = _light(light_venv, "run", "--once", cwd=tmp_path)
    assert ran.returncode == 2
    assert ran.stderr == "borderx run needs the hub: pip install 'borderx[hub]'\n"
    demo = _light(light_venv, "demo", cwd=tmp_path)
    assert demo.returncode == 2
    assert demo.stderr.splitlines() == ["borderx demo needs the hub and a local S3 endpoint: "
                                        "pip install 'borderx[hub,demo]'"]


def test_light_client_verifies_the_audit_trail_from_the_bucket(light_venv, published, tmp_path):
    rt = published
    audited = _light(light_venv, "audit", "verify", "--from-bucket", "--bucket", rt.target.bucket,
                     "--s3-endpoint", rt.target.endpoint_url,
                     "--hub-key", str(rt.home.root / "keys" / "allowed_signers"),
                     cwd=tmp_path)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert audited.stdout.startswith("ok: ") and "chain intact" in audited.stdout
