"""Pull sources: an agency's export location (a folder, an S3 prefix at the hub's endpoint, or an SFTP server:
`sftp`), laid out as DATASET/FILE, from which the hub copies new extracts into intake on the agency's schedule.

The source is only read, never moved, changed or deleted. A folder source is walked without following a
link: a linked DATASET/ folder, or a link anywhere on the configured path, is refused, never read.

This module is imported when DAG files are parsed: it keeps its imports light (boto3 only inside functions).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from borderx.folders import LinkedFolder, opened
from borderx.home import Home
from borderx.intake.sources.copy import BLOCK, Copied, SourceObject, copy_in, pulled_store
from borderx.intake.watch import AnnouncedStore

log = logging.getLogger(__name__)


def pull_schedules(home: str | os.PathLike) -> dict[str, str]:
    """{agency: schedule} of the agencies with a pull source, from the agencies' files only (cheap enough for
    DAG parsing); a broken file raises ConfigError."""
    from borderx.config.loader import load_sections

    agencies = load_sections(Path(home), "agencies")["agencies"]
    return {a.id: a.pull.schedule for a in sorted(agencies.values(), key=lambda a: a.id) if a.pull is not None}


def due_agencies(schedules: dict[str, str], moment) -> list[str]:
    """The agencies whose schedule fires at `moment` (a run's logical time, to the minute, in UTC)."""
    from croniter import croniter

    from borderx.config.models import cron_of

    minute = moment.replace(second=0, microsecond=0)
    return sorted(a for a, schedule in schedules.items() if croniter.match(cron_of(schedule), minute))


def source_folder(home: Home, folder: str) -> Path:
    path = Path(folder)
    return path if path.is_absolute() else home.root / path


def waiting_in_folder(home: Home, agency: str, datasets: list[str], folder: str, settle_seconds: float,
                      store: AnnouncedStore) -> list[SourceObject]:
    """Complete regular files under FOLDER/DATASET/ not copied before. Links are never followed: a link in an
    export folder could point anywhere on the hub. A linked DATASET/ folder is refused and logged."""
    from borderx.intake.finding import candidate_files, settled
    from borderx.intake.refusals import refuse_linked_folder

    base = source_folder(home, folder)
    found = []
    for dataset in sorted(datasets):
        try:
            waiting = list(candidate_files(base / dataset, home.root, signatures=True))
        except LinkedFolder as exc:
            refuse_linked_folder(home, exc, agency, dataset)
            continue
        for name, st in waiting:
            if not settled(st, settle_seconds):
                continue
            obj = SourceObject(agency, dataset, name, str(base / dataset / name), st.st_size, str(st.st_mtime_ns))
            if not store.contains(*obj.identity):
                found.append(obj)
    return found


def copy_from_folder(home: Home, intake: Path, obj: SourceObject, store: AnnouncedStore | None = None) -> Copied:
    """Copies one file of a folder source, reached from the home (or `/`) without following a link."""
    source = Path(obj.uri)
    try:
        with opened(source.parent, home.root) as folder_fd:
            return copy_in(home, intake, obj, lambda out: _copy_file(folder_fd, source.name, out),
                           lambda: _same_version(folder_fd, source.name, obj), store)
    except (FileNotFoundError, NotADirectoryError, LinkedFolder) as exc:
        log.warning("%s is no longer there to copy (%s); left for the next round", obj.uri, exc)
        return Copied("changed", obj.name, obj.uri)


def _copy_file(folder_fd: int, name: str, out: BinaryIO) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return  # not a file any more: the size check then throws the copy away
        while block := src.read(BLOCK):
            out.write(block)


def _same_version(folder_fd: int, name: str, obj: SourceObject) -> bool:
    try:
        st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, str(st.st_mtime_ns)) == (obj.size, obj.version)


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
    from borderx.intake.finding import is_candidate_name

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

    `s3` is a client at the hub's endpoint, needed for an s3:// source only. An SFTP server that is not the one
    pinned, or that refuses the hub's key, raises SourceRefused; one that does not answer, SourceUnreachable.
    """
    from borderx.intake.finding import provided_datasets

    source = config.agencies[agency].pull
    if source is None:
        raise LookupError(f"agency {agency} has no pull source")
    datasets = sorted(d for a, d in provided_datasets(config) if a == agency)
    store = pulled_store(home)
    configured = config.agencies[agency].intake.folder
    outcomes = []
    if source.sftp is not None:
        from borderx.intake.sources.sftp import pull_from_server

        shown, outcomes = pull_from_server(config, home, agency, datasets, store)
    elif source.folder is not None:
        shown = str(source_folder(home, source.folder))
        for obj in waiting_in_folder(home, agency, datasets, source.folder, config.settings.intake.settle_seconds,
                                     store):
            outcomes.append(copy_from_folder(home, home.intake_folder(agency, obj.dataset, configured), obj, store))
    else:
        shown = source.s3
        bucket, prefix = split_s3_url(source.s3)
        for obj in waiting_in_s3(s3, agency, datasets, bucket, prefix, store):
            outcomes.append(copy_from_s3(s3, home, home.intake_folder(agency, obj.dataset, configured), obj, store))
    return PullResult(agency, shown, outcomes)
