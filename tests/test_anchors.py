"""Signed heads in the bucket catch what the chain alone cannot: a rewritten trail and a cut tail."""

from __future__ import annotations

import json

from borderx.anchors import NAMESPACE, verify
from borderx.audit import event_hash
from borderx.exchange import run_once


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
