"""Fetching: every delivery of a recipient not yet in its folder, each one checked and kept, or refused."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

from borderx.crypto import sshsig
from borderx.bucket.deliveries import TOMBSTONE_FILE, read_tombstone
from borderx.delivery.manifest import MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation
from borderx.errors import BucketObjectError
from borderx.recipient.checks import DOWNLOAD, MANIFEST_MISMATCH, SIGNATURE, DeliveryRefused
from borderx.errors import RecipientError
from borderx.recipient.listing import _scan, local_folder
from borderx.recipient.progress import Progress, _Quiet
from borderx.recipient.record import FetchedRecord
from borderx.recipient.remote import _BUCKET_ERRORS, verify_remote
from borderx.recipient.staging import TEMP_PREFIX, _decrypt_into
from borderx.recipient.stopping import Shield
from borderx.text import printable

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    location: DeliveryLocation
    status: str  # fetched, skipped (already in DIR), failed, revoked (the hub withdrew it)
    folder: Path | None = None
    check: str | None = None
    reason: str = ""
    rows: int | None = None
    size: int | None = None

    @property
    def label(self) -> str:
        loc = self.location
        return f"{loc.agreement}/{loc.dataset}/{loc.date}_{loc.delivery_id}"


@dataclass
class FetchReport:
    outcomes: list[Outcome] = field(default_factory=list)

    def _with(self, status: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def fetched(self) -> list[Outcome]:
        return self._with("fetched")

    @property
    def skipped(self) -> list[Outcome]:
        return self._with("skipped")

    @property
    def failed(self) -> list[Outcome]:
        return self._with("failed")

    @property
    def revoked(self) -> list[Outcome]:
        return self._with("revoked")

    @property
    def ok(self) -> bool:
        return not self.failed


def fetch_one(s3, bucket: str, location: DeliveryLocation, identities: Sequence, keys: Sequence[str], out_dir: Path,
              *, recipient: str, progress: Progress | None = None,
              shielded: Shield = contextlib.nullcontext) -> Outcome:
    """Downloads, checks and decrypts one delivery into out_dir; a failure leaves nothing behind."""
    progress = progress or _Quiet()
    final = local_folder(out_dir, location)
    if final.exists():
        return Outcome(location, "skipped", folder=final)
    work = None
    try:
        with shielded():  # a stop cannot fall between making the folder and knowing to remove it
            work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out_dir))  # created 0700
        staged = work / "delivery"
        staged.mkdir(mode=0o700)
        verified = verify_remote(s3, bucket, location, keys, recipient=recipient, into=work, progress=progress)
        rows = _decrypt_into(work / verified.data_file, staged / verified.plaintext_file, identities, verified.rows,
                             progress, verified.size, verified.format)
        os.replace(work / MANIFEST_FILE, staged / MANIFEST_FILE)
        os.replace(work / SIGNATURE_FILE, staged / SIGNATURE_FILE)
        for folder in (final.parent.parent, final.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
        try:
            # A whole folder appears at once: a reader of DIR never sees half a delivery.
            os.rename(staged, final)
        except OSError:
            if final.exists():  # another fetch into the same DIR got there first
                return Outcome(location, "skipped", folder=final)
            raise
        return Outcome(location, "fetched", folder=final, rows=rows, size=verified.size)
    except DeliveryRefused as exc:
        return Outcome(location, "failed", check=exc.check, reason=exc.reason)
    except OSError as exc:
        # The local disk failed (full, permissions): no later delivery would fare better.
        raise RecipientError(f"{location.prefix}: {exc.strerror or exc.__class__.__name__} in {out_dir}") from None
    finally:
        progress.end()
        with shielded():  # a stop asked now waits until no partial plaintext is left
            if work is not None:
                shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def cleanup_on_terminate() -> Iterator[None]:
    """Turns SIGTERM into SystemExit for the block, so a stopped fetch still removes its temporary folder."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def fetch(s3, bucket: str, recipient: str, identities: Sequence, keys: Sequence[str], out_dir: Path, *,
          agreement: str | None = None, since: dt.date | None = None, progress: Progress | None = None,
          on_outcome: Callable[[Outcome], None] | None = None,
          shielded: Shield = contextlib.nullcontext) -> FetchReport:
    """Fetches every delivery of `recipient` not fetched into out_dir before; each one is checked and kept, or
    refused. What was fetched is remembered in out_dir (see :mod:`.record`), so moving a delivery's folder away
    does not fetch it again."""
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = FetchedRecord(out_dir, shielded=shielded)
    report = FetchReport()
    locations, tombstoned = _scan(s3, bucket, recipient, agreement=agreement, since=since)
    signed = set(locations)
    settled = set()
    for loc in tombstoned:
        outcome = _revocation(s3, bucket, loc, keys, out_dir, beside_files=loc in signed)
        if outcome is None:
            continue
        settled.add(loc)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    # A location whose tombstone is the hub's (or could not be read) is never fetched, even with its files back.
    locations = [loc for loc in locations if loc not in settled]
    pending = []
    for loc in locations:
        held = local_folder(out_dir, loc)
        if loc not in record and not held.exists():
            pending.append(loc)
            continue
        if loc not in record:
            # Fetched before the record was kept, or stopped between the folder appearing and the record saying so.
            record.add(loc, held)
        report.outcomes.append(Outcome(loc, "skipped", folder=held))
    for n, loc in enumerate(pending, start=1):
        if progress:
            progress.start(n, len(pending), f"{loc.agreement}/{loc.dataset}/{loc.date}_{loc.delivery_id}")
        outcome = fetch_one(s3, bucket, loc, identities, keys, out_dir, recipient=recipient, progress=progress,
                            shielded=shielded)
        if outcome.status in ("fetched", "skipped"):
            record.add(loc, outcome.folder)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report


def _revocation(s3, bucket: str, loc: DeliveryLocation, keys: Sequence[str], out_dir: Path, *,
                beside_files: bool) -> Outcome | None:
    """A revoked delivery, reported with the hub's signed reason.

    A tombstone the hub did not sign for this very location (unsigned, oversized, or copied from another
    delivery) revokes nothing: with the delivery's own signed files beside it, it is ignored with a warning
    (None: fetch it as usual); alone, the location is refused.
    """
    held = local_folder(out_dir, loc)
    key = f"s3://{bucket}/{loc.key(TOMBSTONE_FILE)}"
    try:
        tombstone = read_tombstone(s3, bucket, loc, keys)
    except _BUCKET_ERRORS as exc:
        return Outcome(loc, "failed", check=DOWNLOAD, reason=f"tombstone: {exc.__class__.__name__}")
    except (sshsig.SignatureError, BucketObjectError) as exc:
        unsigned = isinstance(exc, sshsig.SignatureError)
        reason = f"{TOMBSTONE_FILE} is not signed by the hub" if unsigned else str(exc).replace(key, TOMBSTONE_FILE)
        if beside_files:
            log.warning("%s: %s; ignored, the delivery beside it is checked as usual", key, reason)
            return None
        return Outcome(loc, "failed", check=SIGNATURE if unsigned else MANIFEST_MISMATCH, reason=reason)
    if beside_files:
        log.warning("%s: the delivery's files are back beside its tombstone; not fetched", loc.prefix)
    copy = f"; a copy fetched earlier is at {held}" if held.exists() else ""
    return Outcome(loc, "revoked", folder=held if held.exists() else None,
                   reason=f"revoked {tombstone['revoked_at']}: {tombstone['reason']}{copy}")


def print_outcome(outcome: Outcome, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if outcome.status == "revoked":
        print(printable(f"REVOKED  {outcome.label}: {outcome.reason}"), file=out, flush=True)
    elif outcome.status == "fetched":
        print(printable(f"fetched  {outcome.folder}  ({outcome.rows} rows)"), file=out, flush=True)
    elif outcome.status == "failed":
        print(printable(f"REFUSED  {outcome.label}: {outcome.check}: {outcome.reason}"), file=out, flush=True)


def print_summary(report: FetchReport, err: TextIO | None = None) -> None:
    print(f"{len(report.fetched)} fetched, {len(report.skipped)} already there, {len(report.failed)} refused, "
          f"{len(report.revoked)} revoked",
          file=err or sys.stderr)
