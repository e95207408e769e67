"""Signed heads in the bucket catch what the chain alone cannot: a rewritten trail and a cut tail; a scheduled
close signs a new head only when the trail grew, and never over a broken trail."""

from __future__ import annotations

import json

import pytest

from borderx.audit.anchors import NAMESPACE, close_if_new, verify
from borderx.audit.trail import event_hash
from borderx.errors import AuditError
from borderx.exchange import run_once
from borderx.bucket.publish import ensure_bucket


def _rewrite(trail, lines):
    trail.path.write_text("".join(lines))


def test_each_run_signs_its_head_into_the_bucket(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/heads/")["Contents"]]
    assert len(keys) == 2 and keys[1] == keys[0] + ".sig"
    head = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    last = list(runtime.trail.events())[-1]
    assert (head["seq"], head["hash"]) == (last["seq"], last["hash"])
    verdict = verify(runtime.trail, runtime.config.settings.hub.signing_public_key, runtime.s3, bucket)
    assert verdict.broken is None and verdict.heads == 1 and verdict.events == last["seq"]


def test_a_rewritten_chain_is_caught_against_the_bucket(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    lines = runtime.trail.path.read_text().splitlines(keepends=True)
    # Rewrite one event and recompute every hash after it: the chain itself verifies again.
    events = [json.loads(line) for line in lines]
    events[3]["details"]["size"] = 1
    prev = events[2]["hash"]
    for e in events[3:]:
        e["prev"] = prev
        e["hash"] = event_hash(e)
        prev = e["hash"]
    _rewrite(runtime.trail, [json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in events])
    assert runtime.trail.verify()[1] is None
    verdict = verify(runtime.trail, runtime.config.settings.hub.signing_public_key, runtime.s3, bucket)
    assert verdict.broken is not None and "rewritten" in verdict.broken.reason


def test_a_cut_tail_is_caught_against_the_bucket(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    lines = runtime.trail.path.read_text().splitlines(keepends=True)
    _rewrite(runtime.trail, lines[:-3])
    assert runtime.trail.verify()[1] is None
    verdict = verify(runtime.trail, runtime.config.settings.hub.signing_public_key, runtime.s3, bucket)
    assert verdict.broken is not None and "tail cut" in verdict.broken.reason


def test_a_forged_head_is_refused(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/heads/")["Contents"]
               if o["Key"].endswith(".json"))
    body = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body["hash"] = "0" * 64
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())
    verdict = verify(runtime.trail, runtime.config.settings.hub.signing_public_key, runtime.s3, bucket)
    assert verdict.broken is not None and "does not verify" in verdict.broken.reason
    assert NAMESPACE == "borderx-audit"


def _close(rt):
    return close_if_new(rt.trail, rt.signing_key, rt.hub_fingerprint, rt.config.settings.hub.signing_public_key,
                        rt.s3, rt.target.bucket)


def _head_keys(s3, bucket):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="audit/heads/").get("Contents", [])
            if o["Key"].endswith(".json")]


def test_a_scheduled_close_signs_only_when_there_are_new_events(runtime, s3, bucket):
    runtime.record_config_changes()  # the trail's first event, as a run or the anchor task records it
    ensure_bucket(runtime.s3, bucket)
    first = _close(runtime)
    last = list(runtime.trail.events())[-1]
    assert first.previous_seq is None and (first.head.seq, first.head.hash) == (last["seq"], last["hash"])
    assert _head_keys(s3, bucket) == [first.head.key()]

    again = _close(runtime)
    assert again.head is None and again.previous_seq == last["seq"]
    assert _head_keys(s3, bucket) == [first.head.key()]

    run_once(runtime, settle_seconds=0)
    after_run = _close(runtime)  # the run signed its own end: nothing new
    assert after_run.head is None and len(_head_keys(s3, bucket)) == 2

    runtime.trail.append("config-changed", files={"config/settings.yaml": "0" * 64})
    added = _close(runtime)
    assert added.head.seq == last_seq(runtime) and added.previous_seq == added.head.seq - 1
    assert len(_head_keys(s3, bucket)) == 3 and added.to_dict()["key"] == added.head.key()
    verdict = verify(runtime.trail, runtime.config.settings.hub.signing_public_key, runtime.s3, bucket)
    assert verdict.broken is None and verdict.heads == 3


def last_seq(rt) -> int:
    return list(rt.trail.events())[-1]["seq"]


def test_a_scheduled_close_refuses_to_sign_a_broken_or_cut_trail(runtime, s3, bucket):
    run_once(runtime, settle_seconds=0)
    lines = runtime.trail.path.read_text().splitlines(keepends=True)
    runtime.trail.append("config-changed", files={})
    tampered = json.loads(lines[4])
    tampered["details"]["size"] = 1
    _rewrite(runtime.trail, lines[:4] + [json.dumps(tampered) + "\n"] + lines[5:])
    with pytest.raises(AuditError, match="line 5"):
        _close(runtime)
    _rewrite(runtime.trail, lines[:-2])  # chain intact, but shorter than the head the run signed
    with pytest.raises(AuditError, match="tail cut"):
        _close(runtime)
    assert len(_head_keys(s3, bucket)) == 1


def test_audit_verify_names_an_unreadable_bucket_instead_of_failing_with_a_traceback(runtime, capsys):
    from borderx.cli import main

    run_once(runtime, settle_seconds=0)
    missing = "bx-no-such-bucket"
    assert main(["audit", "verify", "--home", str(runtime.home.root), "--s3-endpoint", runtime.target.endpoint_url,
                 "--bucket", missing]) == 1
    err = capsys.readouterr().err
    assert f"s3://{missing}/audit/heads/ at {runtime.target.endpoint_url}: NoSuchBucket" in err
    assert "not verified" in err
