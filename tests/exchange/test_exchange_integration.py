"""One exchange end to end through a real S3 endpoint over HTTP, checked with tools nobody here wrote."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

from borderx.exchange import run_once
from borderx.delivery.manifest import NAMESPACE
from borderx.validation.datadocs import ensure_page, source_of

BAD = ("resent", "_v2", "_draft")  # the demo's rejected extracts carry these in their names
DELIVERIES = 6  # traveller_flows: two providers to two recipients; goods_crossings: one provider to two


def _is_bad(name: str) -> bool:
    return any(tag in name for tag in BAD)


def _objects(s3, bucket: str, prefix: str = "deliveries/") -> dict[str, bytes]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def _deliveries(objects: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    grouped: dict[str, dict[str, bytes]] = {}
    for key, body in objects.items():
        if key.startswith("deliveries/"):
            prefix, name = key.rsplit("/", 1)
            grouped.setdefault(prefix, {})[name] = body
    return grouped


def _expected_rows(source: Path, columns: list[str], count_column: str | None, k: int) -> list[list[str]]:
    with open(source, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [[r[c] for c in columns] for r in rows if not (count_column and 0 < int(r[count_column]) < k)]


def test_publish_decrypt_with_age_and_verify_with_ssh_keygen(runtime, s3, bucket, tmp_path):
    home = runtime.home
    sources = {p.name: p.read_bytes() for p in home.intake.rglob("*.csv")}
    summary = run_once(runtime, settle_seconds=0)

    assert len(summary.published) == DELIVERIES
    assert {q["name"] for q in summary.quarantined} == {n for n in sources if _is_bad(n)}

    deliveries = _deliveries(_objects(s3, bucket))
    assert len(deliveries) == DELIVERIES
    config = runtime.config
    allowed_signers = home.root / "keys" / "allowed_signers"
    for prefix, files in deliveries.items():
        _, agreement, recipient, dataset, yyyy, mm, dd, delivery_id = prefix.split("/")
        assert set(files) == {"data.csv.age", "manifest.json", "manifest.json.sig"}
        folder = tmp_path / delivery_id
        folder.mkdir()
        for name, body in files.items():
            (folder / name).write_bytes(body)

        verify = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed_signers), "-I", "hub", "-n", NAMESPACE,
             "-s", str(folder / "manifest.json.sig")],
            input=files["manifest.json"], capture_output=True,
        )
        assert verify.returncode == 0, verify.stderr.decode()

        manifest = json.loads(files["manifest.json"])
        assert (manifest["agreement"], manifest["recipient"], manifest["dataset"]) == (agreement, recipient, dataset)
        assert manifest["delivery_id"] == delivery_id
        assert manifest["published"]["sha256"] == hashlib.sha256(files["data.csv.age"]).hexdigest()
        assert manifest["validation"]["success"] is True
        terms = config.agreements[agreement].terms_for(recipient)
        allowed = [c for c in config.datasets[dataset].columns if c in terms.columns]
        assert manifest["columns"] == allowed
        assert files["data.csv.age"].startswith(b"age-encryption.org/v1\n")

        plain = subprocess.run(
            ["age", "-d", "-i", str(home.root / "keys" / recipient / "age.key"), str(folder / "data.csv.age")],
            capture_output=True, check=True,
        ).stdout
        header, *rows = list(csv.reader(io.StringIO(plain.decode("utf-8"))))
        assert header == allowed

        archived = next(home.archive.rglob(manifest["source"]["name"]))
        assert hashlib.sha256(archived.read_bytes()).hexdigest() == manifest["source"]["sha256"]
        assert archived.read_bytes() == sources[manifest["source"]["name"]]
        count_column = config.datasets[dataset].count_column
        expected = _expected_rows(archived, allowed, count_column, manifest["suppressed"]["min_cell_size"])
        assert rows == expected
        assert manifest["rows"] == len(rows)
        suppressed = manifest["suppressed"]["rows"]
        assert suppressed + len(rows) == sum(1 for _ in open(archived)) - 1
        assert (suppressed > 0) == (dataset == "traveller_flows")

    # The other recipient's key opens nothing of this one's.
    za_sars = next(p for p in deliveries if "/ZA-SARS/" in p)
    denied = subprocess.run(
        ["age", "-d", "-i", str(home.root / "keys" / "NA-MHAISS" / "age.key")],
        input=deliveries[za_sars]["data.csv.age"], capture_output=True,
    )
    assert denied.returncode != 0


def test_rejected_extracts_are_quarantined_byte_for_byte_with_reports(runtime, s3, bucket):
    home = runtime.home
    bad = {p.name: p.read_bytes() for p in home.intake.rglob("*.csv") if _is_bad(p.name)}
    run_once(runtime, settle_seconds=0)

    published_sources = {
        json.loads(body)["source"]["sha256"]
        for key, body in _objects(s3, bucket).items() if key.endswith("manifest.json")
    }
    for name, original in bad.items():
        kept = next(home.quarantine.rglob(name))
        assert kept.read_bytes() == original
        assert hashlib.sha256(original).hexdigest() not in published_sources
        report = json.loads(kept.with_name(name + ".report.json").read_text())
        text = kept.with_name(name + ".report.txt").read_text()
        assert report["reasons"], report
        for reason in report["reasons"]:
            assert reason["rule"] in text
        page = kept.with_name(name + ".validation.html")
        assert report["data_docs"] == page.name and "<html" in page.read_text().lower()
    resent = json.loads(next(home.quarantine.rglob("*resent.csv.report.json")).read_text())
    failed = {(r["rule"], r["column"]) for r in resent["reasons"]}
    assert ("expect_column_values_to_be_in_set", "direction") in failed
    assert ("expect_column_values_to_match_regex", "nationality") in failed
    assert ("expect_column_values_to_match_regex", "travellers") in failed
    # Row numbers, never the offending values, reach the report.
    serialized = json.dumps(resent)
    assert "INBOUND" not in serialized and "South Africa" not in serialized
    v2 = json.loads(next(home.quarantine.rglob("*_v2.csv.report.json")).read_text())
    assert any("travel_mode" in json.dumps(r) for r in v2["reasons"])
    draft = json.loads(next(home.quarantine.rglob("*_draft.csv.report.json")).read_text())
    failed = {(r["column"], tuple(r["rows"])) for r in draft["reasons"]}
    assert ("hs_code", (3,)) in failed and ("destination_country", (8,)) in failed
    assert not list(home.intake.rglob("*.csv")), "every complete file was taken out of intake"
    assert list(home.intake.rglob("*.part")), "a half-transferred file is left alone"


def test_running_again_publishes_nothing_new(runtime, s3, bucket):
    home = runtime.home
    run_once(runtime, settle_seconds=0)
    before = _objects(s3, bucket)

    again = run_once(runtime, settle_seconds=0)
    assert again.files == 0 and not again.published

    # The same extracts dropped again are recognised by content and kept aside, not re-published.
    for archived in home.archive.rglob("*.csv"):
        agency, dataset = archived.relative_to(home.archive).parts[:2]
        shutil.copy2(archived, home.intake / agency / dataset / ("re-" + archived.name))
    redo = run_once(runtime, settle_seconds=0)
    assert redo.files == 3 and not redo.published
    assert all(q["reasons"][0]["rule"] == "duplicate" for q in redo.quarantined)

    # Even with the hub's ledger lost, the delivery ids find what the bucket already holds.
    shutil.rmtree(home.state)
    for archived in home.archive.rglob("re-*.csv"):
        archived.unlink()
    for original in list(home.archive.rglob("*.csv")):
        agency, dataset = original.relative_to(home.archive).parts[:2]
        shutil.copy2(original, home.intake / agency / dataset / original.name)
    from borderx.exchange import Runtime

    fresh = Runtime.open(home.root, endpoint_url=runtime.target.endpoint_url, bucket=bucket)
    lost = run_once(fresh, settle_seconds=0)
    assert not lost.published and len(lost.already_published) == DELIVERIES
    assert _objects(s3, bucket) == before


def test_the_bucket_is_asked_about_a_delivery_only_when_an_earlier_attempt_may_have_made_it(runtime, s3, bucket):
    asked = []
    real = runtime.s3.head_object

    def head_object(**kwargs):
        asked.append(kwargs["Key"])
        return real(**kwargs)

    runtime.s3.head_object = head_object
    first = run_once(runtime, settle_seconds=0)
    assert len(first.published) == DELIVERIES
    assert not [k for k in asked if k.startswith("deliveries/")], "content claimed for the first time"

    # A claim the ledger holds as unfinished (an interrupted run) looks for what that run may have published.
    archived = sorted(runtime.home.archive.rglob("*.csv"))[0]
    agency, dataset = archived.relative_to(runtime.home.archive).parts[:2]
    sha256 = hashlib.sha256(archived.read_bytes()).hexdigest()
    runtime.ledger.settle(sha256, "received")
    shutil.copy2(archived, runtime.home.intake / agency / dataset / archived.name)
    archived.unlink()
    again = run_once(runtime, settle_seconds=0)
    assert again.already_published and not again.published
    assert [k for k in asked if k.startswith("deliveries/")]


def test_audit_trail_records_every_step_and_verifies(runtime):
    run_once(runtime, settle_seconds=0)
    count, broken = runtime.trail.verify()
    assert broken is None and count > 0
    validated = [e for e in runtime.trail.events() if e["type"] == "validated" and e["details"]["success"]]
    # A passing file's page is rendered from its source on first need.
    assert validated and all(source_of(e["details"]["data_docs"]).is_file() for e in validated)
    assert all(ensure_page(e["details"]["data_docs"]) for e in validated)
    types = [e["type"] for e in runtime.trail.events()]
    for step in ("received", "validated", "quarantined", "minimised", "suppressed", "encrypted", "signed",
                 "published", "archived"):
        assert step in types, step
    published = [e for e in runtime.trail.events() if e["type"] == "published"]
    assert len(published) == DELIVERIES and all(len(e["details"]["keys"]) == 3 for e in published)


def test_a_file_quarantined_after_passing_its_suite_takes_its_page_along_rendered(runtime):
    good = next(p for p in runtime.home.intake.rglob("*.csv") if not _is_bad(p.name))
    # Its suite passes; a signature that does not verify sends it to quarantine after all.
    signed = good.with_name("signed-" + good.name)
    shutil.copyfile(good, signed)
    signed.with_name(signed.name + ".sig").write_text("-----BEGIN SSH SIGNATURE-----\nbm90\n-----END SSH SIGNATURE-----\n")
    good.unlink()
    summary = run_once(runtime, settle_seconds=0)
    passed = [q for q in summary.quarantined
              if json.loads(Path(q["file"] + ".report.json").read_text())["validation"]["success"]]
    assert [Path(q["file"]).name for q in passed] == [signed.name]
    for q in passed:
        report = json.loads(Path(q["file"] + ".report.json").read_text())
        page = Path(q["file"] + ".validation.html")
        assert report["data_docs"] == page.name and "Expectation Validation Result" in page.read_text()
        assert page.stat().st_mode & 0o777 == 0o600
    sha12 = {json.loads(Path(q["file"] + ".report.json").read_text())["sha256"][:12] for q in passed}
    assert not [p for p in runtime.home.datadocs.rglob("*") if p.parent.name in sha12 or p.name in sha12], (
        "nothing of its page is left among the accepted files' pages")
