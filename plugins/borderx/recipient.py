"""The recipient's side: finding, downloading, verifying and decrypting deliveries.

A recipient trusts nothing in the bucket but the hub's signature: the manifest must carry it, the
manifest must describe the very place it was found in, the data file must have the hash the manifest
states, and the plaintext must hold the rows the manifest counts. Plaintext reaches its final place
only after every one of those checks passed, and never in part.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO

import yaml
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError

from borderx.config.models import SLUG, S3Settings, Settings
from borderx.crypto import age, sshsig
from borderx.errors import BorderxError, ConfigError
from borderx.home import Home
from borderx.deliveries import TOMBSTONE_FILE, read_tombstone
from borderx.manifest import DATA_FILE, MANIFEST_FILE, NAMESPACE, SIGNATURE_FILE, DeliveryLocation
from borderx.publish import Target

# The checks a delivery can fail, in the order they run; these names are what a refusal reports.
SIGNATURE = "signature"
MANIFEST_MISMATCH = "manifest-mismatch"
DATA_HASH = "data-hash"
DECRYPT = "decrypt"
ROW_COUNT = "row-count"
DOWNLOAD = "download"  # the bucket or the network failed; says nothing about the delivery itself

PLAINTEXT_FILE = "data.csv"
TEMP_PREFIX = ".borderx-fetch-"
# Far above any real manifest or signature; a bucket cannot make the recipient buffer more than this.
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 16 << 10

_SAFE = re.compile(SLUG)
_PIECE = 1 << 20


class RecipientError(BorderxError):
    """The bucket cannot be listed or read, or the recipient's inputs cannot be used."""


class RecipientUsageError(RecipientError):
    """The command was given something it cannot work with (a missing identity or hub key, a bad prefix)."""


class DeliveryRefused(BorderxError):
    """One delivery failed a check; `check` names which. Never carries plaintext or key material."""

    def __init__(self, check: str, reason: str):
        self.check = check
        self.reason = reason
        super().__init__(f"{check}: {reason}")


# -- inputs: hub key, identity, settings ----------------------------------------------------------


def _tokens(line: str) -> list[str]:
    # allowed_signers options may quote their values; a quoted value is one token.
    return re.findall(r'(?:[^\s"]|"[^"]*")+', line)


def parse_hub_keys(text: str) -> list[str]:
    """The ed25519 public key lines in an allowed_signers file or a .pub file that may sign manifests.

    allowed_signers lines restricted to other namespaces, and certificate authorities, are left out;
    validity options (valid-after, valid-before) are not applied.
    """
    keys = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens = _tokens(line)
        at = next((i for i, t in enumerate(tokens) if t == "ssh-ed25519"), None)
        if at is None or at + 1 >= len(tokens):
            continue
        options = [o for t in tokens[1:at] for o in re.findall(r'(?:[^,"]|"[^"]*")+', t)]
        if any(o.lower() == "cert-authority" for o in options):
            continue
        namespaces = [o.split("=", 1)[1].strip('"') for o in options if o.lower().startswith("namespaces=")]
        if namespaces and NAMESPACE not in ",".join(namespaces).split(","):
            continue
        key = f"{tokens[at]} {tokens[at + 1]}"
        try:
            sshsig.fingerprint(key)
        except ValueError:
            continue
        keys.append(key)
    return keys


def read_settings(home: Home) -> Settings | None:
    """The home's settings, or None when the home has none (a recipient's machine usually has none)."""
    from borderx.config.loader import SETTINGS_FILE, Problem

    path = home.config / SETTINGS_FILE
    if not path.is_file():
        return None
    shown = f"config/{SETTINGS_FILE}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([Problem(shown, "-", f"cannot be read: {exc.__class__.__name__}")]) from None
    try:
        return Settings.model_validate(data)
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [{"loc": (), "msg": "not a valid settings file"}])()
        raise ConfigError([Problem(shown, ".".join(map(str, e["loc"])) or "-", e["msg"]) for e in errors]) from None


def hub_keys(hub_key_file: str | os.PathLike | None, home: Home) -> list[str]:
    """The hub keys to trust: from --hub-key (allowed_signers or .pub), else from the home's settings."""
    if hub_key_file:
        path = Path(hub_key_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipientUsageError(f"hub key file {path}: cannot be read ({exc.__class__.__name__})") from None
        keys = parse_hub_keys(text)
        if not keys:
            raise RecipientUsageError(
                f"hub key file {path}: no ssh-ed25519 key allowed for namespace {NAMESPACE} "
                "(expected an allowed_signers line or a .pub line)"
            )
        return keys
    settings = read_settings(home)
    if settings is None:
        raise RecipientUsageError(
            f"no hub key: give --hub-key FILE (an allowed_signers file or the hub's .pub), "
            f"or a --home with config/settings.yaml (looked in {home.config})"
        )
    return [settings.hub.signing_public_key]


def load_identities(path: str | os.PathLike) -> list:
    """The age identities in an identity file (age-keygen format); errors never quote the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipientUsageError(f"identity file {path}: cannot be read ({exc.__class__.__name__})") from None
    try:
        return age.parse_identities(text)
    except ValueError as exc:
        raise RecipientUsageError(f"identity file {path}: {exc}") from None


def resolve_target(home: Home, *, endpoint_url: str | None = None, bucket: str | None = None) -> Target:
    """Endpoint and bucket as the hub resolves them, with the defaults when the home has no settings."""
    settings = read_settings(home)
    return Target.resolve(settings.s3 if settings else S3Settings(), endpoint_url=endpoint_url, bucket=bucket)


# -- where deliveries are -------------------------------------------------------------------------


def parse_location(prefix: str) -> DeliveryLocation | None:
    """deliveries/AGREEMENT/RECIPIENT/DATASET/YYYY/MM/DD/DELIVERY_ID[/] as a location, or None.

    Every part ends up in a local path, so only plain names and real dates are accepted.
    """
    parts = prefix.strip("/").split("/")
    if len(parts) != 8 or parts[0] != "deliveries":
        return None
    _, agreement, recipient, dataset, yyyy, mm, dd, delivery_id = parts
    if not all(_SAFE.fullmatch(p) for p in (agreement, recipient, dataset, delivery_id)):
        return None
    if not (len(yyyy) == 4 and len(mm) == 2 and len(dd) == 2):
        return None
    try:
        day = dt.date(int(yyyy), int(mm), int(dd))
    except ValueError:
        return None
    return DeliveryLocation(agreement, recipient, dataset, day.isoformat(), delivery_id)


def check_name(kind: str, value: str) -> str:
    if not _SAFE.fullmatch(value or ""):
        raise RecipientUsageError(f"{kind} {value!r} is not a valid id")
    return value


def _bucket_error(bucket: str, exc: Exception) -> RecipientError:
    if isinstance(exc, ClientError):
        return RecipientError(f"s3://{bucket}: {exc.response.get('Error', {}).get('Code')}")
    return RecipientError(f"s3://{bucket}: {exc.__class__.__name__}")


def list_deliveries(s3, bucket: str, recipient: str, *, agreement: str | None = None,
                    since: dt.date | None = None) -> list[DeliveryLocation]:
    """The recipient's complete deliveries (those with a signature), oldest first."""
    return _scan(s3, bucket, recipient, agreement=agreement, since=since)[0]


def list_revoked(s3, bucket: str, recipient: str, *, agreement: str | None = None,
                 since: dt.date | None = None) -> list[DeliveryLocation]:
    """The recipient's deliveries that the hub revoked (a tombstone stands in their place)."""
    return _scan(s3, bucket, recipient, agreement=agreement, since=since)[1]


def _scan(s3, bucket: str, recipient: str, *, agreement: str | None = None,
          since: dt.date | None = None) -> tuple[list[DeliveryLocation], list[DeliveryLocation]]:
    """Signed and revoked deliveries of the recipient.

    Agreements are found as common prefixes first, because a recipient may list deliveries/ only with
    a delimiter, and its own deliveries/AGREEMENT/RECIPIENT/ prefixes.
    """
    check_name("recipient", recipient)
    paginator = s3.get_paginator("list_objects_v2")
    try:
        if agreement:
            agreements = [check_name("agreement", agreement)]
        else:
            agreements = []
            for page in paginator.paginate(Bucket=bucket, Prefix="deliveries/", Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"][len("deliveries/"):].rstrip("/")
                    if _SAFE.fullmatch(name):
                        agreements.append(name)
        found: dict[str, DeliveryLocation] = {}
        revoked: dict[str, DeliveryLocation] = {}
        for name in agreements:
            for page in paginator.paginate(Bucket=bucket, Prefix=f"deliveries/{name}/{recipient}/"):
                for obj in page.get("Contents", []):
                    prefix, _, file = obj["Key"].rpartition("/")
                    if file not in (SIGNATURE_FILE, TOMBSTONE_FILE):
                        continue
                    location = parse_location(prefix)
                    if location is None or (since and dt.date.fromisoformat(location.date) < since):
                        continue
                    (found if file == SIGNATURE_FILE else revoked)[location.prefix] = location
    except (ClientError, BotoCoreError) as exc:
        raise _bucket_error(bucket, exc) from None

    def order(loc: DeliveryLocation):
        return (loc.date, loc.agreement, loc.dataset, loc.delivery_id)

    return sorted(found.values(), key=order), sorted(revoked.values(), key=order)


def local_folder(out_dir: Path, location: DeliveryLocation) -> Path:
    """Where a fetched delivery lives: DIR/AGREEMENT/DATASET/YYYY-MM-DD_DELIVERY_ID/."""
    return out_dir / location.agreement / location.dataset / f"{location.date}_{location.delivery_id}"


# -- the checks -----------------------------------------------------------------------------------


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
    own = parse_location(key.rpartition("/")[0]) if key.endswith("/" + DATA_FILE) else None
    if own is None or (own.agreement, own.recipient, own.dataset, own.delivery_id) != (
            names["agreement"], names["recipient"], names["dataset"], names["delivery_id"]):
        raise DeliveryRefused(MANIFEST_MISMATCH, f"published.key does not match the manifest's own agreement, "
                                                 f"recipient, dataset and delivery id")
    if location is not None:
        for name, expected in (("agreement", location.agreement), ("recipient", location.recipient),
                               ("dataset", location.dataset), ("delivery_id", location.delivery_id)):
            if names[name] != expected:
                raise DeliveryRefused(MANIFEST_MISMATCH, f"the manifest names {name} {names[name]!r} but was found "
                                                         f"under {location.prefix}")
        if key != location.key(DATA_FILE):
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
        raise DeliveryRefused(DATA_HASH, f"{DATA_FILE} is {size} bytes, the manifest says {verified.size}")
    if digest.hexdigest() != verified.sha256:
        raise DeliveryRefused(DATA_HASH, f"SHA-256 of {DATA_FILE} differs from published.sha256 in the manifest")


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
                    on_bytes: Callable[[int], None] | None = None) -> int:
    """Decrypts `src` into the open file `dst` chunk by chunk; returns the data rows (header excluded).

    With `rows` given, a different count raises DeliveryRefused(row-count). The caller owns `dst` and
    must discard it on any error: plaintext is written as each chunk authenticates.
    """
    counter = RecordCounter()
    with open(src, "rb", buffering=0) as fh:
        try:
            reader = age.decrypting_reader(fh, identities)
            while piece := reader.read_chunk():
                counter.feed(piece)
                dst.write(piece)
                if on_bytes:
                    on_bytes(fh.tell())
        except age.AgeError as exc:
            raise DeliveryRefused(DECRYPT, f"{DATA_FILE}: {exc}") from None
    found = max(counter.records - 1, 0)
    if rows is not None and found != rows:
        raise DeliveryRefused(ROW_COUNT, f"the decrypted file holds {found} rows, the manifest says {rows}")
    return found


# -- progress -------------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    """Bytes done of bytes total on one line redrawn in place on a terminal; one line per delivery elsewhere."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None, interval: float = 0.2):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval
        self._label = ""
        self._last = 0.0
        self._drawn = False
        self._lock = threading.Lock()

    def start(self, n: int, total: int, label: str) -> None:
        self._label = f"[{n}/{total}] {label}"
        if not self.tty:
            print(self._label, file=self.stream, flush=True)

    def update(self, phase: str, done: int, total: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.interval and done < total:
                return
            self._last = now
            pct = f" {100 * done // total:3d}%" if total else ""
            self.stream.write(f"\r\x1b[K{self._label} {phase} {_size(done)} / {_size(total)}{pct}")
            self.stream.flush()
            self._drawn = True

    def end(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


class _Quiet(Progress):
    def __init__(self) -> None:
        super().__init__(sys.stderr, tty=False)

    def start(self, n: int, total: int, label: str) -> None:
        pass


# -- fetching -------------------------------------------------------------------------------------


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


_BUCKET_ERRORS = (ClientError, BotoCoreError, RetriesExceededError)


def _refusal(exc: Exception, name: str, missing: str) -> DeliveryRefused:
    """A missing object fails the check it was needed for; any other bucket error is a download failure."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code in ("404", "NoSuchKey", "NotFound"):
            return DeliveryRefused(missing, f"{name} is missing")
        return DeliveryRefused(DOWNLOAD, f"{name}: {code}")
    return DeliveryRefused(DOWNLOAD, f"{name}: {exc.__class__.__name__}")


def _get_small(s3, bucket: str, key: str, limit: int, check: str) -> bytes:
    name = key.rpartition("/")[2]
    try:
        with s3.get_object(Bucket=bucket, Key=key)["Body"] as body:
            data = body.read(limit + 1)
    except _BUCKET_ERRORS as exc:
        raise _refusal(exc, name, check) from None
    if len(data) > limit:
        raise DeliveryRefused(check, f"{name} is larger than {limit} bytes")
    return data


def _download(s3, bucket: str, key: str, path: Path, on_bytes: Callable[[int], None] | None) -> None:
    done = 0
    lock = threading.Lock()

    def advanced(n: int) -> None:
        nonlocal done
        with lock:
            done += n
            if on_bytes:
                on_bytes(done)

    try:
        s3.download_file(bucket, key, str(path), Callback=advanced)
    except _BUCKET_ERRORS as exc:
        raise _refusal(exc, DATA_FILE, DATA_HASH) from None


def verify_remote(s3, bucket: str, location: DeliveryLocation, keys: Sequence[str], *, recipient: str | None = None,
                  into: Path | None = None, progress: Progress | None = None) -> Verified:
    """Checks signature, manifest and data hash of a delivery in the bucket.

    With `into`, the three files are saved in that folder, which the caller discards if this raises;
    without it the data is only hashed as it streams past.
    """
    progress = progress or _Quiet()
    body = _get_small(s3, bucket, location.key(MANIFEST_FILE), MAX_MANIFEST_BYTES, SIGNATURE)
    signature = _get_small(s3, bucket, location.key(SIGNATURE_FILE), MAX_SIGNATURE_BYTES, SIGNATURE)
    verified = verify_manifest(body, signature, keys, location=location, recipient=recipient)
    # The published size is signed: a data object of another size is refused before it is downloaded.
    try:
        head = s3.head_object(Bucket=bucket, Key=location.key(DATA_FILE))
    except _BUCKET_ERRORS as exc:
        raise _refusal(exc, DATA_FILE, DATA_HASH) from None
    if head["ContentLength"] != verified.size:
        raise DeliveryRefused(DATA_HASH, f"{DATA_FILE} is {head['ContentLength']} bytes, the manifest says {verified.size}")
    if into is None:
        try:
            stream = s3.get_object(Bucket=bucket, Key=location.key(DATA_FILE))["Body"]
            with stream:
                check_data(stream, verified, lambda n: progress.update("verifying", n, verified.size))
        except _BUCKET_ERRORS as exc:
            raise _refusal(exc, DATA_FILE, DATA_HASH) from None
        return verified
    _private_file(into / MANIFEST_FILE, body)
    _private_file(into / SIGNATURE_FILE, signature)
    data = into / DATA_FILE
    _download(s3, bucket, location.key(DATA_FILE), data, lambda n: progress.update("downloading", n, verified.size))
    with open(data, "rb") as fh:
        check_data(fh, verified, lambda n: progress.update("checking", n, verified.size))
    return verified


def _private_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _decrypt_into(src: Path, dst: Path, identities: Sequence, rows: int | None,
                  progress: Progress, total: int) -> int:
    # Owner-only from the first byte: plaintext never exists with wider permissions.
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        return decrypt_checked(src, out, identities, rows, lambda n: progress.update("decrypting", n, total))


def fetch_one(s3, bucket: str, location: DeliveryLocation, identities: Sequence, keys: Sequence[str], out_dir: Path,
              *, recipient: str, progress: Progress | None = None) -> Outcome:
    """Downloads, checks and decrypts one delivery into out_dir; a failure leaves nothing behind."""
    progress = progress or _Quiet()
    final = local_folder(out_dir, location)
    if final.exists():
        return Outcome(location, "skipped", folder=final)
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=out_dir))  # created 0700
    try:
        staged = work / "delivery"
        staged.mkdir(mode=0o700)
        verified = verify_remote(s3, bucket, location, keys, recipient=recipient, into=work, progress=progress)
        rows = _decrypt_into(work / DATA_FILE, staged / PLAINTEXT_FILE, identities, verified.rows, progress,
                             verified.size)
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
          on_outcome: Callable[[Outcome], None] | None = None) -> FetchReport:
    """Fetches every delivery of `recipient` not yet in out_dir; each one is checked and kept, or refused."""
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    report = FetchReport()
    locations, revoked = _scan(s3, bucket, recipient, agreement=agreement, since=since)
    for loc in revoked:
        report.outcomes.append(_revocation(s3, bucket, loc, keys, out_dir))
        if on_outcome:
            on_outcome(report.outcomes[-1])
    pending = [loc for loc in locations if not local_folder(out_dir, loc).exists()]
    for loc in locations:
        if loc not in pending:
            report.outcomes.append(Outcome(loc, "skipped", folder=local_folder(out_dir, loc)))
    for n, loc in enumerate(pending, start=1):
        if progress:
            progress.start(n, len(pending), f"{loc.agreement}/{loc.dataset}/{loc.date}_{loc.delivery_id}")
        outcome = fetch_one(s3, bucket, loc, identities, keys, out_dir, recipient=recipient, progress=progress)
        report.outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return report


def _revocation(s3, bucket: str, loc: DeliveryLocation, keys: Sequence[str], out_dir: Path) -> Outcome:
    """A revoked delivery, reported with the hub's signed reason; an unsigned tombstone is refused."""
    held = local_folder(out_dir, loc)
    for key in keys:
        try:
            tombstone = read_tombstone(s3, bucket, loc.prefix, key)
        except sshsig.SignatureError:
            continue
        except _BUCKET_ERRORS as exc:
            return Outcome(loc, "failed", check=DOWNLOAD, reason=f"tombstone: {exc.__class__.__name__}")
        copy = f"; a copy fetched earlier is at {held}" if held.exists() else ""
        return Outcome(loc, "revoked", folder=held if held.exists() else None,
                       reason=f"revoked {tombstone['revoked_at']}: {tombstone['reason']}{copy}")
    return Outcome(loc, "failed", check=SIGNATURE, reason="tombstone.json is not signed by the hub")


def print_outcome(outcome: Outcome, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if outcome.status == "revoked":
        print(f"REVOKED  {outcome.label}: {outcome.reason}", file=out, flush=True)
    elif outcome.status == "fetched":
        print(f"fetched  {outcome.folder}  ({outcome.rows} rows)", file=out, flush=True)
    elif outcome.status == "failed":
        print(f"REFUSED  {outcome.label}: {outcome.check}: {outcome.reason}", file=out, flush=True)


def print_summary(report: FetchReport, err: TextIO | None = None) -> None:
    print(f"{len(report.fetched)} fetched, {len(report.skipped)} already there, {len(report.failed)} refused, "
          f"{len(report.revoked)} revoked",
          file=err or sys.stderr)


# -- one delivery: verify, decrypt ----------------------------------------------------------------


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
    paths = {name: folder / name for name in (DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE)}
    missing = [n for n, p in paths.items() if not p.is_file()]
    if len(missing) == len(paths):
        raise RecipientUsageError(f"{folder}: not a delivery folder (it holds none of {DATA_FILE}, {MANIFEST_FILE}, "
                                  f"{SIGNATURE_FILE})")
    if missing:
        check = DATA_HASH if missing == [DATA_FILE] else SIGNATURE
        raise DeliveryRefused(check, f"{', '.join(missing)} missing in {folder}")
    for name, limit in ((MANIFEST_FILE, MAX_MANIFEST_BYTES), (SIGNATURE_FILE, MAX_SIGNATURE_BYTES)):
        if paths[name].stat().st_size > limit:
            raise DeliveryRefused(SIGNATURE, f"{name} is larger than {limit} bytes")
    verified = verify_manifest(paths[MANIFEST_FILE].read_bytes(), paths[SIGNATURE_FILE].read_bytes(), keys,
                               location=location, recipient=recipient)
    with open(paths[DATA_FILE], "rb") as fh:
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
            encrypted, total = work / DATA_FILE, verified.size
        else:
            verified = verify_local(source.folder, keys, location=source.location, recipient=recipient)
            encrypted, total = source.folder / DATA_FILE, verified.size
        staged = work / PLAINTEXT_FILE
        rows = _decrypt_into(encrypted, staged, identities, verified.rows if verified else None, progress, total)
        os.replace(staged, out)
        return (rows if verified else None), verified
    finally:
        progress.end()
        shutil.rmtree(work, ignore_errors=True)


def describe(verified: Verified) -> str:
    m = verified.manifest
    return (f"{m['delivery_id']}: {m['agreement']}, {m.get('provider', '?')} -> {m['recipient']}, {m['dataset']}, "
            f"{m['rows']} rows, signed by {verified.hub_fingerprint}, data SHA-256 matches")


__all__ = [
    "SIGNATURE", "MANIFEST_MISMATCH", "DATA_HASH", "DECRYPT", "ROW_COUNT", "DOWNLOAD",
    "DeliveryRefused", "RecipientError", "RecipientUsageError", "FetchReport", "Outcome", "Progress",
    "RecordCounter", "Source", "Verified", "check_data", "decrypt_checked", "decrypt_source", "fetch", "fetch_one",
    "hub_keys", "list_deliveries", "load_identities", "local_folder", "parse_hub_keys", "parse_location",
    "parse_source", "print_outcome", "print_summary", "resolve_source", "read_settings", "resolve_target", "verify_manifest", "verify_remote",
    "verify_source",
]
