"""The kinds of event the audit trail records, each defined once: its name, its fields and what they mean.

Writers build an event with its class and hand it to the trail (`trail.record(Published(...), actor=...)`);
the report picks events by the same classes (`Published.TYPE`); the JSON Schema in docs/events/ is generated
from them (`python -m borderx.audit.events docs/events`) and a test keeps the two equal.

Events hold ids, hashes, counts, names and outcomes: never a data value or key material.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Iterator, Union


class _Absent:
    """The default of a field that a writer may leave out: it is then not in the event at all."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Event:
    """One event's details; the trail adds the sequence number, time, type, actor and hashes around them."""

    TYPE: ClassVar[str]

    def details(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not ABSENT}


@dataclass(frozen=True)
class _ExtractEvent(Event):
    provider: str
    dataset: str
    source_sha256: str | None
    source_name: str


@dataclass(frozen=True)
class _DeliveryEvent(Event):
    delivery_id: str
    agreement: str
    provider: str
    recipient: str
    dataset: str
    source_sha256: str


@dataclass(frozen=True)
class CopiedIn(Event):
    """An extract was copied into intake from the agency's pull source or S3 upload prefix."""

    TYPE = "copied-in"
    provider: str
    dataset: str
    source_name: str
    source_uri: str
    source_version: str | None
    size: int
    file: str


@dataclass(frozen=True)
class Received(_ExtractEvent):
    """A complete extract was taken from intake and hashed."""

    TYPE = "received"
    size: int


@dataclass(frozen=True)
class Validated(_ExtractEvent):
    """The dataset's expectation suite and the agreements' anonymisation gate ran on the extract."""

    TYPE = "validated"
    suite: str | None
    success: bool
    statistics: dict[str, Any]
    rows: int | None
    data_docs: str | None


@dataclass(frozen=True)
class Blocked(_ExtractEvent):
    """An agreement's rule stopped the extract from going to one recipient, or to all of them."""

    TYPE = "blocked"
    agreement: str
    recipient: str | None
    rule: str


@dataclass(frozen=True)
class Quarantined(_ExtractEvent):
    """The extract was moved to quarantine, with a report of why."""

    TYPE = "quarantined"
    reasons: list[str]
    file: str
    data_docs: str | None = ABSENT


@dataclass(frozen=True)
class Minimised(_DeliveryEvent):
    """One recipient's copy was cut down to the columns its agreement allows."""

    TYPE = "minimised"
    rows_in: int
    rows_out: int
    columns: list[str]


@dataclass(frozen=True)
class Suppressed(_DeliveryEvent):
    """Rows of one recipient's copy were left out under the small-cell rule."""

    TYPE = "suppressed"
    rows: int
    count: int
    count_column: str | None
    min_cell_size: int


@dataclass(frozen=True)
class Encrypted(_DeliveryEvent):
    """One recipient's copy was encrypted (age) to its keys."""

    TYPE = "encrypted"
    sha256: str
    age_recipients: list[str]


@dataclass(frozen=True)
class Signed(_DeliveryEvent):
    """The delivery's manifest was signed with the hub key."""

    TYPE = "signed"
    manifest_sha256: str
    hub_key: str


@dataclass(frozen=True)
class Published(_DeliveryEvent):
    """The delivery is complete in the bucket: data, manifest and, last, its signature."""

    TYPE = "published"
    bucket: str
    keys: list[str]


@dataclass(frozen=True)
class AlreadyPublished(_DeliveryEvent):
    """The delivery was found complete in the bucket already; nothing was published again."""

    TYPE = "already-published"


@dataclass(frozen=True)
class Archived(_ExtractEvent):
    """The accepted original was moved to the archive once all its deliveries were in the bucket."""

    TYPE = "archived"
    deliveries: list[str]
    file: str | None


@dataclass(frozen=True)
class Revoked(Event):
    """A delivery was removed from the bucket and a signed tombstone left in its place."""

    TYPE = "revoked"
    delivery_id: str
    agreement: str
    recipient: str
    dataset: str
    reason: str
    tombstone: str


@dataclass(frozen=True)
class Deleted(Event):
    """A delivery was deleted from the bucket (its agreement's retention ran out)."""

    TYPE = "deleted"
    reason: str
    delivery_id: str
    agreement: str
    recipient: str
    dataset: str
    delivered_on: str
    retention_days: int
    bucket: str
    keys: list[str]


@dataclass(frozen=True)
class Refused(Event):
    """Something in an intake or source location was not taken at all, recorded once per thing refused: a
    folder that is a symbolic link, a source object whose name cannot be copied in, or an SFTP server that
    presents another host key than the one pinned (once per key presented)."""

    TYPE = "refused"
    reason: str
    provider: str
    dataset: str = ABSENT
    host: str = ABSENT
    presented: str = ABSENT
    pinned: str = ABSENT
    path: str = ABSENT
    target: str = ABSENT
    source_uri: str = ABSENT
    source_version: str | None = ABSENT
    name_bytes: int = ABSENT


@dataclass(frozen=True)
class ConfigChanged(Event):
    """Agencies, keys, agreements or suites differ from what the last run saw."""

    TYPE = "config-changed"
    files: dict[str, str | None]


@dataclass(frozen=True)
class TimestampDeferred(Event):
    """The time-stamping authority did not answer for a signed head; the head waits, and is stamped at a later
    anchor. Exchanges go on until the wait is longer than settings accept."""

    TYPE = "timestamp-deferred"
    tsa: str
    head_seq: int
    pending: int
    problem: str


@dataclass(frozen=True)
class TimestampResumed(Event):
    """The time-stamping authority answered again and every waiting head got its token."""

    TYPE = "timestamp-resumed"
    tsa: str
    since: str
    stamped: int
    publishing_stopped: bool


@dataclass(frozen=True)
class PublishingStopped(Event):
    """Heads waited for a time stamp longer than settings accept: nothing is published until the
    time-stamping authority answers."""

    TYPE = "publishing-stopped"
    tsa: str
    since: str
    limit: str
    pending: int
    problem: str


@dataclass(frozen=True)
class KeysChanged(Event):
    """An agency's keys changed on its own signed request (`borderx keys accept`): keys added, current keys
    ending after the overlap, keys revoked."""

    TYPE = "keys-changed"
    agency: str
    request_id: str
    request_sha256: str
    signed_by: str
    added: list[str]
    ended: dict[str, str]
    revoked_keys: list[str]
    config_file: str


@dataclass(frozen=True)
class ReceiptIssued(_ExtractEvent):
    """The provider was given a receipt signed by the hub key: its SHA-256 here ties the receipt to the trail."""

    TYPE = "receipt-issued"
    outcome: str
    receipt_sha256: str
    provider_signature: str
    receipt: str | None


@dataclass(frozen=True)
class NoticeSent(Event):
    """A notice left the hub: by e-mail through the SMTP server, or POSTed to a webhook that answered 2xx."""

    TYPE = "notice-sent"
    notice_id: str
    notice: str
    audience: str
    agency: str | None
    channel: str
    attempts: int


@dataclass(frozen=True)
class NoticeFailed(Event):
    """A notice could not be sent; it waits in the outbox and is tried again later, or was given up."""

    TYPE = "notice-failed"
    notice_id: str
    notice: str
    audience: str
    agency: str | None
    channel: str
    attempts: int
    problem: str
    given_up: bool


@dataclass(frozen=True)
class Overdue(Event):
    """A provider's extract of a dataset was not taken in by its due moment and grace: recorded once per period."""

    TYPE = "overdue"
    agreement: str
    provider: str
    dataset: str
    period_start: str
    due_by: str
    late_after: str


KINDS: dict[str, type[Event]] = {kind.TYPE: kind for kind in (
    CopiedIn, Received, Validated, Blocked, Quarantined, Minimised, Suppressed, Encrypted, Signed, Published,
    AlreadyPublished, Archived, Revoked, Deleted, Refused, ConfigChanged, TimestampDeferred, TimestampResumed,
    PublishingStopped, KeysChanged, ReceiptIssued, NoticeSent, NoticeFailed, Overdue,
)}
EVENT_TYPES = frozenset(KINDS)


def build(type_: str, **details: Any) -> Event:
    """The event of kind `type_` with these details; TypeError names a missing or unknown field."""
    try:
        kind = KINDS[type_]
    except KeyError:
        raise ValueError(f"unknown audit event type {type_!r}") from None
    return kind(**details)


def of_kind(events: typing.Iterable[dict], *kinds: type[Event]) -> Iterator[dict]:
    """The events of the trail that are of one of `kinds`, in order."""
    wanted = {k.TYPE for k in kinds}
    return (e for e in events if e.get("type") in wanted)


# -- the JSON Schema, generated from the classes above ---------------------------------------------------------

# What each field means, for the schema's readers; a field without a line here fails the schema test.
FIELD_DOCS = {
    "outcome": "accepted or quarantined",
    "receipt_sha256": "SHA-256 of the receipt's signed bytes (NAME.receipt.json)",
    "provider_signature": "what the check of the provider's NAME.sig found: valid, invalid, missing, unsigned "
                          "(none, and none required) or not-checked",
    "receipt": "where the receipt was written in the agency's intake folder, or null if it could not be",
    "provider": "the agency that provided the extract",
    "dataset": "the dataset's id, as in config/datasets/",
    "source_sha256": "SHA-256 of the extract as received; null when the entry was never read (a link, a "
                     "file that changed while read)",
    "source_name": "the extract's file name as the agency dropped it",
    "source_uri": "where the extract was copied from (folder path or s3:// URL)",
    "source_version": "the S3 object's version id, or null",
    "size": "size in bytes",
    "file": "where the file is now, on the hub",
    "suite": "the expectation suite's name",
    "success": "whether every expectation was met",
    "statistics": "GX's counts of evaluated, successful and unsuccessful expectations",
    "rows": "rows in the extract (validated), or rows left out (suppressed)",
    "data_docs": "the Great Expectations Data Docs page of this validation, if one was written",
    "agreement": "the data-sharing agreement's id",
    "recipient": "the receiving agency's id",
    "rule": "the agreement rule that stopped the exchange",
    "reasons": "the rules the extract failed, one id each",
    "delivery_id": "the delivery's id, derived from agreement, recipient, dataset and source hash",
    "rows_in": "rows before minimising",
    "rows_out": "rows delivered",
    "columns": "the columns delivered",
    "count": "the sum of the count column over the rows left out",
    "count_column": "the column holding counts, if the dataset has one",
    "min_cell_size": "the smallest count a delivered row may carry",
    "sha256": "SHA-256 of the encrypted file as published",
    "age_recipients": "the age recipients it was encrypted to",
    "manifest_sha256": "SHA-256 of manifest.json as signed",
    "hub_key": "fingerprint of the hub's signing key",
    "bucket": "the S3 bucket",
    "keys": "the S3 keys written or deleted",
    "deliveries": "the delivery ids made from this extract",
    "reason": "why, in words (revoked), what ended it (deleted: retention), or what was refused (refused: "
              "linked-folder, name-too-long, host-key-changed, ...)",
    "path": "the refused folder, relative to the home (or its sftp:// URL)",
    "host": "HOST:PORT of a refused SFTP server",
    "presented": "the host key the server presented (SHA256 fingerprint), or `no TYPE host key`",
    "pinned": "the host key pinned in the agency's config (SHA256 fingerprint)",
    "target": "where the refused link points (never followed)",
    "name_bytes": "the length in bytes of a name that cannot be copied in",
    "tombstone": "the S3 key of the signed tombstone",
    "delivered_on": "the delivery's date (YYYY-MM-DD)",
    "retention_days": "the agreement's retention period in days",
    "files": "config files that changed, by path, with their new SHA-256 (null: removed)",
    "tsa": "the time-stamping authority's URL",
    "head_seq": "the sequence number of the signed head waiting for its time stamp",
    "pending": "how many signed heads wait for a time stamp",
    "problem": "what went wrong, in words: with the time-stamping authority, or sending a notice",
    "since": "when the time-stamping authority stopped answering (UTC, ISO 8601)",
    "stamped": "how many waiting heads got their time stamp",
    "publishing_stopped": "whether publishing had stopped while the heads waited",
    "limit": "how long heads may wait for a time stamp before publishing stops (settings)",
    "agency": "the agency whose keys changed",
    "request_id": "the key request's id, remembered by the hub so the request cannot be replayed",
    "request_sha256": "SHA-256 of the key request as signed",
    "signed_by": "fingerprint of the agency's signing key that signed the request",
    "added": "the keys added: age recipients as they are, ssh keys as fingerprints",
    "ended": "current keys given an end date (valid_to, YYYY-MM-DD) by the overlap, by key",
    "revoked_keys": "the keys revoked at the agency's request",
    "config_file": "the agency's config file that was changed, relative to the home",
    "notice_id": "the notice's id in the hub's outbox (one per notice, channel and address)",
    "notice": "what the notice is about: accepted, quarantined, delivered, run-failed, outage, overdue",
    "audience": "who it is for: provider, recipient or operator",
    "channel": "email or webhook (the address itself is in the agency's contacts, not here)",
    "attempts": "how many times sending was tried, this one included",
    "given_up": "whether the notice was given up after settings' notices.max_attempts",
    "period_start": "when the period the extract was due in began (UTC, ISO 8601)",
    "due_by": "when the extract was due (UTC, ISO 8601)",
    "late_after": "when it became late: due_by plus the grace period (UTC, ISO 8601)",
}

_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_ACTOR = {
    "type": "object",
    "description": "who did it: the hub itself, `borderx run`, an intake copy, or an Airflow task",
    "properties": {"hub": {"type": "boolean"}, "via": {"type": "string"}, "dag_id": {"type": "string"},
                   "run_id": {"type": "string"}, "task_id": {"type": "string"},
                   "map_index": {"type": ["integer", "null"]}},
    "additionalProperties": False,
}
_JSON_TYPES = {str: "string", int: "integer", bool: "boolean", float: "number"}


def _schema_of(hint: Any) -> dict:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return {}
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if origin in (Union, types.UnionType):
        options = [_schema_of(a) for a in args if a is not type(None)]
        if len(options) == 1 and "type" in options[0] and len(options[0]) == 1:
            return {"type": [options[0]["type"], "null"]}
        return {"anyOf": [*options, {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0])}
    if origin is dict:
        values = _schema_of(args[1])
        return {"type": "object", **({"additionalProperties": values} if values else {})}
    raise TypeError(f"no JSON Schema for {hint!r}")


def _details_schema(kind: type[Event]) -> dict:
    hints = typing.get_type_hints(kind)
    properties, required = {}, []
    for f in fields(kind):
        properties[f.name] = {"description": FIELD_DOCS[f.name], **_schema_of(hints[f.name])}
        if f.default is not ABSENT:
            required.append(f.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _event_schema(kind: type[Event]) -> dict:
    return {
        "description": " ".join((kind.__doc__ or "").split()),
        "type": "object",
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "time": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"},
            "type": {"const": kind.TYPE},
            "actor": {"$ref": "#/$defs/actor"},
            "details": _details_schema(kind),
            "prev": {"$ref": "#/$defs/sha256"},
            "hash": {"$ref": "#/$defs/sha256"},
        },
        "required": ["seq", "time", "type", "actor", "details", "prev", "hash"],
        "additionalProperties": False,
    }


SCHEMA_FILE = "audit-event.schema.json"


def schema() -> dict:
    """One JSON Schema for a line of the trail: exactly one of the kinds above."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "borderx audit event",
        "description": "One line of DIR/audit/trail.jsonl. Generated from borderx/audit/events.py; do not edit.",
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in KINDS],
        "$defs": {"sha256": _SHA256, "actor": _ACTOR, **{name: _event_schema(kind) for name, kind in KINDS.items()}},
    }


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "docs/events")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SCHEMA_FILE).write_text(schema_text(), encoding="utf-8")
    print(folder / SCHEMA_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
