"""Bringing extracts into intake from elsewhere: an agency's export location (its pull source) and its S3 uploads.

Every copy lands whole: it is written beside the intake file under a hidden `.part` name, fsynced, then linked
into place, so the intake trigger never sees half a file. A name already taken in intake is never overwritten.
The source is only read, never moved, changed or deleted. And no source object is copied twice: what was copied
is remembered in HOME/state/pulled.sqlite, with the store the intake trigger keeps for what it announced.

This module is imported when DAG files are parsed: it keeps its imports light (boto3 only inside functions).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from borderx.audit.trail import AuditTrail
from borderx.home import Home
from borderx.airflow.triggers import AnnouncedStore

log = logging.getLogger(__name__)

PULLED_STORE = "pulled.sqlite"
LOCKS = "pull-locks"
BLOCK = 1 << 20
COPY_ACTOR = {"hub": True, "via": "intake copy"}


@dataclass(frozen=True)
class SourceObject:
    """One version of a file at a source, and the intake folder it belongs in. Plain fields: it travels as an XCom.

    `version` tells versions of one name apart: the ETag of an S3 object, the mtime in ns of a file.
    """

    agency: str
    dataset: str
    name: str
    uri: str
    size: int
    version: str

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def identity(self) -> tuple[str, int, int]:
        # The trigger's store keys by (path, size, mtime_ns); the version goes in the path, so ETags fit too.
        return f"{self.uri}#{self.version}", self.size, 0


@dataclass(frozen=True)
class Copied:
    """What became of one source object: copied, seen (copied before), waiting (its name is taken in intake
    by another file, which the exchange has yet to take) or changed (it changed while being copied)."""

    status: str
    name: str
    uri: str
    path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def pulled_store(home: Home) -> AnnouncedStore:
    return AnnouncedStore(home.state / PULLED_STORE)


@contextmanager
def _folder_lock(home: Home, agency: str, dataset: str) -> Iterator[None]:
    """One copier per intake folder at a time, so the event-driven run and a sweep never copy one object twice."""
    locks = home.state / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{agency}--{dataset}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _same_content(a: Path, b: Path) -> bool:
    def digest(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            while block := fh.read(BLOCK):
                h.update(block)
        return h.hexdigest()

    try:
        return a.stat().st_size == b.stat().st_size and digest(a) == digest(b)
    except FileNotFoundError:
        return False


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_in(home: Home, folder: Path, obj: SourceObject, write: Callable[[BinaryIO], None],
            unchanged: Callable[[], bool] = lambda: True, store: AnnouncedStore | None = None) -> Copied:
    """Copies one source object into the intake `folder`, once.

    `write` puts the object's bytes into an open file; `unchanged` says, after the copy, whether the source is
    still the version named by `obj`. A copy of the wrong size or of a changed source is thrown away unrecorded.
    """
    store = store or pulled_store(home)
    with _folder_lock(home, obj.agency, obj.dataset):
        if store.contains(*obj.identity):
            return Copied("seen", obj.name, obj.uri)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / obj.name
        partial = folder / f".{obj.name}.{uuid.uuid4().hex[:12]}.part"
        try:
            with open(partial, "xb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            if partial.stat().st_size != obj.size or not unchanged():
                log.warning("%s changed while it was copied; left for the next round", obj.uri)
                return Copied("changed", obj.name, obj.uri)
            try:
                # A link, unlike a rename, never replaces a file an agency or an earlier copy put there.
                os.link(partial, target)
            except FileExistsError:
                if not _same_content(partial, target):
                    log.info("%s waits: %s in intake is another file, not yet taken by the exchange",
                             obj.uri, obj.name)
                    return Copied("waiting", obj.name, obj.uri)
            _fsync_dir(folder)
        finally:
            partial.unlink(missing_ok=True)
        store.add(*obj.identity)
        # Where an extract came from is part of what an auditor reviews; its content is hashed on receipt.
        AuditTrail(home.audit).append("copied-in", actor=COPY_ACTOR, provider=obj.agency, dataset=obj.dataset,
                                      source_name=obj.name, source_uri=obj.uri, source_version=obj.version,
                                      size=obj.size, file=str(target))
        log.info("copied %s into intake as %s", obj.uri, target)
        return Copied("copied", obj.name, obj.uri, str(target))


# -- pull sources ----------------------------------------------------------------------------------------------


def pull_schedules(home: str | os.PathLike) -> dict[str, str]:
    """{agency: schedule} of the agencies with a pull source, read cheaply for DAG parsing.

    Reads only the agencies' YAML; a broken file is skipped here and reported by `borderx check`.
    """
    import yaml

    from borderx.config.models import DEFAULT_PULL_SCHEDULE

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[str, str] = {}
    for path in sorted((Path(home) / "config" / "agencies").glob("*.y*ml")):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        pull = data.get("pull") if isinstance(data, dict) else None
        if isinstance(pull, dict) and isinstance(data.get("id"), str):
            found[data["id"]] = str(pull.get("schedule") or DEFAULT_PULL_SCHEDULE)
    return found


def due_agencies(schedules: dict[str, str], moment) -> list[str]:
    """The agencies whose schedule fires at `moment` (a run's logical time, to the minute, in UTC)."""
    from croniter import croniter

    from borderx.config.models import cron_of

    minute = moment.replace(second=0, microsecond=0)
    return sorted(a for a, schedule in schedules.items() if croniter.match(cron_of(schedule), minute))


def _source_folder(home: Home, folder: str) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else home.root / path


def waiting_in_folder(home: Home, agency: str, datasets: list[str], folder: str, settle_seconds: float,
                      store: AnnouncedStore) -> list[SourceObject]:
    """Complete regular files under FOLDER/DATASET/ not copied before. Links are never followed: a link in an
    export folder could point anywhere on the hub."""
    from borderx.intake import candidate_files, is_complete

    base = _source_folder(home, folder)
    found = []
    for dataset in sorted(datasets):
        for entry, st in candidate_files(base / dataset):
            if not is_complete(Path(entry.path), settle_seconds):
                continue
            obj = SourceObject(agency, dataset, entry.name, entry.path, st.st_size, str(st.st_mtime_ns))
            if not store.contains(*obj.identity):
                found.append(obj)
    return found


def copy_from_folder(home: Home, intake: Path, obj: SourceObject, store: AnnouncedStore | None = None) -> Copied:
    def write(out: BinaryIO) -> None:
        fd = os.open(obj.uri, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src:
            while block := src.read(BLOCK):
                out.write(block)

    def unchanged() -> bool:
        try:
            st = os.lstat(obj.uri)
        except FileNotFoundError:
            return False
        return (st.st_size, str(st.st_mtime_ns)) == (obj.size, obj.version)

    return copy_in(home, intake, obj, write, unchanged, store)


def split_s3_url(url: str) -> tuple[str, str]:
    """s3://BUCKET/PREFIX -> (BUCKET, "PREFIX/"), or (BUCKET, "") for a whole bucket."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, f"{prefix.strip('/')}/" if prefix.strip("/") else ""


def etag_of(value: str) -> str:
    """ETags come quoted from S3 listings and bare in event notifications; one form for both."""
    return value.strip('"')


def waiting_in_s3(s3, agency: str, datasets: list[str], bucket: str, prefix: str,
                  store: AnnouncedStore) -> list[SourceObject]:
    """Objects at PREFIX/DATASET/NAME not copied before; deeper keys, folder markers and leftovers are not extracts."""
    from borderx.intake import is_candidate_name

    found = []
    for dataset in sorted(datasets):
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{dataset}/",
                                                             Delimiter="/")
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"].rsplit("/", 1)[1]
                if not is_candidate_name(name):
                    continue
                obj = SourceObject(agency, dataset, name, f"s3://{bucket}/{item['Key']}", item["Size"],
                                   etag_of(item["ETag"]))
                if not store.contains(*obj.identity):
                    found.append(obj)
    return found


def copy_from_s3(s3, home: Home, intake: Path, obj: SourceObject, store: AnnouncedStore | None = None) -> Copied:
    """Copies exactly the version named by the ETag: an object replaced since is another version, with its own turn."""
    from botocore.exceptions import ClientError

    bucket, _, key = obj.uri.removeprefix("s3://").partition("/")

    def write(out: BinaryIO) -> None:
        body = s3.get_object(Bucket=bucket, Key=key, IfMatch=f'"{obj.version}"')["Body"]
        try:
            for block in body.iter_chunks(BLOCK):
                out.write(block)
        finally:
            body.close()

    try:
        return copy_in(home, intake, obj, write, store=store)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in ("PreconditionFailed", "412", "NoSuchKey", "404"):
            log.info("%s was replaced or removed before it was copied (%s)", obj.uri, code)
            return Copied("changed", obj.name, obj.uri)
        raise


@dataclass
class PullResult:
    agency: str
    source: str
    outcomes: list[Copied]

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return {"agency": self.agency, "source": self.source, "counts": counts,
                "copied": [o.name for o in self.outcomes if o.status == "copied"]}


def pull(config, home: Home, agency: str, s3=None) -> PullResult:
    """Copies what is new at one agency's pull source into its intake folders, for the datasets it provides.

    `s3` is a client at the hub's endpoint, needed for an s3:// source only.
    """
    from borderx.intake import provided_datasets

    source = config.agencies[agency].pull
    if source is None:
        raise LookupError(f"agency {agency} has no pull source")
    datasets = sorted(d for a, d in provided_datasets(config) if a == agency)
    store = pulled_store(home)
    configured = config.agencies[agency].intake.folder
    outcomes = []
    if source.folder is not None:
        shown = str(_source_folder(home, source.folder))
        for obj in waiting_in_folder(home, agency, datasets, source.folder, config.settings.intake.settle_seconds,
                                     store):
            outcomes.append(copy_from_folder(home, home.intake_folder(agency, obj.dataset, configured), obj, store))
    else:
        shown = source.s3
        bucket, prefix = split_s3_url(source.s3)
        for obj in waiting_in_s3(s3, agency, datasets, bucket, prefix, store):
            outcomes.append(copy_from_s3(s3, home, home.intake_folder(agency, obj.dataset, configured), obj, store))
    return PullResult(agency, shown, outcomes)
