"""Parquet in and Parquet out, end to end through a real S3 endpoint: `age -d` and pyarrow open what the hub
publishes, `fetch` writes data.parquet, and a file that is not Parquet is quarantined with its reason."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from borderx import recipient as rc
from borderx.dev import samples
from borderx.dev.demo import prepare_home
from borderx.exchange import Runtime, run_once

TODAY = dt.date.today()
START = TODAY - dt.timedelta(days=7)
COLUMNS = samples.TRAVELLER_FLOWS_COLUMNS
NA_COLUMNS = COLUMNS  # NA-MHAISS may receive every column of traveller_flows (DSA-2026-001)
SARS_COLUMNS = ["period", "border_point", "direction", "travel_mode", "traveller_category", "travellers"]
K = 5


def _rows(points: list[str], seed: int) -> list[list[str]]:
    return list(samples.traveller_flows_rows(points, START, 7, seed=seed, small_every=9))


def _as_parquet(path: Path, rows: list[list[str]], *, row_group_size: int = 50) -> Path:
    """The rows as a provider's tools would write them: the count a float (12.0), the period a date."""
    columns = list(zip(*rows))
    arrays = [pa.array(list(values)) for values in columns[:-1]]
    arrays[0] = pa.array([dt.date.fromisoformat(v) for v in columns[0]], pa.date32())
    arrays.append(pa.array([float(v) for v in columns[-1]], pa.float64()))
    pq.write_table(pa.table(arrays, names=COLUMNS), path, row_group_size=row_group_size)
    return path


def _parquet_terms(home) -> None:
    agreement = home.root / "config" / "agreements" / "DSA-2026-001.yaml"
    text = agreement.read_text()
    anchor = "  - agency: NA-MHAISS\n"
    assert anchor in text
    agreement.write_text(text.replace(anchor, anchor + "    format: parquet\n"))


def _expected(rows: list[list[str]], columns: list[str]) -> list[dict]:
    kept = [dict(zip(COLUMNS, r)) for r in rows if not 0 < int(r[-1]) < K]
    return [{c: int(r[c]) if c == "travellers" else r[c] for c in columns} for r in kept]


@pytest.fixture(scope="module")
def exchanged(tmp_path_factory, s3_endpoint):
    """ZA-DHA drops Parquet, BW-DIC drops CSV, plus two .parquet files that are not Parquet; NA-MHAISS's terms
    say format: parquet, ZA-SARS's nothing (CSV)."""
    home = prepare_home(tmp_path_factory.mktemp("parquet") / "home", TODAY)
    _parquet_terms(home)
    za, bw = home.intake / "ZA-DHA" / "traveller_flows", home.intake / "BW-DIC" / "traveller_flows"
    za_rows, bw_rows = _rows(["ZA-BEI", "ZA-LEB"], 1), _rows(["BW-RAM", "BW-MART"], 2)
    _as_parquet(za / f"za-dha_flows_{START}.parquet", za_rows)
    samples.write_csv(bw / f"bw-dic_flows_{START}.csv", COLUMNS, bw_rows)
    whole = (za / f"za-dha_flows_{START}.parquet").read_bytes()
    (za / "za-dha_flows_cut.parquet").write_bytes(whole[: len(whole) // 2])
    (za / "za-dha_flows_text.parquet").write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    bucket = "bx-parquet"
    rt = Runtime.open(home.root, endpoint_url=s3_endpoint, bucket=bucket)
    summary = run_once(rt, settle_seconds=0)
    return rt, summary, {"ZA-DHA": za_rows, "BW-DIC": bw_rows}


def _delivered(s3, bucket: str, recipient: str) -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="deliveries/"):
        for obj in page.get("Contents", []):
            prefix, name = obj["Key"].rsplit("/", 1)
            if f"/{recipient}/" in prefix:
                out.setdefault(prefix, {})[name] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _age_decrypt(rt, recipient: str, data: bytes) -> bytes:
    identity = rt.home.root / "keys" / recipient / "age.key"
    return subprocess.run(["age", "-d", "-i", str(identity)], input=data, capture_output=True, check=True).stdout


def test_parquet_terms_get_a_parquet_file_that_age_and_pyarrow_open(exchanged, s3):
    rt, summary, sources = exchanged
    assert len(summary.published) == 4
    deliveries = _delivered(s3, rt.target.bucket, "NA-MHAISS")
    assert len(deliveries) == 2
    for files in deliveries.values():
        assert set(files) == {"data.parquet.age", "manifest.json", "manifest.json.sig"}
        manifest = json.loads(files["manifest.json"])
        published = manifest["published"]
        assert published["format"] == "parquet" and published["key"].endswith("/data.parquet.age")
        assert published["arrow_schema"] == [
            {"name": c, "type": "int64" if c == "travellers" else "string"} for c in NA_COLUMNS]
        table = pq.read_table(io.BytesIO(_age_decrypt(rt, "NA-MHAISS", files["data.parquet.age"])))
        assert [(f.name, str(f.type)) for f in table.schema] == [(s["name"], s["type"]) for s in published["arrow_schema"]]
        # The same rows whichever format came in: the allowed columns after small-cell suppression.
        assert table.to_pylist() == _expected(sources[manifest["provider"]], NA_COLUMNS)
        assert manifest["rows"] == table.num_rows and manifest["suppressed"]["rows"] > 0


def test_csv_terms_get_integer_counts_from_a_parquet_extract(exchanged, s3):
    rt, _, sources = exchanged
    deliveries = _delivered(s3, rt.target.bucket, "ZA-SARS")
    assert len(deliveries) == 2
    for files in deliveries.values():
        manifest = json.loads(files["manifest.json"])
        assert set(files) == {"data.csv.age", "manifest.json", "manifest.json.sig"}
        assert manifest["published"]["format"] == "csv" and "arrow_schema" not in manifest["published"]
        header, *rows = list(csv.reader(io.StringIO(_age_decrypt(rt, "ZA-SARS", files["data.csv.age"]).decode())))
        assert header == SARS_COLUMNS
        expected = _expected(sources[manifest["provider"]], SARS_COLUMNS)
        # 12.0 in the Parquet extract is 12 in the CSV delivery, as in the CSV extract.
        assert rows == [[str(r[c]) for c in SARS_COLUMNS] for r in expected]


def test_fetch_writes_data_parquet(exchanged, tmp_path):
    rt, _, sources = exchanged
    s3 = rt.target.client()
    report = rc.fetch(s3, rt.target.bucket, "NA-MHAISS", rc.load_identities(rt.home.root / "keys" / "NA-MHAISS" / "age.key"),
                      rc.hub_keys(rt.home.root / "keys" / "allowed_signers", rt.home), tmp_path / "inbox")
    assert report.ok and len(report.fetched) == 2
    for outcome in report.fetched:
        assert sorted(p.name for p in outcome.folder.iterdir()) == ["data.parquet", "manifest.json", "manifest.json.sig"]
        table = pq.read_table(outcome.folder / "data.parquet")
        assert table.num_rows == outcome.rows
        assert (outcome.folder / "data.parquet").stat().st_mode & 0o777 == 0o600


def test_files_that_are_not_parquet_are_quarantined_with_a_reason_naming_them(exchanged):
    rt, summary, _ = exchanged
    assert {q["name"] for q in summary.quarantined} == {"za-dha_flows_cut.parquet", "za-dha_flows_text.parquet"}
    for name, problem in (("za-dha_flows_cut.parquet", "cut short or corrupt Parquet file"),
                          ("za-dha_flows_text.parquet", "not a Parquet file")):
        kept = next(rt.home.quarantine.rglob(name))
        report = json.loads(kept.with_name(name + ".report.json").read_text())
        reasons = [r for r in report["reasons"] if r["rule"] == "unreadable"]
        assert reasons and name in reasons[0]["message"] and problem in reasons[0]["message"], report
        receipts = rt.home.intake / "ZA-DHA" / "receipts" / "traveller_flows"
        receipt = json.loads((receipts / f"{name}.receipt.json").read_text())
        assert receipt["outcome"] == "quarantined" and receipt["reasons"][0]["rule"] == "unreadable"
    accepted = json.loads((receipts / f"za-dha_flows_{START}.parquet.receipt.json").read_text())
    assert accepted["outcome"] == "accepted" and len(accepted["deliveries"]) == 2


def test_verify_and_decrypt_a_parquet_delivery_folder_and_prefix(exchanged, tmp_path):
    rt, _, _ = exchanged
    s3 = rt.target.client()
    keys = rc.hub_keys(rt.home.root / "keys" / "allowed_signers", rt.home)
    identities = rc.load_identities(rt.home.root / "keys" / "NA-MHAISS" / "age.key")
    prefix, files = next(iter(_delivered(s3, rt.target.bucket, "NA-MHAISS").items()))
    folder = tmp_path / "delivery"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_bytes(body)
    for given in (str(folder), f"s3://{rt.target.bucket}/{prefix}/"):
        out = tmp_path / f"out-{len(given)}.parquet"
        rows, verified = rc.decrypt_source(rc.parse_source(given, None), identities, out, keys=keys, s3=s3)
        assert verified.format == "parquet" and rows == verified.rows == pq.read_table(out).num_rows
    # A folder whose data file is not the one its manifest names is refused.
    (folder / "data.csv.age").write_bytes(files["data.parquet.age"])
    (folder / "data.parquet.age").unlink()
    with pytest.raises(rc.DeliveryRefused) as refused:
        rc.verify_source(rc.parse_source(str(folder), None), keys)
    assert refused.value.check == rc.DATA_HASH and "data.parquet.age missing" in refused.value.reason


def test_csv_manifests_keep_their_fields():
    from borderx.delivery.manifest import DeliveryLocation, build_manifest

    common = dict(location=DeliveryLocation("A", "R", "D", "2026-11-28", "id"), provider="P", schema_version="1",
                  rows=1, columns=["c"], source_sha256="0" * 64, source_name="x.csv", published_sha256="1" * 64,
                  published_size=1, suppressed={}, validation={}, recipient_keys=[], hub_key_fingerprint="SHA256:x",
                  airflow=None, created_at="2026-11-28T00:00:00Z")
    csv_manifest = build_manifest(**common)
    assert csv_manifest == build_manifest(**common, data_format="csv", arrow_schema=[{"name": "c", "type": "string"}])
    assert set(csv_manifest["published"]) == {"key", "sha256", "size", "format", "encryption"}
    assert csv_manifest["published"]["format"] == "csv" and csv_manifest["published"]["key"].endswith("/data.csv.age")
    parquet = build_manifest(**common, data_format="parquet", arrow_schema=[{"name": "c", "type": "string"}])
    assert parquet["published"]["key"].endswith("/data.parquet.age")
    assert parquet["published"]["arrow_schema"] == [{"name": "c", "type": "string"}]


def test_a_signed_manifest_whose_format_and_data_file_disagree_is_refused(exchanged):
    from borderx.crypto import sshsig
    from borderx.delivery.manifest import NAMESPACE
    from borderx.keys import load_signing_key

    rt, _, _ = exchanged
    s3 = rt.target.client()
    keys = rc.hub_keys(rt.home.root / "keys" / "allowed_signers", rt.home)
    hub = load_signing_key(rt.config.settings.hub.signing_key, rt.home.root)
    _, files = next(iter(_delivered(s3, rt.target.bucket, "NA-MHAISS").items()))
    manifest = json.loads(files["manifest.json"])
    for change in ({"format": "csv"}, {"key": manifest["published"]["key"].replace(".parquet.age", ".xlsx.age"),
                                        "format": "xlsx"}):
        bad = {**manifest, "published": {**manifest["published"], **change}}
        body = (json.dumps(bad, indent=2, sort_keys=True) + "\n").encode()
        with pytest.raises(rc.DeliveryRefused) as refused:
            rc.verify_manifest(body, sshsig.sign(hub, body, NAMESPACE).encode(), keys)
        assert refused.value.check == rc.MANIFEST_MISMATCH
    body = files["manifest.json"]
    assert rc.verify_manifest(body, files["manifest.json.sig"], keys).data_file == "data.parquet.age"
