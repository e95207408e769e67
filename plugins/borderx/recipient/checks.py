"""The checks a delivery must pass: the hub's signature over its manifest, the data hash, the row count."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from borderx.crypto import age, sshsig
from borderx.errors import DeliveryRefused
from borderx.delivery.layout import DATA_FILES, plaintext_name
from borderx.delivery.manifest import MANIFEST_FILE, NAMESPACE, DeliveryLocation, published_file
from borderx.bucket.objects import parse_location
from borderx.recipient.parquet_rows import NotParquetData, ParquetRowCounter

# The checks a delivery can fail, in the order they run; these names are what a refusal reports.
REVOKED = "revoked"  # the hub's tombstone for this very place stands beside the files
SIGNATURE = "signature"
MANIFEST_MISMATCH = "manifest-mismatch"
DATA_HASH = "data-hash"
DECRYPT = "decrypt"
ROW_COUNT = "row-count"
DOWNLOAD = "download"  # the bucket or the network failed; says nothing about the delivery itself

_PIECE = 1 << 20


@dataclass(frozen=True)
class Verified:
    """A manifest whose signature and content checked out, and the hub key that signed it."""

    manifest: dict[str, Any]
    hub_fingerprint: str

    @property
    def rows(self) -> int:
        return self.manifest["rows"]

    @property
    def sha256(self) -> str:
        return self.manifest["published"]["sha256"]

    @property
    def size(self) -> int:
        return self.manifest["published"]["size"]

    @property
    def data_file(self) -> str:
        """data.csv.age or data.parquet.age, as the manifest's published.key names it."""
        return published_file(self.manifest)

    @property
    def format(self) -> str:
        return "parquet" if self.data_file == DATA_FILES["parquet"] else "csv"

    @property
    def plaintext_file(self) -> str:
        return plaintext_name(self.data_file)


def verify_manifest(body: bytes, signature: bytes, keys: Sequence[str], *, location: DeliveryLocation | None = None,
                    recipient: str | None = None) -> Verified:
    """Checks the hub's signature over the manifest, then that it describes `location` and `recipient`.

    The manifest must also agree with itself: its published key is the path its own agreement,
    recipient, dataset and delivery id make. Raises DeliveryRefused.
    """
    signer = None
    for key in keys:
        try:
            sshsig.verify(key, body, signature, NAMESPACE)
        except (sshsig.SignatureError, ValueError):
            continue
        signer = sshsig.fingerprint(key)
        break
    if signer is None:
        raise DeliveryRefused(SIGNATURE, f"{MANIFEST_FILE}.sig is not a valid hub signature of {MANIFEST_FILE} "
                                         f"(namespace {NAMESPACE}, {len(keys)} trusted key(s))")
    try:
        manifest = json.loads(body)
        names = {k: manifest[k] for k in ("delivery_id", "agreement", "recipient", "dataset")}
        published = manifest["published"]
        rows, sha, size, key = manifest["rows"], published["sha256"], published["size"], published["key"]
    except (ValueError, KeyError, TypeError):
        raise DeliveryRefused(MANIFEST_MISMATCH, f"{MANIFEST_FILE} lacks the fields a delivery manifest has") from None
    if not (type(rows) is int and rows >= 0 and type(size) is int and size >= 0
            and isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha) and isinstance(key, str)):
        raise DeliveryRefused(MANIFEST_MISMATCH, f"{MANIFEST_FILE} has a malformed rows, published.size or published.sha256")
    data_file = key.rpartition("/")[2]
    fmt = published.get("format", "csv")
    if data_file not in DATA_FILES.values() or DATA_FILES.get(fmt) != data_file:
        raise DeliveryRefused(MANIFEST_MISMATCH, f"published.key names {data_file!r}, which is not the data file of "
                                                 f"format {fmt!r}")
    own = parse_location(key.rpartition("/")[0])
    if own is None or (own.agreement, own.recipient, own.dataset, own.delivery_id) != (
            names["agreement"], names["recipient"], names["dataset"], names["delivery_id"]):
        raise DeliveryRefused(MANIFEST_MISMATCH, "published.key does not match the manifest's own agreement, "
                                                 "recipient, dataset and delivery id")
    if location is not None:
        for name, expected in (("agreement", location.agreement), ("recipient", location.recipient),
                               ("dataset", location.dataset), ("delivery_id", location.delivery_id)):
            if names[name] != expected:
                raise DeliveryRefused(MANIFEST_MISMATCH, f"the manifest names {name} {names[name]!r} but was found "
                                                         f"under {location.prefix}")
        if key != location.key(data_file):
            raise DeliveryRefused(MANIFEST_MISMATCH, f"published.key is {key}, but the delivery is {location.prefix}")
    if recipient is not None and names["recipient"] != recipient:
        raise DeliveryRefused(MANIFEST_MISMATCH, f"the manifest is for {names['recipient']}, not {recipient}")
    listed = manifest.get("keys")
    claimed = listed.get("hub_signing_key") if isinstance(listed, dict) else None
    if claimed != signer:
        raise DeliveryRefused(MANIFEST_MISMATCH, f"keys.hub_signing_key is {claimed}, but {signer} signed it")
    return Verified(manifest, signer)


def check_data(stream, verified: Verified, on_bytes: Callable[[int], None] | None = None) -> None:
    """Hashes the encrypted file from `stream` and compares size and SHA-256 with the manifest."""
    digest = hashlib.sha256()
    size = 0
    while piece := stream.read(_PIECE):
        digest.update(piece)
        size += len(piece)
        if on_bytes:
            on_bytes(size)
    if size != verified.size:
        raise DeliveryRefused(DATA_HASH, f"{verified.data_file} is {size} bytes, the manifest says {verified.size}")
    if digest.hexdigest() != verified.sha256:
        raise DeliveryRefused(DATA_HASH, f"SHA-256 of {verified.data_file} differs from published.sha256 in the "
                                         f"manifest")


class RecordCounter:
    """Counts CSV records as RFC 4180 reads them: a line break inside a quoted field ends no record."""

    def __init__(self) -> None:
        self.breaks = 0
        self.quoted = False
        self.last = b""

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if not self.quoted and b'"' not in data:
            self.breaks += data.count(b"\n")
        else:
            # Every quote flips the state; a doubled quote inside a field flips it twice.
            for i, part in enumerate(data.split(b'"')):
                if i:
                    self.quoted = not self.quoted
                if not self.quoted:
                    self.breaks += part.count(b"\n")
        self.last = data[-1:]

    @property
    def records(self) -> int:
        return self.breaks + (1 if self.last not in (b"", b"\n") else 0)


def decrypt_checked(src: Path, dst, identities: Sequence, rows: int | None,
                    on_bytes: Callable[[int], None] | None = None, fmt: str = "csv") -> int:
    """Decrypts `src` into the open file `dst` chunk by chunk; returns the data rows (a CSV header excluded;
    of a Parquet file, as its footer counts them).

    With `rows` given, a different count raises DeliveryRefused(row-count). The caller owns `dst` and
    must discard it on any error: plaintext is written as each chunk authenticates.
    """
    counter = ParquetRowCounter() if fmt == "parquet" else RecordCounter()
    with open(src, "rb", buffering=0) as fh:
        try:
            reader = age.decrypting_reader(fh, identities)
            while piece := reader.read_chunk():
                counter.feed(piece)
                dst.write(piece)
                if on_bytes:
                    on_bytes(fh.tell())
        except age.AgeError as exc:
            raise DeliveryRefused(DECRYPT, f"{Path(src).name}: {exc}") from None
    try:
        found = counter.records if fmt == "parquet" else max(counter.records - 1, 0)
    except NotParquetData as exc:
        raise DeliveryRefused(ROW_COUNT, f"the decrypted file: {exc}") from None
    if rows is not None and found != rows:
        raise DeliveryRefused(ROW_COUNT, f"the decrypted file holds {found} rows, the manifest says {rows}")
    return found
