"""The auditor trusts nothing on the hub: each attack below is tried as written and must be caught, and a clean
trail must pass with the auditor's own key, from the bucket alone, with its time stamps checked."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
from pathlib import Path

import jsonschema

from audit_fixtures import tsa, use_tsa  # noqa: F401 (a fixture)
from borderx.audit import events
from borderx.audit.trail import event_hash
from borderx.audit.verify_cmd import Asked, Audit
from borderx.cli import main
from borderx.cli.parser import build_parser
from borderx.crypto import sshsig
from borderx.dev import samples
from borderx.exchange import Runtime, run_once

HEADS = "audit/heads/"
REPO = Path(__file__).resolve().parents[2]


def _rt(home, endpoint, bucket) -> Runtime:
    return Runtime.open(home.root, endpoint_url=endpoint, bucket=bucket)


def _verify(capsys, *args) -> tuple[int, str]:
    code = main(["audit", "verify", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _where(rt) -> list[str]:
    return ["--home", str(rt.home.root), "--s3-endpoint", rt.target.endpoint_url, "--bucket", rt.target.bucket]


def _hub_key_file(rt, tmp_path):
    """The auditor's own copy of the hub key, taken when the hub was set up (before any attack)."""
    path = tmp_path / "auditor" / "hub.allowed_signers"
    path.parent.mkdir(exist_ok=True)
    key = rt.config.settings.hub.signing_public_key
    path.write_text(sshsig.allowed_signers_line("hub", key, "borderx-audit") + "\n")
    return path


def _keys(s3, bucket, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def _drop_more(rt, seed: int):
    """A further good extract for the next run (a seed the demo's own extracts do not use)."""
    start = dt.date.today() - dt.timedelta(days=7)
    samples.write_csv(rt.home.intake / "ZA-DHA" / "traveller_flows" / f"more-{seed}.csv",
                      samples.TRAVELLER_FLOWS_COLUMNS,
                      samples.traveller_flows_rows(["ZA-BEI", "ZA-LEB"], start, 7, seed=seed, small_every=9))


def _delete_head(rt, s3, seq: int):
    for suffix in ("", ".sig", ".tsr"):
        s3.delete_object(Bucket=rt.target.bucket, Key=f"{HEADS}{seq:012d}.json{suffix}")
        (rt.home.audit / "heads" / f"{seq:012d}.json{suffix}").unlink(missing_ok=True)


def _head_seqs(s3, bucket):
    return [int(k[len(HEADS):len(HEADS) + 12]) for k in _keys(s3, bucket, HEADS) if k.endswith(".json")]


def test_a_clean_trail_passes_from_the_bucket_alone_with_the_auditors_key_and_time_stamps(
        demo_home, s3_endpoint, bucket, tsa, tmp_path, capsys, caplog):  # noqa: F811
    url, authority = tsa
    use_tsa(demo_home.root, url, authority)
    rt = _rt(demo_home, s3_endpoint, bucket)
    run_once(rt, settle_seconds=0)
    _drop_more(rt, 41)
    run_once(rt, settle_seconds=0)
    hub_key = _hub_key_file(rt, tmp_path)
    ca = tmp_path / "auditor" / "tsa-ca.pem"
    ca.write_bytes(authority.ca_certificate.read_bytes())
    # No home at all: the bucket, the key and the CA are the auditor's.
    code, out = _verify(capsys, "--from-bucket", "--home", str(tmp_path / "no-home"), "--bucket", bucket,
                        "--s3-endpoint", s3_endpoint, "--hub-key", str(hub_key), "--tsa-ca", str(ca))
    assert code == 0, out
    events = len(rt.trail.path.read_text().splitlines())
    assert out.startswith(f"ok: {events} events in s3://{bucket}/audit/segments/")
    assert f"{sshsig.fingerprint(rt.config.settings.hub.signing_public_key)} from {hub_key} (the auditor's)" in out
    assert f"s3://{bucket} (from --bucket) at {s3_endpoint} (from --s3-endpoint)" in out
    seqs = _head_seqs(rt.s3, bucket)
    assert len(seqs) == 2 and all(f"head {seq}: last event" in out for seq in seqs)
    assert out.count("time-stamped 20") == 2
    # The home's own view agrees, and a segment key of another shape is skipped with a warning.
    rt.s3.put_object(Bucket=bucket, Key="audit/segments/junk.jsonl", Body=b"{}")
    with caplog.at_level(logging.WARNING):
        code, out = _verify(capsys, *_where(rt), "--from-bucket")
    assert code == 0, out
    assert any(f"s3://{bucket}/audit/segments/junk.jsonl" in r.getMessage() and "is not an audit segment" in
               r.getMessage() for r in caplog.records)


def test_stored_heads_and_tokens_verify_with_ssh_keygen_and_openssl(demo_home, s3_endpoint, bucket, tsa, tmp_path):  # noqa: F811
    url, authority = tsa
    ca = use_tsa(demo_home.root, url, authority)
    rt = _rt(demo_home, s3_endpoint, bucket)
    run_once(rt, settle_seconds=0)
    [seq] = _head_seqs(rt.s3, bucket)
    for suffix in ("", ".sig", ".tsr"):
        key = f"{HEADS}{seq:012d}.json{suffix}"
        (tmp_path / key.rpartition("/")[2]).write_bytes(rt.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    head = tmp_path / f"{seq:012d}.json"
    signers = _hub_key_file(rt, tmp_path)
    with open(head, "rb") as body:
        checked = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "hub", "-n", "borderx-audit",
                                  "-s", f"{head}.sig"], stdin=body, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    checked = subprocess.run(["openssl", "ts", "-verify", "-data", str(head), "-in", f"{head}.tsr", "-CAfile",
                              str(ca)], capture_output=True, text=True)
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
    head.write_bytes(head.read_bytes().replace(b'"seq"', b'"seq" '))
    checked = subprocess.run(["openssl", "ts", "-verify", "-data", str(head), "-in", f"{head}.tsr", "-CAfile",
                              str(ca)], capture_output=True, text=True)
    assert checked.returncode != 0, "a token vouches for these bytes only"


def test_events_with_no_head_fail(demo_home, s3_endpoint, bucket, capsys):
    rt = _rt(demo_home, s3_endpoint, bucket)
    rt.record_config_changes()
    rt.s3.create_bucket(Bucket=bucket)
    code, out = _verify(capsys, *_where(rt))
    assert code == 1 and "1 events and no signed head that verifies: nothing anchors the trail" in out


def _recompute_from(events, index):
    prev = events[index - 1]["hash"]
    for e in events[index:]:
        e["prev"] = prev
        e["hash"] = event_hash(e)
        prev = e["hash"]


def test_a_recomputed_chain_with_the_heads_after_it_deleted_fails(runtime, s3, bucket, capsys):
    rt = runtime
    run_once(rt, settle_seconds=0)
    first_head = _head_seqs(s3, bucket)[0]
    for seed in (42, 43):
        _drop_more(rt, seed)
        run_once(rt, settle_seconds=0)
    assert len(_head_seqs(s3, bucket)) == 3
    events = [json.loads(line) for line in rt.trail.path.read_text().splitlines()]
    target = first_head + 2  # an event the first head does not cover
    events[target - 1]["details"]["size"] = 1
    _recompute_from(events, target - 1)
    rt.trail.path.write_text("".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in events))
    assert rt.trail.verify()[1] is None
    for seq in _head_seqs(s3, bucket)[1:]:
        _delete_head(rt, s3, seq)
    code, out = _verify(capsys, *_where(rt))
    assert code == 1 and "the head that covered it is missing" in out, out
    code, out = _verify(capsys, *_where(rt), "--from-bucket")
    assert code == 1, out


def test_a_head_taken_out_of_the_middle_is_a_gap(runtime, s3, bucket, capsys):
    rt = runtime
    run_once(rt, settle_seconds=0)
    for seed in (44, 45):
        _drop_more(rt, seed)
        run_once(rt, settle_seconds=0)
    middle = _head_seqs(s3, bucket)[1]
    _delete_head(rt, s3, middle)
    code, out = _verify(capsys, *_where(rt))
    assert code == 1 and "gap in the heads" in out, out
    code, out = _verify(capsys, *_where(rt), "--local")
    assert code == 1 and "gap in the heads" in out, out


def test_settings_pointed_at_an_empty_bucket_and_another_key_do_not_fool_the_auditor(runtime, s3, bucket, tmp_path,
                                                                                   capsys):
    rt = runtime
    run_once(rt, settle_seconds=0)
    hub_key = _hub_key_file(rt, tmp_path)
    empty = bucket + "-empty"
    s3.create_bucket(Bucket=empty)
    settings = rt.home.config / "settings.yaml"
    _, forged_key = sshsig.generate_ed25519_keypair("hub")
    text = settings.read_text()
    text = text.replace(rt.config.settings.hub.signing_public_key, forged_key).replace("borderx-demo", empty)
    settings.write_text(text)
    home_only = ["--home", str(rt.home.root), "--s3-endpoint", rt.target.endpoint_url]
    code, out = _verify(capsys, *home_only)
    assert code == 1 and f"s3://{empty} (from the home's settings)" in out
    assert "nothing anchors the trail" in out and "(trusted as the hub gives it" in out
    code, out = _verify(capsys, *home_only, "--bucket", bucket, "--hub-key", str(hub_key))
    assert code == 0, out
    assert f"s3://{bucket} (from --bucket)" in out and f"from {hub_key} (the auditor's)" in out
    assert sshsig.fingerprint(forged_key) not in out


def test_the_newest_head_removed_after_the_auditor_saw_it_is_a_rollback(runtime, s3, bucket, tmp_path, capsys):
    rt = runtime
    state = tmp_path / "auditor" / "state.json"
    run_once(rt, settle_seconds=0)
    kept = len(rt.trail.path.read_text().splitlines())
    code, out = _verify(capsys, *_where(rt), "--state", str(state))
    assert code == 0, out
    _drop_more(rt, 46)
    run_once(rt, settle_seconds=0)
    code, out = _verify(capsys, *_where(rt), "--state", str(state))
    assert code == 0, out
    newest = _head_seqs(s3, bucket)[-1]
    assert json.loads(state.read_text())["seq"] == newest
    # The hub's copy, the heads and the segments are all taken back to the first run, consistently.
    _delete_head(rt, s3, newest)
    for key in _keys(s3, bucket, "audit/segments/"):
        if key.endswith(f"-{newest:012d}.jsonl"):
            s3.delete_object(Bucket=bucket, Key=key)
    rt.trail.path.write_text("".join(rt.trail.path.read_text().splitlines(keepends=True)[:kept]))
    code, out = _verify(capsys, *_where(rt))
    assert code == 0, "without a memory the cut cannot be seen: " + out
    code, out = _verify(capsys, *_where(rt), "--state", str(state))
    assert code == 1 and f"head {newest} was seen before (state file)" in out and "rollback" in out
    assert json.loads(state.read_text())["seq"] == newest, "a failed check keeps the memory as it was"


def test_unanchored_events_are_reported_and_fail_once_older_than_the_limit(runtime, capsys):
    rt = runtime
    run_once(rt, settle_seconds=0)
    rt.trail.append("config-changed", files={})
    code, out = _verify(capsys, *_where(rt))
    assert code == 0 and "1 unanchored event(s) after head" in out
    args = build_parser().parse_args(["audit", "verify", *_where(rt)])
    audit = Audit.open(args.home, Asked.from_args(args))
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=3, minutes=1)
    audit.run(later)
    lines = audit.report()
    assert not audit.ok and any("FAILED: 1 unanchored event(s)" in line and "(audit.max_unanchored_age 3:00:00)" in line
                                for line in lines)


def test_tsa_down_past_the_accepted_wait_stops_publishing_until_it_answers(demo_home, s3_endpoint, bucket, tmp_path,
                                                                          capsys, caplog):
    from airflow_procs import free_port

    from borderx.dev.tsa import local_tsa

    port = free_port()
    authority_folder = tmp_path / "tsa"
    with local_tsa(authority_folder, port=port) as (url, authority):
        pass  # made and stopped: the TSA is down from here on
    use_tsa(demo_home.root, url, authority, acceptable_timestamp_failure="PT0S")
    rt = _rt(demo_home, s3_endpoint, bucket)
    run = ["run", "--once", "--settle", "0", *_where(rt)]
    with caplog.at_level(logging.WARNING):
        assert main(run) == 1  # the demo's bad extracts are quarantined; the good ones are published
    published = _keys(rt.s3, bucket, "deliveries/")
    assert published
    types = [e["type"] for e in rt.trail.events()]
    assert types.count("timestamp-deferred") == 1 and json.loads((demo_home.state / "timestamps.json").read_text())[
        "pending"]

    _drop_more(rt, 47)
    capsys.readouterr()
    assert main(run) == 1
    err = capsys.readouterr().err
    assert "publishing stopped" in err and url in err and "acceptable_timestamp_failure" in err
    assert _keys(rt.s3, bucket, "deliveries/") == published
    assert main(run) == 1
    types = [e["type"] for e in rt.trail.events()]
    assert types.count("publishing-stopped") == 1, "recorded once, not at every refusal"

    with local_tsa(authority_folder, port=port):
        assert main(run) == 0
        types = [e["type"] for e in rt.trail.events()]
        assert types.count("timestamp-resumed") == 1
        assert len(_keys(rt.s3, bucket, "deliveries/")) > len(published)
        resumed = next(e for e in rt.trail.events() if e["type"] == "timestamp-resumed")
        assert resumed["details"]["publishing_stopped"] is True and resumed["details"]["stamped"] >= 1
    schema = json.loads((REPO / "docs" / "events" / events.SCHEMA_FILE).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for event in rt.trail.events():
        assert not list(validator.iter_errors(event)), event
    heads = _head_seqs(rt.s3, bucket)
    tokens = [k for k in _keys(rt.s3, bucket, HEADS) if k.endswith(".tsr")]
    assert len(tokens) == len(heads), "every head waiting was stamped once the TSA answered"
    code, out = _verify(capsys, *_where(rt))
    assert code == 0 and out.count("time-stamped 20") == len(heads), out


def test_the_guides_plain_python_check_passes_a_copy_of_the_bucket_and_catches_a_gap(runtime, s3, bucket, tmp_path):
    rt = runtime
    run_once(rt, settle_seconds=0)
    for seed in (48, 49):
        _drop_more(rt, seed)
        run_once(rt, settle_seconds=0)
    guide = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
    script = tmp_path / "check.py"
    script.write_text(guide.split("```python\n")[1].split("```")[0])
    copy = tmp_path / "audit"
    for key in _keys(s3, bucket, "audit/"):
        (copy / key).parent.mkdir(parents=True, exist_ok=True)
        (copy / key).write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    done = subprocess.run(["python3", str(script)], cwd=copy / "audit", capture_output=True, text=True)
    events = len(rt.trail.path.read_text().splitlines())
    assert done.returncode == 0 and f"chain intact: {events} events, 3 heads" in done.stdout, done.stderr
    middle = sorted((copy / "audit" / "heads").glob("*.json"))[1]
    middle.unlink()
    done = subprocess.run(["python3", str(script)], cwd=copy / "audit", capture_output=True, text=True)
    assert done.returncode != 0 and "AssertionError" in done.stderr


def test_a_planted_or_changed_segment_fails_the_check_from_the_bucket_naming_it(runtime, s3, bucket, tmp_path, capsys):
    rt = runtime
    run_once(rt, settle_seconds=0)
    hub_key = _hub_key_file(rt, tmp_path)
    [segment] = _keys(s3, bucket, "audit/segments/")
    original = s3.get_object(Bucket=bucket, Key=segment)["Body"].read()
    alone = ["--from-bucket", "--home", str(tmp_path / "no-home"), "--bucket", bucket, "--s3-endpoint",
             rt.target.endpoint_url, "--hub-key", str(hub_key)]
    assert _verify(capsys, *alone)[0] == 0
    lines = original.splitlines(keepends=True)
    event = json.loads(lines[2])
    event["details"]["size"] = 1
    s3.put_object(Bucket=bucket, Key=segment, Body=b"".join([*lines[:2], json.dumps(event).encode() + b"\n",
                                                              *lines[3:]]))
    code, out = _verify(capsys, *alone)
    assert code == 1 and "the chain breaks at event 3 (seq 3): content changed" in out
    s3.put_object(Bucket=bucket, Key=segment, Body=b"".join(lines[:5]))
    code, out = _verify(capsys, *alone)
    assert code == 1 and f"s3://{bucket}/{segment} ends at seq 5" in out
    s3.put_object(Bucket=bucket, Key=segment, Body=original)
    s3.put_object(Bucket=bucket, Key="audit/segments/000000000001-000000000002.jsonl", Body=b"not json\n")
    code, out = _verify(capsys, *alone)
    assert code == 1 and "000000000001-000000000002.jsonl line 1: not a JSON event" in out


def test_a_time_stamp_taken_away_fails_once_the_accepted_wait_is_over(demo_home, s3_endpoint, bucket, tsa, tmp_path):  # noqa: F811
    url, authority = tsa
    ca = use_tsa(demo_home.root, url, authority)
    rt = _rt(demo_home, s3_endpoint, bucket)
    run_once(rt, settle_seconds=0)
    _drop_more(rt, 50)
    run_once(rt, settle_seconds=0)
    first, second = _head_seqs(rt.s3, bucket)
    asked = Asked(bucket=bucket, s3_endpoint=s3_endpoint, hub_key=_hub_key_file(rt, tmp_path), tsa_ca=ca,
                  from_bucket=True, state=tmp_path / "auditor" / "state.json")
    audit = Audit.open(tmp_path / "no-home", asked)
    now = dt.datetime.now(dt.timezone.utc)
    assert audit.run(now).ok and json.loads(asked.state.read_text())["stamped_from"] == first
    rt.s3.delete_object(Bucket=bucket, Key=f"{HEADS}{second:012d}.json.tsr")
    found = audit.run(now)
    assert found.ok and any(f"head {second}: no time stamp" in n for n in found.notes), "waiting, for now"
    found = audit.run(now + dt.timedelta(hours=4, minutes=1))
    assert not found.ok and any(f"head {second}: no time stamp" in p for p in found.problems)
    # Every token taken away: the memory knows stamps began at the first head.
    rt.s3.delete_object(Bucket=bucket, Key=f"{HEADS}{first:012d}.json.tsr")
    found = audit.run(now + dt.timedelta(hours=4, minutes=1))
    assert not found.ok and any(f"head {first}: no time stamp" in p for p in found.problems)
    rt.s3.put_object(Bucket=bucket, Key=f"{HEADS}{first:012d}.json.tsr", Body=b"\x30\x03abc")
    found = audit.run(now)
    assert not found.ok and any(f"head {first}:" in p and "not a valid time stamp" in p for p in found.problems)
