"""The stages of one extract: receive, validate, deliver (one per recipient), finish. Each appends its outcome
to the audit trail and hands the next stage a typed outcome (see handoff.py); `spine.exchange_one` runs them in
turn, and the Airflow tasks run them one task each.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any, Callable

from borderx import notices
from borderx.audit import events as ev
from borderx.delivery import seal
from borderx.delivery.layout import MANIFEST_FILE, DeliveryLocation, data_file
from borderx.bucket.publish import ensure_bucket, is_published, publish_delivery
from borderx.exchange.handoff import (
    Accepted, DeliveryResult, Finished, Gone, Quarantined, Received, SmallCells,
)
from borderx.exchange.runtime import Runtime, stamp
from borderx.errors import NoSpaceError, TransientError, is_no_space, is_transient
from borderx.folders import private_folders
from borderx.intake import receipts, signatures
from borderx.intake import (
    ChangedWhileRead, Extract, IntakeFile, Owner, UnsafeEntry, adoptable, check_unchanged, foreign_codes, hash_taken,
    scan, take,
)
from borderx.policy import DeliveryPlan, decide
from borderx.policy.minimise import Rows, count_small_cells
from borderx.quarantine import Reason, place_beside, quarantine

log = logging.getLogger(__name__)

# The ledger's outcome for content refused for its signature alone, which may be sent again.
SIGNATURE_REFUSED = "signature-refused"


def discover(rt: Runtime, settle_seconds: float | None = None, *,
             run_is_live: Callable[[str, str], bool] | None = None,
             leave_announced_within: float | None = None) -> list[IntakeFile]:
    """Complete files waiting in intake, and files that a run or process took and then died holding.

    A process owner's death is seen by its lock; an Airflow run's only through `run_is_live`
    (dag_id, run_id -> bool), without which files held by runs are left to them. With
    `leave_announced_within` (seconds), files the intake trigger announced that recently are left to the runs
    their events start.
    """
    waiting = scan(rt.config, rt.home, settle_seconds)
    if leave_announced_within is not None:
        # The trigger stamps its announcements with the real time, whatever clock the runtime keeps.
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=leave_announced_within)
        waiting = _not_announced_since(rt, waiting, since)
    return [*waiting, *adoptable(rt.config, rt.home, run_is_live)]


def _not_announced_since(rt: Runtime, files: list[IntakeFile], since: dt.datetime) -> list[IntakeFile]:
    from borderx.intake.watch import STORE_FILE, AnnouncedStore

    if not files:
        return files
    store = AnnouncedStore(rt.home.state / STORE_FILE)
    return [f for f in files if _announced_as_is(store, f.path, since) is False]


def announced_waiting(rt: Runtime) -> list[IntakeFile]:
    """Files the intake trigger has announced that still wait in their intake folder.

    Airflow builds an asset-triggered run from the events up to its newest queued one. An event for an
    asset that is already queued adds nothing to the queue, and when it is newer than the queue's entries
    that run leaves it out, so it would wait for the asset's next event, or the sweep. Every event run takes
    these too: a burst of drops is published by the runs it started. Two runs reaching for one file is safe
    (see `receive`).
    """
    from borderx.intake.watch import STORE_FILE, AnnouncedStore

    store = AnnouncedStore(rt.home.state / STORE_FILE)
    return [f for f in scan(rt.config, rt.home, settle_seconds=0) if _announced_as_is(store, f.path)]


def _announced_as_is(store, path: str, since: dt.datetime | None = None) -> bool | None:
    """Whether the file at `path`, in its current size and mtime, was announced (at `since` or later, when
    given); None if it is gone."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return store.contains(path, st.st_size, st.st_mtime_ns, since=since)


def receive(rt: Runtime, f: IntakeFile, actor: dict | None = None) -> Received | Quarantined | Gone:
    """Takes the file out of intake, hashes it and claims it in the ledger; a file whose content was seen
    before goes to quarantine.

    The file is first moved aside for this run (or process) alone, so a run that reaches for the same file
    at the same time finds it gone and leaves it be; the later stages find it through the extract's path.
    """
    taken = take_and_hash(rt, f, actor)
    return claim(rt, taken, actor) if isinstance(taken, Extract) else taken


def take_and_hash(rt: Runtime, f: IntakeFile, actor: dict | None = None) -> Extract | Quarantined | Gone:
    """The first half of `receive`: the file moved aside for this run and hashed, not yet claimed."""
    folder = rt.home.intake_folder(f.agency, f.dataset, rt.config.agencies[f.agency].intake.folder)
    path = take(Path(f.path), folder, Owner.for_actor(actor), f.size, root=rt.home.root)
    if path is None:
        log.info("intake file %s is gone; another run took it", f.name)
        return Gone(f.name)
    try:
        digest, fingerprint = hash_taken(path)
    except UnsafeEntry as exc:
        return _quarantine_unread(rt, f, path, Reason(exc.rule, exc.message), exc.details, actor)
    except ChangedWhileRead as exc:
        if not os.path.lexists(path):
            # Moved out of the hand-off folder by someone else while it was read: nothing left here to keep.
            log.warning("%s", exc)
            return Gone(f.name)
        return _quarantine_unread(rt, f, path, Reason(exc.rule, str(exc)), None, actor)
    return Extract(f.agency, f.dataset, str(path), f.name, fingerprint[1], digest, stamp(rt.clock()), fingerprint)


def claim(rt: Runtime, extract: Extract, actor: dict | None = None) -> Received | Quarantined:
    """The second half of `receive`: the content claimed in the ledger, or quarantined as a duplicate."""
    earlier = rt.ledger.claim(extract)
    if earlier and earlier["outcome"] == SIGNATURE_REFUSED:
        # Refused only for its signature: the same bytes may come again, signed as they should be.
        rt.ledger.settle(extract.sha256, "received")
    elif earlier and earlier["outcome"] != "received":
        # The reason reaches the provider in its receipt: another agency's file name is not the provider's to
        # read, so only a copy of its own is named (the operator finds the other by its hash in the trail).
        first = (f"as {earlier['name']} ({earlier['outcome']})" if earlier["agency"] == extract.agency
                 else "from another agency")
        reason = Reason("duplicate", f"the same content was received on {earlier['received_at'][:19]} {first}")
        return _quarantine(rt, extract, [reason], None, actor)
    elif earlier:
        extract = Extract(**{**extract.to_dict(), "received_at": earlier["received_at"]})
    rt.trail.record(ev.Received(**_extract_fields(extract), size=extract.size), actor=actor)
    return Received(extract, first_claim=earlier is None and not rt.ledger.started_afresh)


def validate(rt: Runtime, received: Received | Quarantined | Gone,
             actor: dict | None = None, outcome: Any = None) -> Accepted | Quarantined | Gone:
    """Runs the dataset's suite and the agreements' rules; returns the deliveries to make, or quarantines.

    Anything but a received extract passes through unchanged. `outcome`: the suite's outcome on this
    extract when `validate_suites` already has it.
    """
    from borderx.validation import validate_extract

    if not isinstance(received, Received):
        return received
    extract = received.extract
    path = Path(extract.path)
    if outcome is None:
        outcome = validate_extract(path, rt.config.suite_path(extract.dataset), data_docs_dir=_docs_dir(rt, extract))
    reasons: list[Reason] = []
    if outcome.error:
        reasons.append(Reason("unreadable", outcome.error))
    reasons += [
        Reason(f.expectation, f.rule, column=f.column, rows=list(f.rows), count=f.unexpected_count,
               gate=getattr(f, "gate", False))
        for f in outcome.failures
    ]
    validation = {"suite": outcome.suite, "success": outcome.success, "statistics": outcome.statistics, "rows": outcome.rows}
    rt.trail.record(ev.Validated(**_extract_fields(extract), **validation, data_docs=outcome.data_docs),
                    actor=actor)
    decision = decide(rt.config, extract.agency, extract.dataset, extract.sha256, rt.clock().date())
    for b in decision.blocked:
        rt.trail.record(ev.Blocked(**_extract_fields(extract), agreement=b.agreement, recipient=b.recipient,
                                   rule=b.rule), actor=actor)
    if not decision.plans:
        why = "; ".join(f"{b.agreement}{' ' + b.recipient if b.recipient else ''}: {b.rule}" for b in decision.blocked)
        reasons.append(Reason("no-agreement-in-force", f"no agreement allows this exchange today ({why or 'none covers it'})"))
    if not outcome.error:
        reasons += _origin_reasons(rt, extract)
    small = SmallCells(decision.min_cell_size, 0, 0)
    count_column = rt.config.datasets[extract.dataset].count_column
    # Parsed once, when small, for the count below and every recipient's cut.
    rows = Rows(path, extract.sha256)
    if not reasons and count_column and decision.min_cell_size > 1:
        small = SmallCells(decision.min_cell_size, *count_small_cells(rows, count_column, decision.min_cell_size))
        if small.rows and decision.reject_small_cells:
            reasons.append(
                Reason(
                    "small-cells",
                    f"{small.rows} rows have {count_column} between 1 and {decision.min_cell_size - 1}; "
                    f"an agreement rejects cells under {decision.min_cell_size}",
                    column=count_column,
                    count=small.rows,
                )
            )
    verdict = signatures.check(rt.config, extract.agency, extract.dataset, path, rt.clock().date())
    if verdict.rule:
        reasons.insert(0, Reason(verdict.rule, verdict.message))
    try:
        check_unchanged(extract)
    except ChangedWhileRead as exc:
        # What was validated may not be what was hashed: no other finding about it can be trusted.
        reasons = [Reason(exc.rule, str(exc))]
    if reasons:
        return _quarantine(rt, extract, reasons, outcome.to_dict(), actor, verdict)
    return Accepted(extract, validation, tuple(decision.plans), small, verdict.to_dict(),
                    first_claim=received.first_claim, rows=rows)


def validate_suites(rt: Runtime, taken: list, leave_out: set[str] = frozenset()) -> dict[str, Any]:
    """The suite's outcome on each extract of the list (what `take_and_hash` returned), by path; small files of
    one dataset are validated together (`validation.batched`). A copy of content earlier in the list or in the
    ledger, or in `leave_out` (content still being delivered), is left out, as is an extract whose validation
    raised: `validate` validates those alone if they get that far."""
    from borderx.validation.batched import validate_files

    by_dataset: dict[str, list[Extract]] = {}
    seen: set[str] = set(leave_out)
    for extract in taken:
        if isinstance(extract, Extract) and extract.sha256 not in seen and not _seen_before(rt, extract):
            seen.add(extract.sha256)
            by_dataset.setdefault(extract.dataset, []).append(extract)
    outcomes: dict[str, Any] = {}
    for dataset, extracts in by_dataset.items():
        found = validate_files([Path(e.path) for e in extracts], rt.config.suite_path(dataset),
                               data_docs_dirs=[_docs_dir(rt, e) for e in extracts])
        outcomes.update((e.path, o) for e, o in zip(extracts, found) if o is not None)
    return outcomes


def _seen_before(rt: Runtime, extract: Extract) -> bool:
    """Content the ledger holds as done: `claim` quarantines it as a duplicate, unvalidated, with no page."""
    earlier = rt.ledger.get(extract.sha256)
    return bool(earlier) and earlier["outcome"] not in ("received", SIGNATURE_REFUSED)


def _docs_dir(rt: Runtime, extract: Extract) -> Path:
    return rt.home.datadocs / extract.agency / extract.dataset / extract.sha256[:12]


def deliver(rt: Runtime, accepted: Accepted, plan: DeliveryPlan, actor: dict | None = None) -> DeliveryResult:
    """Seals and publishes one recipient's delivery; does nothing if it is already there.

    A source that changed since it was hashed is quarantined, and nothing of it is published from here on.
    Raises TransientError when the bucket or the network failed in a way worth trying again; publishing is
    idempotent, so a retry ends in one complete delivery. Anything else is permanent.
    """
    try:
        return _deliver(rt, accepted, plan, actor)
    except ChangedWhileRead as exc:
        return _changed_while_delivering(rt, accepted, plan, exc, actor)
    except (TransientError, NoSpaceError):
        raise
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"delivery {plan.delivery_id}: {type(exc).__name__}: {exc}") from exc
        raise


def _deliver(rt: Runtime, accepted: Accepted, plan: DeliveryPlan, actor: dict | None) -> DeliveryResult:
    extract = accepted.extract
    location = _location(plan, extract)
    result = _result(rt, plan, location)
    # Content claimed for the first time has no earlier attempt that could have published it.
    if not accepted.first_claim and is_published(rt.s3, rt.target, location):
        rt.trail.record(ev.AlreadyPublished(**_plan_fields(plan, extract)), actor=actor)
        return result("already-published")
    _check_publishing(rt)
    private_folders(rt.home.work)
    work = rt.home.work / f"{plan.delivery_id}.{data_file(plan.format)}"
    try:
        check_unchanged(extract)
        encrypted = _encrypt(rt, accepted, work, plan)
        # Published only if the source is still the file that was hashed, validated and now encrypted.
        check_unchanged(extract, rehash=True)
        cut = encrypted.cut
        rt.trail.record(ev.Minimised(**_plan_fields(plan, extract), rows_in=cut.rows_in,
                                     rows_out=cut.rows_out, columns=plan.columns), actor=actor)
        if cut.suppressed_rows:
            rt.trail.record(ev.Suppressed(**_plan_fields(plan, extract), **seal.suppressed(plan, cut)), actor=actor)
        rt.trail.record(ev.Encrypted(**_plan_fields(plan, extract), sha256=encrypted.sha256,
                                     age_recipients=plan.age_recipients), actor=actor)
        signed = seal.sign_manifest(
            location=location, plan=plan, extract=extract, encrypted=encrypted,
            schema_version=rt.config.datasets[plan.dataset].schema_version, validation=accepted.validation,
            signing_key=rt.signing_key, hub_fingerprint=rt.hub_fingerprint, airflow=_airflow_ids(actor),
            created_at=stamp(rt.clock()), provider_signature=_provenance(accepted),
        )
        rt.trail.record(ev.Signed(**_plan_fields(plan, extract), manifest_sha256=signed.sha256,
                                  hub_key=rt.hub_fingerprint), actor=actor)
        keys = publish_delivery(rt.s3, rt.target, location, work, signed.body, signed.signature,
                                data_name=data_file(plan.format))
    finally:
        work.unlink(missing_ok=True)
    rt.trail.record(ev.Published(**_plan_fields(plan, extract), bucket=rt.target.bucket, keys=keys), actor=actor)
    if rt.config.agencies[plan.recipient].contacts.addresses():
        rt.manifests_published[location.key(MANIFEST_FILE)] = signed.body
    return result("published", rows=cut.rows_out, suppressed_rows=cut.suppressed_rows)


def _encrypt(rt: Runtime, accepted: Accepted, work: Path, plan: DeliveryPlan) -> seal.Encrypted:
    extract = accepted.extract
    try:
        return seal.encrypt_minimised(accepted.rows or Path(extract.path), work, plan)
    except OSError as exc:
        if is_no_space(exc):
            raise NoSpaceError(
                f"work folder {rt.home.work}: no space left while encrypting delivery {plan.delivery_id}; "
                f"nothing of it was published, and {extract.name} waits to be taken again"
            ) from None
        raise


def _release_rows(accepted: Accepted) -> None:
    """The rows held for the extract's cuts are let go once none is left to make (or none may be made)."""
    if accepted.rows is not None:
        accepted.rows.release()


def _changed_while_delivering(rt: Runtime, accepted: Accepted, plan: DeliveryPlan, exc: ChangedWhileRead,
                              actor: dict | None) -> DeliveryResult:
    """Quarantines a source that changed under a delivery. When a sibling delivery already moved it there,
    this one only says so."""
    _release_rows(accepted)
    location = _location(plan, accepted.extract)
    held = None
    if os.path.lexists(accepted.extract.path):
        verdict = signatures.Verdict(**accepted.signature) if accepted.signature else None
        held = _quarantine(rt, accepted.extract, [Reason(exc.rule, str(exc))], None, actor, verdict)
    return _result(rt, plan, location)("quarantined", quarantined=held)


def finish(rt: Runtime, accepted: Accepted, results: list[DeliveryResult], actor: dict | None = None) -> Finished:
    """Moves the accepted original to the archive once every delivery of it is in the bucket; an extract whose
    deliveries met a change of its source is in quarantine already, and stays there."""
    extract = accepted.extract
    _release_rows(accepted)
    deliveries = tuple(r.delivery_id for r in results)
    if any(r.status == "quarantined" for r in results):
        return Finished(extract.name, None, deliveries)
    source = Path(extract.path)
    day = extract.received_at[:10].replace("-", "/")
    folder = rt.home.archive / extract.agency / extract.dataset / day
    archived = None
    if source.exists():
        archived = place_beside(folder, source.name, extract.sha256[:12])
        os.replace(source, archived)
        _archive_signature(source, archived)
    rt.trail.record(ev.Archived(**_extract_fields(extract),
                                 deliveries=list(deliveries), file=str(archived) if archived else None), actor=actor)
    # The ledger says done only of what the trail holds on disk; the receipt's own wait for the disk is then
    # over already (one fsync for both, not two).
    rt.trail.commit()
    rt.ledger.settle(extract.sha256, "published")
    _issue_receipt(rt, receipts.Receipt(
        extract.agency, extract.dataset, extract.name, extract.sha256, extract.size, extract.received_at, "accepted",
        deliveries=[{"agreement": r.agreement, "recipient": r.recipient, "delivery_id": r.delivery_id,
                     "status": r.status} for r in results],
        signature=accepted.signature), actor)
    return Finished(extract.name, str(archived) if archived else None, deliveries)


def close_segment(rt: Runtime):
    """Signs the audit trail's head and puts it in the bucket, ending a run's segment of the chain; the head
    is time-stamped when settings name a TSA."""
    from borderx.audit.anchors import anchor
    from borderx.audit.timestamps import stamping_for

    ensure_bucket(rt.s3, rt.target.bucket)
    return anchor(rt.trail, rt.signing_key, rt.hub_fingerprint, rt.s3, rt.target.bucket, stamping=stamping_for(rt))


def _check_publishing(rt: Runtime) -> None:
    """TimestampingStopped while signed heads have waited for a time stamp longer than settings accept."""
    from borderx.audit.anchors import check_publishing
    from borderx.audit.timestamps import stamping_for

    stamping = stamping_for(rt)
    if stamping is not None:
        check_publishing(rt.trail, stamping, rt.s3, rt.target.bucket)


def _quarantine(rt: Runtime, extract: Extract, reasons: list[Reason], validation: dict | None,
                actor: dict | None, verdict: signatures.Verdict | None = None) -> Quarantined:
    where = quarantine(
        rt.home, source=Path(extract.path), agency=extract.agency, dataset=extract.dataset, sha256=extract.sha256,
        reasons=reasons, validation=validation, now=rt.clock(),
    )
    # A duplicate's ledger entry belongs to the first copy, which keeps its outcome.
    if rt.ledger.get(extract.sha256)["outcome"] == "received":
        rt.trail.commit()
        only_signature = all(r.rule in signatures.RULES for r in reasons)
        rt.ledger.settle(extract.sha256, SIGNATURE_REFUSED if only_signature else "quarantined")
    rt.trail.record(ev.Quarantined(**_extract_fields(extract), reasons=[r.rule for r in reasons], file=str(where)),
                    actor=actor)
    _issue_receipt(rt, receipts.Receipt(
        extract.agency, extract.dataset, extract.name, extract.sha256, extract.size, extract.received_at,
        "quarantined", reasons=[r.to_dict() for r in reasons], signature=verdict.to_dict() if verdict else None), actor)
    return Quarantined(extract.agency, extract.dataset, extract.name, str(where), tuple(reasons))


def _quarantine_unread(rt: Runtime, f: IntakeFile, path: Path, reason: Reason, entry: dict | None,
                       actor: dict | None) -> Quarantined:
    """Quarantines an entry whose content was never hashed (a link, or a file that changed while read): it has
    no content identity, so the ledger does not hear of it and a corrected file is never a duplicate."""
    where = quarantine(rt.home, source=path, agency=f.agency, dataset=f.dataset, sha256=None, reasons=[reason],
                       entry=entry, now=rt.clock())
    rt.trail.record(ev.Quarantined(provider=f.agency, dataset=f.dataset, source_sha256=None,
                                   source_name=f.name, reasons=[reason.rule], file=str(where)), actor=actor)
    _issue_receipt(rt, receipts.Receipt(f.agency, f.dataset, f.name, None, f.size, stamp(rt.clock()), "quarantined",
                                        reasons=[reason.to_dict()]), actor)
    return Quarantined(f.agency, f.dataset, f.name, str(where), (reason,))


def _issue_receipt(rt: Runtime, receipt: receipts.Receipt, actor: dict | None) -> None:
    # The provider hears of an outcome only once the trail's events of it are on disk.
    rt.trail.commit()
    issued = receipts.issue(rt, receipt)
    notices.after_receipt(rt, receipt, issued.text)
    status = (receipt.signature or {}).get("status", "not-checked")
    rt.trail.record(ev.ReceiptIssued(provider=receipt.agency, dataset=receipt.dataset, source_sha256=receipt.sha256,
                                     source_name=receipt.name, outcome=receipt.outcome, receipt_sha256=issued.sha256,
                                     provider_signature=status, receipt=issued.where), actor=actor)


def _archive_signature(source: Path, archived: Path) -> None:
    """The provider's signature stays beside its file in the archive: the proof of who vouched for it."""
    sig = signatures.signature_path(source)
    if os.path.lexists(sig):
        os.replace(sig, signatures.signature_path(archived))


def _provenance(accepted: Accepted) -> dict | None:
    if not accepted.signature or accepted.signature.get("status") != "valid":
        return None
    return signatures.Verdict(**accepted.signature).provenance()


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


def _location(plan: DeliveryPlan, extract: Extract) -> DeliveryLocation:
    return DeliveryLocation(plan.agreement, plan.recipient, plan.dataset, extract.received_at[:10], plan.delivery_id)


def _result(rt: Runtime, plan: DeliveryPlan, location: DeliveryLocation) -> Callable[..., DeliveryResult]:
    def result(status: str, **more: Any) -> DeliveryResult:
        return DeliveryResult(plan.delivery_id, plan.agreement, plan.recipient, plan.dataset,
                              f"s3://{rt.target.bucket}/{location.prefix}", status, **more)
    return result


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
