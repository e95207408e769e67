"""Intake from an S3 prefix: agencies upload to s3://BUCKET/PREFIX/DATASET/FILE, and the hub copies each new
object into the agency's intake folder, where the folder trigger carries it through the exchange.

The bucket announces each new object to one SQS queue per agency (S3 event notifications; `setup_notifications`
configures both). `S3IntakeTrigger` (borderx.airflow.triggers) reads that queue in Airflow's triggerer through
`QueueWatch` and fires one asset event per object. Airflow's own route, `MessageQueueTrigger` with the amazon
provider's `SqsSensorTrigger`, cannot run here: it reads SQS through aiobotocore, which is not installed, and
importing it loads boto3 into every DAG parse. This trigger reads the queue with boto3 in a worker thread,
and deletes a message only once its events are out, so a stopped triggerer repeats an object (harmless: copies
happen once) rather than loses it.

Copies never delete or change the agency's object; what was copied is remembered by key and ETag
(borderx.intake.sources.copy), so an event that comes twice, or a sweep that lists the prefix again, copies
nothing more.

This module is imported when DAG files are parsed: it keeps its imports light (no boto3 at import).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from urllib.parse import unquote_plus

from borderx.intake.finding import is_candidate_name, provided_datasets
from borderx.intake.sources.copy import Copied, SourceObject, pulled_store
from borderx.intake.sources.pull import copy_from_s3, etag_of, waiting_in_s3

log = logging.getLogger(__name__)

ID_PREFIX = "borderx-intake-"


def queue_name(bucket: str, agency: str) -> str:
    """The agency's queue, named after the bucket too, so two hubs in one account never share a queue."""
    name = f"{bucket.replace('.', '-')}-intake-{agency}"
    # SQS allows 80 characters; the longest bucket names do not fit as they are.
    return name if len(name) <= 80 else f"borderx-{hashlib.sha256(bucket.encode()).hexdigest()[:16]}-intake-{agency}"


def s3_intake_agencies(home: str | os.PathLike) -> list[str]:
    """The agencies that upload to an S3 prefix, from the agencies' files only (cheap enough for DAG parsing);
    a broken file raises ConfigError."""
    from borderx.config.loader import load_sections

    agencies = load_sections(Path(home), "agencies")["agencies"]
    return sorted(a.id for a in agencies.values() if a.intake.s3_prefix)


def intake_prefixes(config) -> dict[str, str]:
    """{agency: "PREFIX/"} for every agency with an S3 intake."""
    return {a.id: a.intake.s3_prefix.strip("/") + "/" for a in config.agencies.values() if a.intake.s3_prefix}


def sqs_client(target):
    """SQS at the hub's endpoint, with the bucket client's timeouts and retries."""
    return target.sqs()


def _queue_policy(queue_arn: str, bucket: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "borderx-intake-notifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}},
        }],
    })


def setup_notifications(s3, sqs, bucket: str, prefixes: dict[str, str]) -> dict[str, str]:
    """Makes the bucket announce every object created under each agency's prefix to that agency's queue.

    Creates the bucket and queues if missing, lets only this bucket send to them, and replaces only the
    bucket's borderx notifications: whatever else is configured there stays. Returns {agency: queue URL}.
    Safe to run again after the config changed.
    """
    from borderx.bucket.publish import ensure_bucket

    ensure_bucket(s3, bucket)
    urls: dict[str, str] = {}
    ours = []
    for agency, prefix in sorted(prefixes.items()):
        url = sqs.create_queue(QueueName=queue_name(bucket, agency))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": _queue_policy(arn, bucket)})
        urls[agency] = url
        ours.append({
            "Id": f"{ID_PREFIX}{agency}",
            "QueueArn": arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix.strip("/") + "/"}]}},
        })
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    kept = [q for q in current.get("QueueConfigurations", []) if not q.get("Id", "").startswith(ID_PREFIX)]
    current["QueueConfigurations"] = kept + ours
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=current)
    return urls


def objects_in_message(body: str, bucket: str, prefix: str) -> list[dict]:
    """The objects an S3 event notification announces under `prefix` of `bucket`, as trigger payloads.

    Test events, other events, other buckets and keys that are not PREFIX/DATASET/NAME with a complete name
    yield nothing: anyone allowed to send to the queue could put a message there.
    """
    try:
        records = json.loads(body).get("Records")
    except (ValueError, AttributeError):
        return []
    found = []
    for record in records if isinstance(records, list) else []:
        try:
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            if s3["bucket"]["name"] != bucket:
                continue
            key = unquote_plus(s3["object"]["key"])
            ref = {"bucket": bucket, "key": key, "etag": etag_of(str(s3["object"]["eTag"])),
                   "size": int(s3["object"]["size"])}
        except (KeyError, TypeError, ValueError):
            continue
        rest = key[len(prefix):].split("/") if key.startswith(prefix) else []
        if len(rest) == 2 and rest[0] and is_candidate_name(rest[1]):
            found.append(ref)
    return found


class QueueWatch:
    """The synchronous part of the trigger, one poll at a time, so it can be tested without an event loop."""

    def __init__(self, home: str | os.PathLike, agency: str, wait_seconds: int = 10):
        from borderx.config.loader import load_config
        from borderx.bucket.client import Target

        config = load_config(Path(home))
        self.target = Target.resolve(config.settings.s3)
        self.prefix = intake_prefixes(config)[agency]
        self.agency = agency
        self.wait_seconds = wait_seconds
        self.sqs = sqs_client(self.target)
        self.queue_url = self.sqs.get_queue_url(QueueName=queue_name(self.target.bucket, agency))["QueueUrl"]

    def poll(self) -> list[tuple[str, list[dict]]]:
        """[(receipt handle, payloads)] of the messages waiting; a message that names no object has no payloads."""
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=self.wait_seconds, VisibilityTimeout=120)
        return [(m["ReceiptHandle"],
                 [{"agency": self.agency, **ref} for ref in objects_in_message(m.get("Body", ""),
                                                                                 self.target.bucket, self.prefix)])
                for m in response.get("Messages", [])]

    def done(self, receipt: str) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)


# -- what the DAG's tasks call ----------------------------------------------------------------------------------


def _placed(config, ref: dict) -> SourceObject | None:
    """The source object an event or a given key names, if it lies in some agency's intake prefix of the hub's
    bucket and names a dataset the agency provides; None otherwise."""
    provided = provided_datasets(config)
    for agency, prefix in intake_prefixes(config).items():
        if not ref["key"].startswith(prefix):
            continue
        rest = ref["key"][len(prefix):].split("/")
        if len(rest) == 2 and (agency, rest[0]) in provided and is_candidate_name(rest[1]):
            return SourceObject(agency, rest[0], rest[1], f"s3://{ref['bucket']}/{ref['key']}", int(ref["size"]),
                                etag_of(str(ref["etag"])))
        log.warning("s3://%s/%s is not DATASET/FILE for a dataset %s provides; left where it is",
                    ref["bucket"], ref["key"], agency)
        return None
    return None


def objects_for_keys(rt, keys: list[str]) -> list[dict]:
    """The current version of each given key (relative to the bucket), for a run started by hand."""
    found = []
    for key in keys:
        head = rt.s3.head_object(Bucket=rt.target.bucket, Key=key)
        placed = _placed(rt.config, {"bucket": rt.target.bucket, "key": key, "etag": head["ETag"],
                                     "size": head["ContentLength"]})
        if placed is not None:
            found.append(placed.to_dict())
    return found


def objects_from_events(rt, payloads: list[dict]) -> list[dict]:
    """The objects the run's asset events name, once each, only from the hub's bucket."""
    found: dict[str, dict] = {}
    for payload in payloads:
        if payload.get("bucket") != rt.target.bucket:
            continue
        placed = _placed(rt.config, payload)
        if placed is not None:
            found.setdefault(f"{placed.uri}#{placed.version}", placed.to_dict())
    return list(found.values())


def waiting_objects(rt) -> list[dict]:
    """Everything under the S3 intake prefixes not copied before: the sweep behind lost notifications."""
    store = pulled_store(rt.home)
    provided = provided_datasets(rt.config)
    found = []
    for agency, prefix in intake_prefixes(rt.config).items():
        datasets = sorted(d for a, d in provided if a == agency)
        found += [o.to_dict() for o in waiting_in_s3(rt.s3, agency, datasets, rt.target.bucket, prefix, store)]
    return found


def copy_object(rt, obj: dict) -> Copied:
    """Copies one announced object into its agency's intake folder, unless it was copied before."""
    source = SourceObject(**obj)
    folder = rt.home.intake_folder(source.agency, source.dataset, rt.config.agencies[source.agency].intake.folder)
    return copy_from_s3(rt.s3, rt.home, folder, source)
