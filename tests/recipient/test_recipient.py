"""The recipient's side against a real bucket: fetch, verify and decrypt, and every tampering refused."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from borderx import recipient as rc
from borderx.cli import main
from borderx.crypto import sshsig
from borderx.dev.demo import drop_samples, prepare_home
from borderx.exchange import Runtime, run_once
from borderx.keys import load_signing_key
from borderx.delivery.manifest import NAMESPACE

BORDERX = str(Path(sys.executable).with_name("borderx"))
EXPECTED = {"NA-MHAISS": 3, "ZA-SARS": 2, "BW-BURS": 1}  # the demo's six deliveries, by recipient


@pytest.fixture(scope="module")
def published(tmp_path_factory, s3_endpoint):
    """One exchange of the demo's extracts, shared by the tests that only read the bucket."""
    home = prepare_home(tmp_path_factory.mktemp("published") / "home", dt.date.today())
    drop_samples(home, dt.date.today())
    bucket = f"bx-{uuid.uuid4().hex[:12]}"
    rt = Runtime.open(home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    assert len(summary.published) == sum(EXPECTED.values())
    return rt


def _keys(s3, bucket: str, prefix: str = "deliveries/") -> list[str]:
    return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]


def _prefixes(s3, bucket: str, recipient: str) -> list[str]:
    return sorted({k.rsplit("/", 1)[0] + "/" for k in _keys(s3, bucket) if k.split("/")[2] == recipient})


def _identity(rt: Runtime, agency: str) -> Path:
    return rt.home.root / "keys" / agency / "age.key"


def _args(rt: Runtime, bucket: str, recipient: str, out: Path, *extra: str, identity: Path | None = None) -> list[str]:
    return ["fetch", "--recipient", recipient, "--identity", str(identity or _identity(rt, recipient)),
            "--out", str(out), "--hub-key", str(rt.home.root / "keys" / "allowed_signers"),
            "--s3-endpoint", rt.target.endpoint_url, "--bucket", bucket, *extra]


def _age_decrypt(identity: Path, ciphertext: bytes) -> bytes:
    return subprocess.run(["age", "-d", "-i", str(identity)], input=ciphertext, capture_output=True, check=True).stdout


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _copy_bucket(s3, src: str, dst: str, prefix: str = "deliveries/") -> None:
    s3.create_bucket(Bucket=dst)
    for key in _keys(s3, src, prefix):
        s3.copy_object(Bucket=dst, Key=key, CopySource={"Bucket": src, "Key": key})


def _get(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


# -- fetch ----------------------------------------------------------------------------------------


def test_fetch_decrypts_exactly_each_recipients_deliveries(published, s3, tmp_path, capsys):
    rt, bucket = published, published.target.bucket
    for recipient, count in EXPECTED.items():
        out = tmp_path / recipient
        assert main(_args(rt, bucket, recipient, out)) == 0
        stdout = capsys.readouterr().out
        assert stdout.count("fetched  ") == count

        prefixes = _prefixes(s3, bucket, recipient)
        assert len(prefixes) == count
        expected_folders = set()
        for prefix in prefixes:
            _, agreement, _, dataset, yyyy, mm, dd, delivery_id = prefix.rstrip("/").split("/")
            folder = out / agreement / dataset / f"{yyyy}-{mm}-{dd}_{delivery_id}"
            expected_folders.add(folder)
            plain = _age_decrypt(_identity(rt, recipient), _get(s3, bucket, prefix + "data.csv.age"))
            assert (folder / "data.csv").read_bytes() == plain
            assert (folder / "manifest.json").read_bytes() == _get(s3, bucket, prefix + "manifest.json")
            assert (folder / "manifest.json.sig").read_bytes() == _get(s3, bucket, prefix + "manifest.json.sig")
            manifest = json.loads((folder / "manifest.json").read_text())
            assert manifest["recipient"] == recipient
            assert len(list(csv.reader(io.StringIO(plain.decode())))) == manifest["rows"] + 1
            for name in ("data.csv", "manifest.json"):
                assert (folder / name).stat().st_mode & 0o777 == 0o600
            for level in (folder, folder.parent, folder.parent.parent):
                assert level.stat().st_mode & 0o777 == 0o700
        found = {p.parent for p in out.rglob("data.csv")}
        assert found == expected_folders
        assert not list(out.glob(".borderx-fetch-*")), "no temporary folder is left behind"


def test_second_fetch_downloads_nothing_new(published, tmp_path, capsys):
    rt, bucket = published, published.target.bucket
    out = tmp_path / "inbox"
    assert main(_args(rt, bucket, "NA-MHAISS", out)) == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()

    s3 = rt.target.client()
    calls = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **kw: calls.append(kw))
    report = rc.fetch(s3, bucket, "NA-MHAISS", rc.load_identities(_identity(rt, "NA-MHAISS")),
                      rc.hub_keys(rt.home.root / "keys" / "allowed_signers", rt.home), out)
    assert not report.fetched and len(report.skipped) == EXPECTED["NA-MHAISS"] and report.ok
    assert not calls, "nothing is downloaded for deliveries already in DIR"

    assert main(_args(rt, bucket, "NA-MHAISS", out)) == 0
    captured = capsys.readouterr()
    assert "fetched  " not in captured.out
    assert f"0 fetched, {EXPECTED['NA-MHAISS']} already there, 0 refused" in captured.err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_agreement_and_since_filter(published, tmp_path, s3):
    rt, bucket = published, published.target.bucket
    only_goods = tmp_path / "goods"
    assert main(_args(rt, bucket, "NA-MHAISS", only_goods, "--agreement", "DSA-2026-003")) == 0
    assert {p.relative_to(only_goods).parts[:2] for p in only_goods.rglob("data.csv")} == {
        ("DSA-2026-003", "goods_crossings")}

    day = dt.date.fromisoformat("-".join(_prefixes(s3, bucket, "NA-MHAISS")[0].split("/")[4:7]))
    later = tmp_path / "later"
    assert main(_args(rt, bucket, "NA-MHAISS", later, "--since", str(day + dt.timedelta(days=1)))) == 0
    assert not list(later.rglob("data.csv"))
    same_day = tmp_path / "same-day"
    assert main(_args(rt, bucket, "NA-MHAISS", same_day, "--since", str(day))) == 0
    assert len(list(same_day.rglob("data.csv"))) == EXPECTED["NA-MHAISS"]

    assert main(_args(rt, bucket, "NA-MHAISS", tmp_path / "none", "--agreement", "DSA-2026-002")) == 0
    assert not list((tmp_path / "none").rglob("data.csv"))


# -- tampering ------------------------------------------------------------------------------------


def _one_delivery(s3, rt: Runtime, recipient: str, dataset: str = "goods_crossings") -> str:
    """A fresh bucket holding a copy of one of the recipient's deliveries; returns its prefix."""
    prefix = next(p for p in _prefixes(s3, rt.target.bucket, recipient) if f"/{dataset}/" in p)
    bucket = f"bx-{uuid.uuid4().hex[:12]}"
    _copy_bucket(s3, rt.target.bucket, bucket, prefix)
    return bucket, prefix


def _flip_object(s3, bucket: str, key: str, at) -> None:
    body = _get(s3, bucket, key)
    s3.put_object(Bucket=bucket, Key=key, Body=_flip(body, at(body)))


def _resign(s3, rt: Runtime, bucket: str, prefix: str, change) -> None:
    """Stands for a hub that signed a wrong manifest: the signature is good, the content is not."""
    manifest = json.loads(_get(s3, bucket, prefix + "manifest.json"))
    change(manifest)
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    key = load_signing_key(rt.config.settings.hub.signing_key, rt.home.root)
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json", Body=body)
    s3.put_object(Bucket=bucket, Key=prefix + "manifest.json.sig", Body=sshsig.sign(key, body, NAMESPACE).encode())


TAMPERING = {
    "data byte": ("data.csv.age", lambda body: len(body) - 100, "data-hash"),
    "data header byte": ("data.csv.age", lambda body: 30, "data-hash"),
    "manifest byte": ("manifest.json", lambda body: body.index(b'"rows"') + 10, "signature"),
    "signature byte": ("manifest.json.sig", lambda body: body.index(b"\n") + 40, "signature"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_changed_byte_is_refused_and_leaves_nothing(published, s3, tmp_path, capsys, case):
    name, at, check = TAMPERING[case]
    bucket, prefix = _one_delivery(s3, published, "NA-MHAISS")
    _flip_object(s3, bucket, prefix + name, at)
    out = tmp_path / "inbox"
    assert main(_args(published, bucket, "NA-MHAISS", out)) == 1
    captured = capsys.readouterr()
    assert "REFUSED  DSA-2026-003/goods_crossings/" in captured.out
    assert f": {check}: " in captured.out
    assert _files(out) == [], "nothing partial is left in DIR"
    assert "0 fetched, 0 already there, 1 refused" in captured.err


def test_a_delivery_moved_to_another_recipient_is_refused(published, s3, tmp_path, capsys):
    bucket, prefix = _one_delivery(s3, published, "NA-MHAISS")
    moved = prefix.replace("/NA-MHAISS/", "/ZA-SARS/")
    for name in ("data.csv.age", "manifest.json", "manifest.json.sig"):
        s3.copy_object(Bucket=bucket, Key=moved + name, CopySource={"Bucket": bucket, "Key": prefix + name})
    out = tmp_path / "za-sars"
    assert main(_args(published, bucket, "ZA-SARS", out)) == 1
    stdout = capsys.readouterr().out
    assert ": manifest-mismatch: " in stdout and "'NA-MHAISS'" in stdout
    assert _files(out) == []
    # The rightful recipient still gets its copy.
    assert main(_args(published, bucket, "NA-MHAISS", tmp_path / "na")) == 0


def test_a_wrong_identity_is_refused_at_decryption(published, s3, tmp_path, capsys):
    bucket, _ = _one_delivery(s3, published, "NA-MHAISS")
    out = tmp_path / "inbox"
    assert main(_args(published, bucket, "NA-MHAISS", out, identity=_identity(published, "ZA-SARS"))) == 1
    assert ": decrypt: " in capsys.readouterr().out
    assert _files(out) == []


def test_a_signed_manifest_with_the_wrong_row_count_is_refused(published, s3, tmp_path, capsys):
    bucket, prefix = _one_delivery(s3, published, "NA-MHAISS")
    _resign(s3, published, bucket, prefix, lambda m: m.update(rows=m["rows"] + 1))
    out = tmp_path / "inbox"
    assert main(_args(published, bucket, "NA-MHAISS", out)) == 1
    assert ": row-count: " in capsys.readouterr().out
    assert _files(out) == []


def test_a_manifest_that_disagrees_with_its_path_is_refused_even_if_signed(published, s3, tmp_path, capsys):
    bucket, prefix = _one_delivery(s3, published, "NA-MHAISS")
    _resign(s3, published, bucket, prefix, lambda m: m.update(delivery_id="0" * 32))
    assert main(_args(published, bucket, "NA-MHAISS", tmp_path / "inbox")) == 1
    assert ": manifest-mismatch: " in capsys.readouterr().out


def test_a_missing_data_file_is_refused_and_a_missing_bucket_is_an_error(published, s3, tmp_path, capsys):
    bucket, prefix = _one_delivery(s3, published, "NA-MHAISS")
    s3.delete_object(Bucket=bucket, Key=prefix + "data.csv.age")
    assert main(_args(published, bucket, "NA-MHAISS", tmp_path / "a")) == 1
    assert ": data-hash: data.csv.age is missing" in capsys.readouterr().out
    assert main(_args(published, f"bx-{uuid.uuid4().hex[:12]}", "NA-MHAISS", tmp_path / "b")) == 1
    assert "NoSuchBucket" in capsys.readouterr().err


def test_one_bad_delivery_does_not_stop_the_others(published, s3, tmp_path, capsys):
    bucket = f"bx-{uuid.uuid4().hex[:12]}"
    _copy_bucket(s3, published.target.bucket, bucket)
    bad = next(p for p in _prefixes(s3, bucket, "NA-MHAISS") if "/goods_crossings/" in p)
    _flip_object(s3, bucket, bad + "data.csv.age", lambda body: len(body) // 2)
    out = tmp_path / "inbox"
    assert main(_args(published, bucket, "NA-MHAISS", out)) == 1
    captured = capsys.readouterr()
    assert captured.out.count("fetched  ") == EXPECTED["NA-MHAISS"] - 1
    assert captured.out.count("REFUSED  ") == 1 and ": data-hash: " in captured.out
    assert not list(out.glob("DSA-2026-003"))


# -- verify and decrypt one delivery --------------------------------------------------------------


def _download(s3, bucket: str, prefix: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("data.csv.age", "manifest.json", "manifest.json.sig"):
        (folder / name).write_bytes(_get(s3, bucket, prefix + name))
    return folder


def test_verify_a_prefix_and_a_folder_without_decrypting(published, s3, tmp_path, capsys):
    rt, bucket = published, published.target.bucket
    prefix = _prefixes(s3, bucket, "ZA-SARS")[0]
    hub = ["--hub-key", str(rt.home.root / "keys" / "allowed_signers")]
    endpoint = ["--s3-endpoint", rt.target.endpoint_url]
    assert main(["verify", f"s3://{bucket}/{prefix}", *hub, *endpoint]) == 0
    assert capsys.readouterr().out.startswith("ok  ")
    # The bucket layout kept on disk is checked against the manifest too.
    mirrored = _download(s3, bucket, prefix, tmp_path / "mirror" / prefix)
    assert main(["verify", str(mirrored), *hub, "--recipient", "ZA-SARS"]) == 0
    assert main(["verify", str(mirrored), *hub, "--recipient", "NA-MHAISS"]) == 1
    assert ": manifest-mismatch: " in capsys.readouterr().out

    # The hub's .pub line serves as well as allowed_signers.
    pub = tmp_path / "hub.pub"
    pub.write_text(rt.config.settings.hub.signing_public_key + "\n")
    plain = _download(s3, bucket, prefix, tmp_path / "plain")
    assert main(["verify", str(plain), "--hub-key", str(pub)]) == 0
    # Another key is not the hub's.
    other = tmp_path / "other.pub"
    other.write_text((rt.home.root / "keys" / "ZA-DHA" / "ssh_ed25519.pub").read_text())
    capsys.readouterr()
    assert main(["verify", str(plain), "--hub-key", str(other)]) == 1
    assert ": signature: " in capsys.readouterr().out

    (plain / "data.csv.age").write_bytes(_flip((plain / "data.csv.age").read_bytes(), 200))
    assert main(["verify", str(plain), "--hub-key", str(pub)]) == 1
    assert ": data-hash: " in capsys.readouterr().out
    assert not list(tmp_path.rglob("*.csv")), "verify decrypts nothing"


def test_decrypt_one_delivery_or_one_file(published, s3, tmp_path, capsys):
    rt, bucket = published, published.target.bucket
    prefix = _prefixes(s3, bucket, "BW-BURS")[0]
    identity = _identity(rt, "BW-BURS")
    hub = ["--hub-key", str(rt.home.root / "keys" / "allowed_signers")]
    folder = _download(s3, bucket, prefix, tmp_path / "delivery")
    expected = _age_decrypt(identity, (folder / "data.csv.age").read_bytes())

    out = tmp_path / "out" / "goods.csv"
    assert main(["decrypt", str(folder), "--identity", str(identity), "--out", str(out), *hub]) == 0
    assert out.read_bytes() == expected and out.stat().st_mode & 0o777 == 0o600
    from_s3 = tmp_path / "from-s3.csv"
    assert main(["decrypt", f"s3://{bucket}/{prefix}", "--identity", str(identity), "--out", str(from_s3), *hub,
                 "--s3-endpoint", rt.target.endpoint_url]) == 0
    assert from_s3.read_bytes() == expected
    bare = tmp_path / "bare.csv"
    assert main(["decrypt", str(folder / "data.csv.age"), "--no-verify", "--identity", str(identity),
                 "--out", str(bare)]) == 0
    assert bare.read_bytes() == expected
    assert "not verified" in capsys.readouterr().out

    # Given the data file without --no-verify, its folder is verified first.
    (folder / "manifest.json").write_bytes(_flip((folder / "manifest.json").read_bytes(), 50))
    refused = tmp_path / "refused.csv"
    assert main(["decrypt", str(folder / "data.csv.age"), "--identity", str(identity), "--out", str(refused),
                 *hub]) == 1
    assert ": signature: " in capsys.readouterr().out
    assert not refused.exists()
    wrong = tmp_path / "wrong.csv"
    assert main(["decrypt", str(folder / "data.csv.age"), "--no-verify", "--identity", str(_identity(rt, "ZA-SARS")),
                 "--out", str(wrong)]) == 1
    assert not wrong.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.csv", "delivery", "from-s3.csv", "out"]


def test_bad_usage_exits_2(published, tmp_path, capsys):
    rt, bucket = published, published.target.bucket
    assert main(_args(rt, bucket, "NA-MHAISS", tmp_path / "a", identity=tmp_path / "missing.key")) == 2
    not_identity = tmp_path / "not.key"
    not_identity.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    assert main(_args(rt, bucket, "NA-MHAISS", tmp_path / "b", identity=not_identity)) == 2
    assert "AGE-SECRET-KEY-1NOTAKEY" not in capsys.readouterr().err, "a mangled secret is never echoed"
    no_hub = ["fetch", "--recipient", "NA-MHAISS", "--identity", str(_identity(rt, "NA-MHAISS")), "--out",
              str(tmp_path / "c"), "--home", str(tmp_path), "--s3-endpoint", rt.target.endpoint_url, "--bucket", bucket]
    assert main(no_hub) == 2
    assert "--hub-key" in capsys.readouterr().err
    assert main(_args(rt, bucket, "../NA-MHAISS", tmp_path / "d")) == 2
    assert main(["verify", str(tmp_path / "nowhere"), "--hub-key", str(rt.home.root / "keys" / "allowed_signers")]) == 2
    with pytest.raises(SystemExit) as exited:
        main(["fetch", "--recipient", "NA-MHAISS"])
    assert exited.value.code == 2


def test_hub_key_from_the_home_settings(published, tmp_path):
    rt, bucket = published, published.target.bucket
    args = ["fetch", "--recipient", "BW-BURS", "--identity", str(_identity(rt, "BW-BURS")), "--out", str(tmp_path),
            "--home", str(rt.home.root), "--s3-endpoint", rt.target.endpoint_url, "--bucket", bucket]
    assert main(args) == 0
    assert len(list(tmp_path.rglob("data.csv"))) == EXPECTED["BW-BURS"]


def test_fetch_as_a_process_reports_progress_per_delivery(published, tmp_path):
    rt, bucket = published, published.target.bucket
    out = tmp_path / "inbox"
    done = subprocess.run([BORDERX, *_args(rt, bucket, "NA-MHAISS", out)], capture_output=True, text=True,
                          env={**os.environ, "BORDERX_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{n}/3" for n in (1, 2, 3)]
    assert "\r" not in done.stderr, "no in-place updates when stderr is not a terminal"
    assert done.stdout.count("fetched  ") == 3
    # Only ids, paths and counts reach the terminal, never a value of the data.
    sample = next(out.rglob("data.csv")).read_text().splitlines()[1]
    assert sample not in done.stdout + done.stderr


# -- the parts ------------------------------------------------------------------------------------


def test_progress_redraws_in_place_on_a_terminal():
    stream = io.StringIO()
    progress = rc.Progress(stream, tty=True, interval=0)
    progress.start(1, 2, "DSA/ds/2026-01-01_x")
    progress.update("downloading", 512, 2048)
    progress.update("downloading", 2048, 2048)
    progress.end()
    text = stream.getvalue()
    assert text.count("\r") == 3 and "2.0 KiB / 2.0 KiB 100%" in text and text.endswith("\r\x1b[K")
    quiet = io.StringIO()
    line = rc.Progress(quiet, tty=False)
    line.start(1, 1, "label")
    line.update("downloading", 1, 2)
    assert quiet.getvalue() == "[1/1] label\n"


def test_record_counter_agrees_with_the_csv_module():
    rng = random.Random(7)
    texts = [
        "a,b\n1,2\n3,4\n",
        "a,b\n1,2\n3,4",
        'a,b\n"x\ny",2\n"say ""hi""\n",4\n',
        'a,b\r\n"1\r\n",2\r\n',
        "a,b\n",
        "",
    ]
    for _ in range(30):
        rows = [[rng.choice(["plain", '"q"', "two\nlines", "", "c,omma", 'end"']) for _ in range(3)]
                for _ in range(rng.randint(0, 20))]
        buf = io.StringIO()
        csv.writer(buf, lineterminator=rng.choice(["\n", "\r\n"])).writerows([["h1", "h2", "h3"], *rows])
        texts.append(buf.getvalue())
    for text in texts:
        data = text.encode()
        counter = rc.RecordCounter()
        at = 0
        while at < len(data):
            step = rng.randint(1, 7)
            counter.feed(data[at:at + step])
            at += step
        assert counter.records == len(list(csv.reader(io.StringIO(text, newline="")))), text


def test_hub_keys_from_allowed_signers_lines(published):
    hub = published.config.settings.hub.signing_public_key
    other = (published.home.root / "keys" / "ZA-DHA" / "ssh_ed25519.pub").read_text().strip()
    text = "\n".join([
        "# comment",
        sshsig.allowed_signers_line("hub", other, "borderx-audit"),
        sshsig.allowed_signers_line("hub", hub, "borderx-audit,borderx-manifest"),
        f"other cert-authority {other}",
    ])
    assert [sshsig.fingerprint(k) for k in rc.parse_hub_keys(text)] == [sshsig.fingerprint(hub)]
    assert rc.parse_hub_keys(hub) == [" ".join(hub.split()[:2])]
    assert rc.parse_hub_keys("hub ssh-rsa AAAA\n") == []


def test_a_terminated_fetch_still_cleans_up(published, tmp_path, monkeypatch):
    import signal

    rt, bucket = published, published.target.bucket
    before = signal.getsignal(signal.SIGTERM)
    real = rc.decrypt_checked

    def terminated(*args, **kwargs):
        real(*args, **kwargs)  # plaintext now sits in the temporary folder
        assert list(tmp_path.glob(".borderx-fetch-*/delivery/data.csv"))
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(rc.staging, "decrypt_checked", terminated)  # where fetching looks it up
    with pytest.raises(SystemExit) as exited:
        main(_args(rt, bucket, "BW-BURS", tmp_path))
    assert exited.value.code == 128 + signal.SIGTERM
    assert _files(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == before


def test_fetch_reports_a_revoked_delivery_with_the_hubs_signed_reason(published, s3, tmp_path, capsys):
    rt, bucket = published, published.target.bucket
    out = tmp_path / "inbox"
    assert main(_args(rt, bucket, "NA-MHAISS", out)) == 0
    capsys.readouterr()
    prefix = _prefixes(s3, bucket, "NA-MHAISS")[0]
    delivery_id = prefix.rstrip("/").rsplit("/", 1)[1]
    assert main(["deliveries", "revoke", delivery_id, "--reason", "sent under the wrong agreement",
                 "--home", str(rt.home.root), "--s3-endpoint", rt.target.endpoint_url, "--bucket", bucket]) == 0
    capsys.readouterr()
    assert main(_args(rt, bucket, "NA-MHAISS", out)) == 0
    lines = capsys.readouterr().out.splitlines()
    [revoked] = [line for line in lines if line.startswith("REVOKED")]
    assert delivery_id in revoked and "sent under the wrong agreement" in revoked and "a copy fetched earlier" in revoked
    # A tombstone nobody signed is refused, not believed.
    s3.put_object(Bucket=bucket, Key=prefix + "tombstone.json", Body=b'{"reason": "forged"}')
    assert main(_args(rt, bucket, "NA-MHAISS", out)) == 1
    assert "tombstone.json is not signed by the hub" in capsys.readouterr().out


@pytest.mark.parametrize(("published_file", "plaintext"), [
    ("data.csv.age", "data.csv"), ("data.parquet.age", "data.parquet"),
])
def test_the_decrypted_file_is_named_after_the_signed_published_file(published_file, plaintext):
    verified = rc.Verified({"published": {"key": f"deliveries/A/R/D/2026/11/28/ID/{published_file}"}}, "SHA256:x")
    assert verified.plaintext_file == plaintext
