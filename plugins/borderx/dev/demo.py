"""`borderx demo`: a sample deployment built from the project's own config/, fresh keys, and one exchange."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import yaml

from borderx.dev import samples
from borderx.crypto import sshsig
from borderx.errors import HomeError
from borderx.config.loader import load_config
from borderx.home import Home
from borderx.intake import provided_datasets
from borderx.keys import AGE_IDENTITY_FILE, SSH_KEY_FILE, generate_keys
from borderx.delivery.manifest import DATA_FILE, MANIFEST_FILE, NAMESPACE, SIGNATURE_FILE

PROJECT_ROOT = Path(__file__).resolve().parents[3]
MARKER = ".borderx-demo"
DEFAULT_HOME = "demo-home"
HUB = "hub"


def project_path(name: str) -> Path:
    path = PROJECT_ROOT / name
    if not path.is_dir():
        raise HomeError(f"{path}: the demo needs the project's {name}/ folder (install with pip install -e)")
    return path


def prepare_home(root: Path, today: dt.date) -> Home:
    """Lays out a fresh demo home; keys from an earlier demo are kept so its deliveries stay readable."""
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise HomeError(f"{root} is not empty and was not made by `borderx demo`; choose another --home")
    if root.exists():
        for child in root.iterdir():
            if child.name not in ("keys", MARKER):
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by borderx demo; `borderx demo` may rebuild this folder\n")
    home = Home(root.resolve())
    shutil.copytree(project_path("expectations"), home.root / "expectations")
    for section in ("datasets", "agreements"):
        shutil.copytree(project_path("config") / section, home.config / section)
    hub_public = _keys_for(home, HUB, today)[1]
    for template in sorted((project_path("config") / "agencies").glob("*.yaml")):
        agency = yaml.safe_load(template.read_text(encoding="utf-8"))
        recipient, ssh_public = _keys_for(home, agency["id"], today)
        agency["age_recipients"] = [{"key": recipient, "valid_from": today.replace(month=1, day=1)}]
        agency["signing_keys"] = [{"key": ssh_public, "valid_from": today.replace(month=1, day=1)}]
        # The demo has no mail server: its e-mail notices wait in the outbox; the sample webhooks go nowhere.
        agency.get("contacts", {}).pop("webhook", None)
        _dump(home.config / "agencies" / template.name, agency)
    _dump(
        home.config / "settings.yaml",
        {
            "hub": {"id": HUB, "signing_public_key": hub_public, "signing_key": {"file": f"keys/{HUB}/{SSH_KEY_FILE}"}},
            "s3": {"bucket": "borderx-demo"},
            "intake": {"settle_seconds": 2},
        },
    )
    (home.root / "keys" / "allowed_signers").write_text(
        sshsig.allowed_signers_line(HUB, hub_public, NAMESPACE) + "\n", encoding="utf-8"
    )
    home.ensure()
    config = load_config(home.root, today=today)
    for agency, dataset in provided_datasets(config):
        home.intake_folder(agency, dataset, config.agencies[agency].intake.folder).mkdir(parents=True, exist_ok=True)
    return home


def _keys_for(home: Home, owner: str, today: dt.date) -> tuple[str, str]:
    folder = home.root / "keys" / owner
    if not (folder / AGE_IDENTITY_FILE).exists():
        generate_keys(owner, folder)
    from borderx.crypto import age

    identity = age.parse_identities((folder / AGE_IDENTITY_FILE).read_text(encoding="utf-8"))[0]
    return identity.recipient().string, (folder / f"{SSH_KEY_FILE}.pub").read_text(encoding="utf-8").strip()


def _dump(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")


def drop_samples(home: Home, today: dt.date) -> list[Path]:
    """Good and bad extracts of both datasets, plus a half-transferred file the hub must leave alone."""
    start = today - dt.timedelta(days=7)
    cols = samples.TRAVELLER_FLOWS_COLUMNS
    za = home.intake / "ZA-DHA" / "traveller_flows"
    bw = home.intake / "BW-DIC" / "traveller_flows"
    dropped = [
        samples.write_csv(za / f"za-dha_flows_{start}.csv", cols,
                          samples.traveller_flows_rows(["ZA-BEI", "ZA-LEB"], start, 7, seed=1, small_every=9)),
        samples.write_csv(bw / f"bw-dic_flows_{start}.csv", cols,
                          samples.traveller_flows_rows(["BW-RAM", "BW-MART"], start, 7, seed=2, small_every=11)),
    ]
    bad_codes = list(samples.traveller_flows_rows(["ZA-BEI"], start, 2, seed=3))
    bad_codes[3][2] = "INBOUND"  # direction outside ENTRY/EXIT
    bad_codes[5][3] = "South Africa"  # nationality must be ISO alpha-3
    bad_codes[8][8] = "-4"
    dropped.append(samples.write_csv(za / f"za-dha_flows_{start}_resent.csv", cols, bad_codes))
    no_mode = [[v for i, v in enumerate(r) if i != 6] for r in samples.traveller_flows_rows(["BW-RAM"], start, 2, seed=4)]
    dropped.append(samples.write_csv(bw / f"bw-dic_flows_{start}_v2.csv", [c for c in cols if c != "travel_mode"], no_mode))
    goods = home.intake / "ZA-SARS" / "goods_crossings"
    dropped.append(samples.write_csv(goods / f"za-sars_declarations_{start}.csv", samples.GOODS_CROSSINGS_COLUMNS,
                                     samples.goods_crossings_rows(["ZA-BEI", "ZA-LEB"], start, 7, seed=5)))
    bad_goods = list(samples.goods_crossings_rows(["ZA-BEI"], start, 1, seed=6))
    bad_goods[2][4] = "8703"  # HS codes have six digits
    bad_goods[7][6] = "ZAF"  # alpha-2 expected
    dropped.append(samples.write_csv(goods / f"za-sars_declarations_{start}_draft.csv", samples.GOODS_CROSSINGS_COLUMNS,
                                     bad_goods))
    (bw / f"bw-dic_flows_{today}.csv.part").write_text("period,border_point\n2026-", encoding="utf-8")
    # Backdated so the intake's settle time does not hold the demo up; a real drop just waits it out.
    old = dt.datetime.now().timestamp() - 60
    for path in dropped:
        os.utime(path, (old, old))
    return dropped


def mirror(rt, destination: Path, prefix: str) -> list[Path]:
    """Copies the bucket's objects under `prefix` next to the home: deliveries, so the recipient commands work
    without an S3 client; audit heads, time stamps and segments, so an auditor can try `ssh-keygen -Y verify`
    and `openssl ts -verify` on them after the local endpoint is gone."""
    copied = []
    for page in rt.s3.get_paginator("list_objects_v2").paginate(Bucket=rt.target.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            local = destination / obj["Key"]
            local.parent.mkdir(parents=True, exist_ok=True)
            rt.s3.download_file(rt.target.bucket, obj["Key"], str(local))
            copied.append(local)
    return copied


def run_demo(home_dir: str | None, *, endpoint_url: str | None = None, bucket: str | None = None, out=None) -> int:
    from borderx.exchange import Runtime, run_once
    from borderx.cli.summary import print_run_summary
    from borderx.dev.local_s3 import local_s3
    from borderx.dev.tsa import CA_FILE, local_tsa_for_home

    out = out or sys.stdout
    today = dt.date.today()
    root = Path(home_dir or os.environ.get("BORDERX_HOME") or DEFAULT_HOME).resolve()
    home = prepare_home(root, today)
    drop_samples(home, today)
    print(f"demo home: {home.root}", file=out)
    with contextlib.ExitStack() as stack:
        if not endpoint_url:
            endpoint_url = stack.enter_context(local_s3())
            print(f"local S3 endpoint: {endpoint_url} (stops when the demo ends; deliveries are mirrored to "
                  f"{home.root / 'bucket'})", file=out)
            tsa_url = stack.enter_context(local_tsa_for_home(home.root))
            print(f"local time-stamping authority: {tsa_url} (CA: {home.root / 'keys' / CA_FILE})", file=out)
        rt = Runtime.open(home.root, endpoint_url=endpoint_url, bucket=bucket)
        summary = run_once(rt, settle_seconds=0)
        print_run_summary(rt, summary, out)
        for prefix in ("deliveries/", "audit/"):
            mirror(rt, home.root / "bucket", prefix)
    count, broken = rt.trail.verify()
    print(f"audit: {count} events in {rt.trail.path}, chain {'BROKEN at ' + str(broken) if broken else 'intact'}",
          file=out)
    _print_recipient_commands(home, rt, summary, out)
    _print_auditor_commands(home, rt, out)
    return 0 if summary.published and not broken else 1


def _print_auditor_commands(home: Home, rt, out) -> None:
    from borderx.audit.anchors import NAMESPACE as AUDIT_NAMESPACE
    from borderx.dev.tsa import CA_FILE

    heads = sorted((home.root / "bucket" / "audit" / "heads").glob("*.json"))
    if not heads:
        return
    signers = home.root / "keys" / "allowed_signers.audit"
    signers.write_text(sshsig.allowed_signers_line(HUB, rt.config.settings.hub.signing_public_key, AUDIT_NAMESPACE)
                       + "\n", encoding="utf-8")
    print("\nan auditor checks the newest signed head and its time stamp with standard tools (docs/audit.md):", file=out)
    print(f"  cd {heads[-1].parent}", file=out)
    print(f"  ssh-keygen -Y verify -f {signers} -I {HUB} -n {AUDIT_NAMESPACE} -s {heads[-1].name}.sig "
          f"< {heads[-1].name}", file=out)
    print(f"  openssl ts -verify -data {heads[-1].name} -in {heads[-1].name}.tsr -CAfile "
          f"{home.root / 'keys' / CA_FILE}", file=out)


def _print_recipient_commands(home: Home, rt, summary, out) -> None:
    shown = set()
    for d in summary.published:
        if d["recipient"] in shown:
            continue
        shown.add(d["recipient"])
        prefix = d["prefix"].removeprefix(f"s3://{rt.target.bucket}/")
        local = home.root / "bucket" / prefix
        print(f"\nrecipient {d['recipient']} verifies and decrypts {d['delivery_id']}:", file=out)
        print(f"  cd {local}", file=out)
        print(f"  ssh-keygen -Y verify -f {home.root / 'keys' / 'allowed_signers'} -I {HUB} -n {NAMESPACE} "
              f"-s {SIGNATURE_FILE} < {MANIFEST_FILE}", file=out)
        print(f"  age -d -i {home.root / 'keys' / d['recipient'] / AGE_IDENTITY_FILE} -o data.csv {DATA_FILE}", file=out)
        print(f"  sha256sum {DATA_FILE}    # equals published.sha256 in {MANIFEST_FILE}", file=out)
