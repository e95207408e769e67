"""The stages of one exchange. The CLI and the Airflow tasks both call these, and only these.

Every stage takes and returns plain dicts or small dataclasses, so Airflow can pass them as XComs,
and every stage appends its outcome to the audit trail.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from borderx.delivery import manifest as mf
from borderx.audit.trail import AuditTrail
from borderx.config.loader import load_config
from borderx.config.models import DeploymentConfig
from borderx.crypto import age, sshsig
from borderx.errors import BorderxError, PublishError
from borderx.folders import private_folders, replace_private
from borderx.home import Home
from borderx.intake import (
    ChangedWhileRead, Extract, IntakeFile, Ledger, Owner, UnsafeEntry, adoptable, check_unchanged, foreign_codes,
    hash_taken, scan, take,
)
from borderx.keys import load_signing_key
from borderx.policy.minimise import count_small_cells, minimise
from borderx.policy import DeliveryPlan, decide
from borderx.bucket.publish import Target, ensure_bucket, is_published, publish_delivery
from borderx.quarantine import QuarantineError, Reason, place_beside, quarantine

log = logging.getLogger(__name__)
CLI_ACTOR = {"hub": True, "via": "borderx run"}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Runtime:
    """One home's configuration and the clients every stage needs, opened once per process or task."""

    home: Home
    config: DeploymentConfig
    target: Target
    clock: Callable[[], dt.datetime] = _utcnow

    @classmethod
    def open(
        cls,
        home: str | os.PathLike | None = None,
        *,
        endpoint_url: str | None = None,
        bucket: str | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> Runtime:
        resolved = Home.resolve(home)
        config = load_config(resolved.root, today=clock().date())
        target = Target.resolve(config.settings.s3, endpoint_url=endpoint_url, bucket=bucket)
        resolved.ensure()
        rt = cls(resolved, config, target, clock)
        rt.record_config_changes()
        return rt

    def record_config_changes(self) -> None:
        """Appends a config-changed event when agencies, keys, agreements or suites differ from the last run."""
        files = sorted([*self.home.config.rglob("*.y*ml"), *self.config.expectations_dir().glob("*.json")])
        current = {str(p.relative_to(self.home.root)) if p.is_relative_to(self.home.root) else str(p):
                   hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
        stamp = self.home.state / "config.json"
        try:
            before = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = {}
        if current == before:
            return
        changed = sorted(k for k in current.keys() | before.keys() if current.get(k) != before.get(k))
        self.trail.append("config-changed", files={k: current.get(k) for k in changed})
        replace_private(stamp, json.dumps(current, indent=1, sort_keys=True))

    @cached_property
    def trail(self) -> AuditTrail:
        return AuditTrail(self.home.audit, clock=self.clock)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.home.state / "ledger.sqlite")

    @cached_property
    def s3(self):
        return self.target.client()

    @cached_property
    def signing_key(self):
        return load_signing_key(self.config.settings.hub.signing_key, self.home.root)

    @cached_property
    def hub_fingerprint(self) -> str:
        return sshsig.fingerprint(self.config.settings.hub.signing_public_key)


# -- stages ---------------------------------------------------------------------------------------


def discover(rt: Runtime, settle_seconds: float | None = None, *,
             run_is_live: Callable[[str, str], bool] | None = None) -> list[dict]:
    """Complete files waiting in intake, and files that a run or process took and then died holding.

    A process owner's death is seen by its lock; an Airflow run's only through `run_is_live`
    (dag_id, run_id -> bool), without which files held by runs are left to them.
    """
    found = [f.to_dict() for f in scan(rt.config, rt.home, settle_seconds)]
    return found + [f.to_dict() for f in adoptable(rt.config, rt.home, run_is_live)]


def announced_waiting(rt: Runtime) -> list[dict]:
    """Files the intake trigger has announced that still wait in their intake folder.

    Airflow builds an asset-triggered run from the events up to its newest queued one. An event for an
    asset that is already queued adds nothing to the queue, and when it is newer than the queue's entries
    that run leaves it out, so it would wait for the asset's next event, or the sweep. Every event run takes
    these too: a burst of drops is published by the runs it started. Two runs reaching for one file is safe
    (see `receive`).
    """
    from borderx.intake.watch import STORE_FILE, AnnouncedStore

    store = AnnouncedStore(rt.home.state / STORE_FILE)
    return [f.to_dict() for f in scan(rt.config, rt.home, settle_seconds=0)
            if _announced_as_is(store, f.path)]


def _announced_as_is(store, path: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return store.contains(path, st.st_size, st.st_mtime_ns)


def receive(rt: Runtime, intake_file: dict, actor: dict | None = None) -> dict:
    """Takes the file out of intake, hashes it and claims it in the ledger; a file whose content was seen
    before goes to quarantine.

    The file is first moved aside for this run (or process) alone, so a run that reaches for the same file
    at the same time finds it gone and leaves it be; the later stages find it through the extract's path.
    Returns {"status": "received", "extract": ...}, a quarantine outcome, or {"status": "gone"}.
    """
    f = IntakeFile(**{k: intake_file[k] for k in ("agency", "dataset", "path", "name", "size")})
    folder = rt.home.intake_folder(f.agency, f.dataset, rt.config.agencies[f.agency].intake.folder)
    path = take(Path(f.path), folder, Owner.for_actor(actor), f.size, root=rt.home.root)
    if path is None:
        log.info("intake file %s is gone; another run took it", f.name)
        return {"status": "gone", "name": f.name}
    try:
        digest, fingerprint = hash_taken(path)
    except UnsafeEntry as exc:
        return _quarantine_unread(rt, f, path, Reason(exc.rule, exc.message), exc.details, actor)
    except ChangedWhileRead as exc:
        if not os.path.lexists(path):
            # Moved out of the hand-off folder by someone else while it was read: nothing left here to keep.
            log.warning("%s", exc)
            return {"status": "gone", "name": f.name}
        return _quarantine_unread(rt, f, path, Reason(exc.rule, str(exc)), None, actor)
    extract = Extract(f.agency, f.dataset, str(path), f.name, fingerprint[1], digest, _stamp(rt.clock()), fingerprint)
    earlier = rt.ledger.claim(extract)
    if earlier and earlier["outcome"] != "received":
        reason = Reason(
            "duplicate",
            f"the same content was received on {earlier['received_at'][:19]} as {earlier['name']} "
            f"from {earlier['agency']} ({earlier['outcome']})",
        )
        return _quarantine(rt, extract, [reason], None, actor)
    if earlier:
        extract = Extract(**{**extract.to_dict(), "received_at": earlier["received_at"]})
    rt.trail.append("received", actor=actor, **_extract_fields(extract), size=extract.size)
    return {"status": "received", "extract": extract.to_dict()}


def validate(rt: Runtime, received: dict, actor: dict | None = None) -> dict:
    """Runs the dataset's suite and the agreements' rules; returns the deliveries to make, or quarantines.

    Returns {"status": "accepted", ...}; anything but a received extract passes through unchanged.
    """
    from borderx.validation import validate_extract

    if received.get("status") != "received":
        return received
    extract = Extract.from_dict(received["extract"])
    path = Path(extract.path)
    docs_dir = rt.home.datadocs / extract.agency / extract.dataset / extract.sha256[:12]
    outcome = validate_extract(path, rt.config.suite_path(extract.dataset), data_docs_dir=docs_dir)
    reasons: list[Reason] = []
    if outcome.error:
        reasons.append(Reason("unreadable", outcome.error))
    reasons += [
        Reason(f.expectation, f.rule, column=f.column, rows=list(f.rows), count=f.unexpected_count,
               gate=getattr(f, "gate", False))
        for f in outcome.failures
    ]
    validation = {"suite": outcome.suite, "success": outcome.success, "statistics": outcome.statistics, "rows": outcome.rows}
    rt.trail.append("validated", actor=actor, **_extract_fields(extract), **validation, data_docs=outcome.data_docs)
    decision = decide(rt.config, extract.agency, extract.dataset, extract.sha256, rt.clock().date())
    for b in decision.blocked:
        rt.trail.append(
            "blocked", actor=actor, **_extract_fields(extract), agreement=b.agreement, recipient=b.recipient, rule=b.rule
        )
    if not decision.plans:
        why = "; ".join(f"{b.agreement}{' ' + b.recipient if b.recipient else ''}: {b.rule}" for b in decision.blocked)
        reasons.append(Reason("no-agreement-in-force", f"no agreement allows this exchange today ({why or 'none covers it'})"))
    small_rows = small_total = 0
    count_column = rt.config.datasets[extract.dataset].count_column
    if not outcome.error:
        reasons += _origin_reasons(rt, extract)
    if not reasons and count_column and decision.min_cell_size > 1:
        small_rows, small_total = count_small_cells(path, count_column, decision.min_cell_size)
        if small_rows and decision.reject_small_cells:
            reasons.append(
                Reason(
                    "small-cells",
                    f"{small_rows} rows have {count_column} between 1 and {decision.min_cell_size - 1}; "
                    f"an agreement rejects cells under {decision.min_cell_size}",
                    column=count_column,
                    count=small_rows,
                )
            )
    try:
        check_unchanged(extract)
    except ChangedWhileRead as exc:
        # What was validated may not be what was hashed: no other finding about it can be trusted.
        reasons = [Reason(exc.rule, str(exc))]
    if reasons:
        return _quarantine(rt, extract, reasons, outcome.to_dict(), actor)
    return {
        "status": "accepted",
        "extract": extract.to_dict(),
        "validation": validation,
        "plans": [p.to_dict() for p in decision.plans],
        "small_cells": {"min_cell_size": decision.min_cell_size, "rows": small_rows, "count": small_total},
    }


class TransientError(PublishError):
    """A failure of the bucket or the network that may pass: the stage can be tried again as it is."""


class NoSpaceError(BorderxError):
    """A folder of the hub is full. Space can come back, so a stage that hit it can be tried again as it is."""


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# S3 error codes that say "not now" rather than "never".
_TRANSIENT_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "BandwidthLimitExceeded",
    "OperationAborted", "500", "502", "503", "504",
})


def is_transient(exc: BaseException) -> bool:
    """Whether `exc`, or what it was raised from, is a connection failure, a timeout or a 5xx/throttle answer."""
    from botocore.exceptions import (
        ClientError, ConnectionClosedError, ConnectionError as BotoConnectionError, ConnectTimeoutError,
        EndpointConnectionError, ReadTimeoutError, ResponseStreamingError,
    )

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (TransientError, NoSpaceError)):
            return True
        if isinstance(exc, QuarantineError):
            return exc.errno in _NO_SPACE
        if isinstance(exc, (BotoConnectionError, EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                            ConnectionClosedError, ResponseStreamingError, ConnectionError, TimeoutError)):
            return True
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 or status == 429 or error.get("Code") in _TRANSIENT_CODES
        # PublishError hides the botocore error it wraps as its context, not its cause.
        exc = exc.__cause__ or exc.__context__
    return False


def deliver(rt: Runtime, accepted: dict, plan_dict: dict, actor: dict | None = None) -> dict:
    """Minimises, encrypts, signs and publishes one recipient's delivery; does nothing if it is already there.

    Raises TransientError when the bucket or the network failed in a way worth trying again; publishing is
    idempotent, so a retry ends in one complete delivery. Anything else is permanent.
    """
    try:
        return _deliver(rt, accepted, plan_dict, actor)
    except (TransientError, NoSpaceError):
        raise
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"delivery {plan_dict.get('delivery_id')}: {type(exc).__name__}: {exc}") from exc
        raise


def _deliver(rt: Runtime, accepted: dict, plan_dict: dict, actor: dict | None = None) -> dict:
    extract = Extract.from_dict(accepted["extract"])
    plan = DeliveryPlan.from_dict(plan_dict)
    location = mf.DeliveryLocation(plan.agreement, plan.recipient, plan.dataset, extract.received_at[:10], plan.delivery_id)
    result = {"delivery_id": plan.delivery_id, "agreement": plan.agreement, "recipient": plan.recipient,
              "dataset": plan.dataset, "prefix": f"s3://{rt.target.bucket}/{location.prefix}"}
    if is_published(rt.s3, rt.target, location):
        rt.trail.append("already-published", actor=actor, **_plan_fields(plan, extract))
        return {**result, "status": "already-published"}
    private_folders(rt.home.work)
    work = rt.home.work / f"{plan.delivery_id}.csv.age"
    try:
        recipients = [age.parse_recipient(k) for k in plan.age_recipients]
        check_unchanged(extract)
        try:
            cut, published_sha256 = _encrypt_minimised(Path(extract.path), work, plan, recipients)
        except OSError as exc:
            if _no_space(exc):
                raise NoSpaceError(
                    f"work folder {rt.home.work}: no space left while encrypting delivery {plan.delivery_id}; "
                    f"nothing of it was published, and {extract.name} waits to be taken again"
                ) from None
            raise
        # Published only if the source is still the file that was hashed, validated and now encrypted.
        check_unchanged(extract, rehash=True)
        suppressed = {"rows": cut.suppressed_rows, "count": cut.suppressed_count, "count_column": plan.count_column,
                      "min_cell_size": plan.min_cell_size}
        rt.trail.append("minimised", actor=actor, **_plan_fields(plan, extract), rows_in=cut.rows_in,
                        rows_out=cut.rows_out, columns=plan.columns)
        if cut.suppressed_rows:
            rt.trail.append("suppressed", actor=actor, **_plan_fields(plan, extract), **suppressed)
        rt.trail.append("encrypted", actor=actor, **_plan_fields(plan, extract), sha256=published_sha256,
                        age_recipients=plan.age_recipients)
        manifest = mf.build_manifest(
            location=location,
            provider=plan.provider,
            schema_version=rt.config.datasets[plan.dataset].schema_version,
            rows=cut.rows_out,
            columns=plan.columns,
            source_sha256=extract.sha256,
            source_name=extract.name,
            published_sha256=published_sha256,
            published_size=work.stat().st_size,
            suppressed=suppressed,
            validation=accepted["validation"],
            recipient_keys=plan.age_recipients,
            hub_key_fingerprint=rt.hub_fingerprint,
            airflow=_airflow_ids(actor),
            created_at=_stamp(rt.clock()),
        )
        body = mf.encode(manifest)
        signature = sshsig.sign(rt.signing_key, body, mf.NAMESPACE).encode()
        rt.trail.append("signed", actor=actor, **_plan_fields(plan, extract),
                        manifest_sha256=hashlib.sha256(body).hexdigest(), hub_key=rt.hub_fingerprint)
        keys = publish_delivery(rt.s3, rt.target, location, work, body, signature)
    finally:
        work.unlink(missing_ok=True)
    rt.trail.append("published", actor=actor, **_plan_fields(plan, extract), bucket=rt.target.bucket, keys=keys)
    return {**result, "status": "published", "rows": cut.rows_out, "suppressed_rows": cut.suppressed_rows}


def finish(rt: Runtime, accepted: dict, results: list[dict], actor: dict | None = None) -> dict:
    """Moves the accepted original to the archive once every delivery of it is in the bucket."""
    extract = Extract.from_dict(accepted["extract"])
    source = Path(extract.path)
    day = extract.received_at[:10].replace("-", "/")
    folder = rt.home.archive / extract.agency / extract.dataset / day
    archived = None
    if source.exists():
        archived = place_beside(folder, source.name, extract.sha256[:12])
        os.replace(source, archived)
    rt.ledger.settle(extract.sha256, "published")
    rt.trail.append("archived", actor=actor, **_extract_fields(extract),
                    deliveries=[r["delivery_id"] for r in results], file=str(archived) if archived else None)
    return {"extract": extract.name, "archived": str(archived) if archived else None}


# -- one pass over the intake folders, as `borderx run --once` does it ----------------------------


@dataclass
class RunSummary:
    published: list[dict] = field(default_factory=list)
    already_published: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.quarantined


def run_once(rt: Runtime, *, settle_seconds: float | None = None, actor: dict | None = None,
             on_progress: Callable[[str], None] | None = None) -> RunSummary:
    actor = actor or CLI_ACTOR
    summary = RunSummary()
    found = discover(rt, settle_seconds)
    summary.files = len(found)
    if found:
        ensure_bucket(rt.s3, rt.target.bucket)
    for n, intake_file in enumerate(found, start=1):
        if on_progress:
            on_progress(f"[{n}/{len(found)}] {intake_file['agency']}/{intake_file['dataset']}/{intake_file['name']}")
        outcome = exchange_one(rt, intake_file, actor)
        if outcome["status"] == "quarantined":
            summary.quarantined.append(outcome)
        for r in outcome.get("results", []):
            (summary.published if r["status"] == "published" else summary.already_published).append(r)
    if found:
        close_segment(rt)
    return summary


def exchange_one(rt: Runtime, intake_file: dict, actor: dict | None = None) -> dict:
    """Every stage of one intake file in turn: receive, validate, deliver to each recipient, archive.

    Returns the outcome of `validate` (quarantined, gone, blocked...), or for an accepted file that outcome
    with the deliveries' results under "results". A file that changed while it was encrypted is quarantined.
    The bucket must exist (`ensure_bucket`).
    """
    accepted = validate(rt, receive(rt, intake_file, actor), actor)
    if accepted["status"] != "accepted":
        return accepted
    try:
        results = [deliver(rt, accepted, plan, actor) for plan in accepted["plans"]]
    except ChangedWhileRead as exc:
        return _quarantine(rt, Extract.from_dict(accepted["extract"]), [Reason(exc.rule, str(exc))], None, actor)
    finish(rt, accepted, results, actor)
    return {**accepted, "results": results}


def close_segment(rt: Runtime):
    """Signs the audit trail's head and puts it in the bucket, ending a run's segment of the chain."""
    from borderx.audit.anchors import anchor

    ensure_bucket(rt.s3, rt.target.bucket)
    return anchor(rt.trail, rt.signing_key, rt.hub_fingerprint, rt.s3, rt.target.bucket)


def _quarantine(rt: Runtime, extract: Extract, reasons: list[Reason], validation: dict | None, actor: dict | None) -> dict:
    where = quarantine(
        rt.home, source=Path(extract.path), agency=extract.agency, dataset=extract.dataset, sha256=extract.sha256,
        reasons=reasons, validation=validation, now=rt.clock(),
    )
    # A duplicate's ledger entry belongs to the first copy, which keeps its outcome.
    if rt.ledger.get(extract.sha256)["outcome"] == "received":
        rt.ledger.settle(extract.sha256, "quarantined")
    rt.trail.append("quarantined", actor=actor, **_extract_fields(extract), reasons=[r.rule for r in reasons], file=str(where))
    return {"status": "quarantined", "agency": extract.agency, "dataset": extract.dataset, "name": extract.name,
            "file": str(where), "report": str(where) + ".report.txt", "reasons": [r.to_dict() for r in reasons]}


def _quarantine_unread(rt: Runtime, f: IntakeFile, path: Path, reason: Reason, entry: dict | None,
                       actor: dict | None) -> dict:
    """Quarantines an entry whose content was never hashed (a link, or a file that changed while read): it has
    no content identity, so the ledger does not hear of it and a corrected file is never a duplicate."""
    where = quarantine(rt.home, source=path, agency=f.agency, dataset=f.dataset, sha256=None, reasons=[reason],
                       entry=entry, now=rt.clock())
    rt.trail.append("quarantined", actor=actor, provider=f.agency, dataset=f.dataset, source_sha256=None,
                    source_name=f.name, reasons=[reason.rule], file=str(where))
    return {"status": "quarantined", "agency": f.agency, "dataset": f.dataset, "name": f.name, "file": str(where),
            "report": str(where) + ".report.txt", "reasons": [reason.to_dict()]}


def _origin_reasons(rt: Runtime, extract: Extract) -> list[Reason]:
    """A reason for each foreign country whose location codes fill the extract, naming both agencies."""
    own = rt.config.agencies[extract.agency]
    reasons = []
    for found in foreign_codes(Path(extract.path), own.country):
        theirs = sorted(a.id for a in rt.config.agencies.values() if a.country == found.country)
        providers = [a for a in theirs if rt.config.agreements_covering(a, extract.dataset)]
        who = ", ".join(providers or theirs) or f"no agency of {found.country} known here"
        reasons.append(Reason(
            "other-agency",
            f"{found.column} codes of {found.country} ({who}) in a file dropped into the intake folder of "
            f"{own.id}, whose codes begin with {own.country}-: it looks like another agency's extract",
            column=found.column, rows=list(found.rows), count=found.count,
        ))
    return reasons


def _no_space(exc: BaseException) -> bool:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# -- helpers --------------------------------------------------------------------------------------


class _HashingWriter:
    """Passes writes through to a file while hashing them, so the published file is never re-read."""

    def __init__(self, fh):
        self._fh = fh
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


def _encrypt_minimised(source: Path, work: Path, plan: DeliveryPlan, recipients: list) -> tuple[Any, str]:
    fd = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        hashing = _HashingWriter(raw)
        with age.encrypting_writer(hashing, recipients) as plaintext_sink:
            cut = minimise(
                source, plaintext_sink, plan.columns, count_column=plan.count_column, min_cell_size=plan.min_cell_size
            )
    return cut, hashing.digest.hexdigest()


def _extract_fields(extract: Extract) -> dict[str, Any]:
    return {"provider": extract.agency, "dataset": extract.dataset, "source_sha256": extract.sha256,
            "source_name": extract.name}


def _plan_fields(plan: DeliveryPlan, extract: Extract) -> dict[str, Any]:
    return {"delivery_id": plan.delivery_id, "agreement": plan.agreement, "provider": plan.provider,
            "recipient": plan.recipient, "dataset": plan.dataset, "source_sha256": extract.sha256}


def _airflow_ids(actor: dict | None) -> dict[str, Any] | None:
    if not actor or "dag_id" not in actor:
        return None
    return {k: actor.get(k) for k in ("dag_id", "run_id", "task_id", "map_index")}
