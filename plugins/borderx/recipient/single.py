"""One delivery named on the command line: verify it, or verify and decrypt it to a file."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from borderx.delivery.layout import DATA_FILES
from borderx.delivery.manifest import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation
from borderx.recipient.checks import DATA_HASH, SIGNATURE, DeliveryRefused, Verified, check_data, verify_manifest
from borderx.errors import RecipientUsageError
from borderx.bucket.objects import parse_location
from borderx.recipient.progress import Progress, _Quiet
from borderx.recipient.remote import MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, verify_remote
from borderx.recipient.staging import PLAINTEXT_FILE, TEMP_PREFIX, _decrypt_into


@dataclass(frozen=True)
class Source:
    """One delivery named on the command line: an s3:// prefix (or deliveries/... in the given bucket) or a folder."""

    folder: Path | None = None
    bucket: str | None = None
    location: DeliveryLocation | None = None

    @property
    def remote(self) -> bool:
        return self.folder is None

    def __str__(self) -> str:
        return str(self.folder) if self.folder else f"s3://{self.bucket}/{self.location.prefix}"


def parse_source(given: str, default_bucket: str | None) -> Source:
    if given.startswith("s3://"):
        bucket, _, prefix = given[len("s3://"):].partition("/")
        location = parse_location(prefix)
        if not bucket or location is None:
            raise RecipientUsageError(f"{given}: expected s3://BUCKET/deliveries/AGREEMENT/RECIPIENT/DATASET/"
                                      "YYYY/MM/DD/DELIVERY_ID/")
        return Source(bucket=bucket, location=location)
    path = Path(given)
    if path.is_dir():
        resolved = path.resolve()
        # A folder mirrored from the bucket keeps the layout, and then must match what its manifest says.
        tail = "/".join(resolved.parts[-8:])
        return Source(folder=resolved, location=parse_location(tail))
    if given.startswith("deliveries/") and parse_location(given) and default_bucket:
        return Source(bucket=default_bucket, location=parse_location(given))
    raise RecipientUsageError(f"{given}: neither a folder nor an s3://BUCKET/deliveries/... prefix")


def resolve_source(given: str, default_bucket: str | None, *, verify: bool = True) -> Source | Path:
    """What `borderx verify` or `decrypt` was given: a delivery, or (without verification) a bare .age file.

    A data file inside a delivery folder stands for its folder, so it is verified before it is decrypted.
    """
    path = Path(given)
    if not verify:
        if not path.is_file():
            raise RecipientUsageError(f"{given}: --no-verify takes an .age file, not a folder or a prefix")
        return path
    if path.is_file():
        return parse_source(str(path.parent), default_bucket)
    return parse_source(given, default_bucket)


def verify_local(folder: Path, keys: Sequence[str], *, location: DeliveryLocation | None = None,
                 recipient: str | None = None) -> Verified:
    # The manifest names the data file; before it is read, whichever data file is there stands for it.
    data_name = next((n for n in DATA_FILES.values() if (folder / n).is_file()), DATA_FILE)
    paths = {name: folder / name for name in (data_name, MANIFEST_FILE, SIGNATURE_FILE)}
    missing = [n for n, p in paths.items() if not p.is_file()]
    if len(missing) == len(paths):
        raise RecipientUsageError(f"{folder}: not a delivery folder (it holds none of {DATA_FILE}, "
                                  f"{DATA_FILES['parquet']}, {MANIFEST_FILE}, {SIGNATURE_FILE})")
    if missing:
        check = DATA_HASH if missing == [data_name] else SIGNATURE
        raise DeliveryRefused(check, f"{', '.join(missing)} missing in {folder}")
    for name, limit in ((MANIFEST_FILE, MAX_MANIFEST_BYTES), (SIGNATURE_FILE, MAX_SIGNATURE_BYTES)):
        if paths[name].stat().st_size > limit:
            raise DeliveryRefused(SIGNATURE, f"{name} is larger than {limit} bytes")
    verified = verify_manifest(paths[MANIFEST_FILE].read_bytes(), paths[SIGNATURE_FILE].read_bytes(), keys,
                               location=location, recipient=recipient)
    if not (folder / verified.data_file).is_file():
        raise DeliveryRefused(DATA_HASH, f"{verified.data_file} missing in {folder}")
    with open(folder / verified.data_file, "rb") as fh:
        check_data(fh, verified)
    return verified


def verify_source(source: Source, keys: Sequence[str], *, s3=None, recipient: str | None = None,
                  progress: Progress | None = None) -> Verified:
    """Signature, manifest and data hash of one delivery, without decrypting it. Raises DeliveryRefused."""
    if source.remote:
        return verify_remote(s3, source.bucket, source.location, keys, recipient=recipient, progress=progress)
    return verify_local(source.folder, keys, location=source.location, recipient=recipient)


def _work_dir_beside(out: Path):
    out = Path(out)
    if out.is_dir():
        raise RecipientUsageError(f"--out {out} is a folder; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out.parent))


def decrypt_source(source: Source | Path, identities: Sequence, out: Path, *, keys: Sequence[str] | None,
                   s3=None, recipient: str | None = None, progress: Progress | None = None) -> tuple[int | None, Verified | None]:
    """Verifies one delivery (unless `keys` is None and `source` is a file) and decrypts it to `out`.

    `out` is written 0600 and appears only when decryption and the row count succeeded.
    Returns (rows, verified); rows is None when nothing was verified.
    """
    progress = progress or _Quiet()
    progress.start(1, 1, str(source))
    out = Path(out)
    work = _work_dir_beside(out)
    try:
        verified = None
        if isinstance(source, Path):
            encrypted, total = source, source.stat().st_size
        elif source.remote:
            verified = verify_remote(s3, source.bucket, source.location, keys, recipient=recipient, into=work,
                                     progress=progress)
            encrypted, total = work / verified.data_file, verified.size
        else:
            verified = verify_local(source.folder, keys, location=source.location, recipient=recipient)
            encrypted, total = source.folder / verified.data_file, verified.size
        staged = work / PLAINTEXT_FILE
        fmt = verified.format if verified else ("parquet" if encrypted.name.endswith(".parquet.age") else "csv")
        rows = _decrypt_into(encrypted, staged, identities, verified.rows if verified else None, progress, total,
                             fmt)
        os.replace(staged, out)
        return (rows if verified else None), verified
    finally:
        progress.end()
        shutil.rmtree(work, ignore_errors=True)


def describe(verified: Verified) -> str:
    m = verified.manifest
    return (f"{m['delivery_id']}: {m['agreement']}, {m.get('provider', '?')} -> {m['recipient']}, {m['dataset']}, "
            f"{m['rows']} rows, signed by {verified.hub_fingerprint}, data SHA-256 matches")
