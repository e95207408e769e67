"""Finding complete extracts in the intake folders: which names count, when a file is whole, and where it lies.

Every intake folder is opened from the home down, one level at a time, so an agency or dataset folder that
is a link is refused (see `borderx.folders` and `refusals`) and nothing outside the configured folders is
ever listed.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from borderx.config.models import DeploymentConfig
from borderx.errors import IntakeError
from borderx.folders import LinkedFolder, entries, opened
from borderx.home import Home

# Names that file transfer tools use while a file is still arriving.
PARTIAL_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart", "~", ".swp")
REPORT_SUFFIXES = (".report.json", ".report.txt")
# A provider's signature of the file of the same name without it (see `signatures`): copied in and taken with
# that file, never an extract itself.
SIGNATURE_SUFFIX = ".sig"
# Under an agency's intake folder, beside its dataset folders: what the hub sends back, never an extract.
RECEIPTS_DIR = "receipts"


@dataclass(frozen=True)
class IntakeFile:
    """A complete file waiting in an intake folder. Plain fields only, so it travels as an Airflow XCom."""

    agency: str
    dataset: str
    path: str
    name: str
    size: int

    def to_dict(self) -> dict:
        return asdict(self)


def is_candidate_name(name: str) -> bool:
    # An empty name is a folder marker (an S3 key ending in "/"), not a file.
    return bool(name) and not (name.startswith(".") or name.endswith(PARTIAL_SUFFIXES)
                               or name.endswith(REPORT_SUFFIXES))


def is_extract_name(name: str) -> bool:
    """A name that may be an extract: a candidate that is not a provider's signature."""
    return is_candidate_name(name) and not name.endswith(SIGNATURE_SUFFIX)


def provided_datasets(config: DeploymentConfig) -> set[tuple[str, str]]:
    return {(p, d) for a in config.agreements.values() for p in a.providers for d in a.datasets
            if p in config.agencies and d != RECEIPTS_DIR}


def intake_folders(config: DeploymentConfig, home: Home, agency: str | None = None) -> list[tuple[str, str, Path]]:
    """(agency, dataset, folder) of every intake folder an agreement covers (of one agency, if given)."""
    return [(a, d, home.intake_folder(a, d, config.agencies[a].intake.folder))
            for a, d in sorted(provided_datasets(config)) if agency is None or a == agency]


def listed(folder: Path, root: Path) -> list[tuple[str, os.stat_result]]:
    """The entries of `folder`, reached from `root` without following a link; none if it is missing.

    Raises LinkedFolder if a folder on the way is a link.
    """
    try:
        with opened(folder, root) as fd:
            return entries(fd)
    except (FileNotFoundError, NotADirectoryError):
        return []


def candidate_files(folder: Path, root: Path, *, signatures: bool = False) -> Iterator[tuple[str, os.stat_result]]:
    """The regular files directly in `folder` that may be extracts (and, with `signatures`, their providers'
    signatures), by name, with their own stat. Links are never followed and count as no file here; a missing
    folder holds none; a linked folder raises LinkedFolder."""
    wanted = is_candidate_name if signatures else is_extract_name
    for name, st in listed(folder, root):
        if wanted(name) and stat.S_ISREG(st.st_mode):
            yield name, st


def settled(st: os.stat_result, settle_seconds: float, *, now: float | None = None) -> bool:
    """An entry that nobody has changed for the settle time counts as complete; a folder never does.

    Links and other entries that are not plain files count too, judged by the entry itself and never by what
    it points to: they are taken only to be quarantined, unread.
    """
    if stat.S_ISDIR(st.st_mode):
        return False
    return (now if now is not None else time.time()) - st.st_mtime >= settle_seconds


def is_complete(path: Path, settle_seconds: float, *, now: float | None = None) -> bool:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    return settled(st, settle_seconds, now=now)


def scan(config: DeploymentConfig, home: Home, settle_seconds: float | None = None) -> list[IntakeFile]:
    """Every complete file in the intake folders of every agency that provides a dataset under some agreement.

    Entries that are not folders are found whatever they are (links, pipes), so that they can be quarantined.
    A linked agency or dataset folder is refused: logged and recorded once (`refusals`), never walked.
    """
    settle = _settle(config, settle_seconds)
    return [IntakeFile(agency_id, dataset_id, str(folder / name), name, st.st_size)
            for agency_id, dataset_id, folder, name, st, stats in _extract_entries(config, home)
            if settled(st, settle) and _signature_settled(stats, name, settle)]


def settling(config: DeploymentConfig, home: Home, settle_seconds: float | None = None, *,
             now: float | None = None) -> list[float]:
    """Seconds until each extract that `scan` leaves out for now counts as complete: a file (or its signature)
    changed within the settle time, still being written, or only just written."""
    settle = _settle(config, settle_seconds)
    now = time.time() if now is None else now
    waits = []
    for *_, name, st, stats in _extract_entries(config, home):
        sig = stats.get(name + SIGNATURE_SUFFIX)
        newest = max(st.st_mtime, sig.st_mtime if sig is not None else st.st_mtime)
        if not stat.S_ISDIR(st.st_mode) and now - newest < settle:
            waits.append(settle - (now - newest))
    return waits


def _settle(config: DeploymentConfig, settle_seconds: float | None) -> float:
    return config.settings.intake.settle_seconds if settle_seconds is None else settle_seconds


def _extract_entries(config: DeploymentConfig, home: Home):
    """(agency, dataset, folder, name, stat, the folder's stats by name) of every entry named as an extract."""
    from borderx.intake.refusals import refuse_linked_folder

    for agency_id, dataset_id, folder in intake_folders(config, home):
        try:
            waiting = listed(folder, home.root)
        except LinkedFolder as exc:
            refuse_linked_folder(home, exc, agency_id, dataset_id)
            continue
        stats = dict(waiting)
        for name, st in waiting:
            if is_extract_name(name):
                yield agency_id, dataset_id, folder, name, st, stats


def _signature_settled(stats: dict[str, os.stat_result], name: str, settle: float) -> bool:
    """False while the file's signature is still arriving: the two are taken together, once both are whole."""
    sig = stats.get(name + SIGNATURE_SUFFIX)
    return sig is None or settled(sig, settle)


def intake_file_for(config: DeploymentConfig, home: Home, given: str | os.PathLike) -> IntakeFile:
    """The intake file at `given` (absolute, or relative to the home), placed by the folder it sits in."""
    path = Path(given)
    path = (path if path.is_absolute() else home.root / path).absolute()
    for agency_id, dataset_id, folder in intake_folders(config, home):
        if path.parent == folder.absolute():
            entry = dict(listed(folder, home.root)).get(path.name)
            if entry is None:
                raise IntakeError(f"{path}: no such file")
            if stat.S_ISDIR(entry.st_mode):
                raise IntakeError(f"{path}: a folder, not a file")
            # A link or special file is placed too: receive quarantines it without reading it.
            return IntakeFile(agency_id, dataset_id, str(path), path.name, entry.st_size)
    raise IntakeError(f"{path}: not in the intake folder of any agency and dataset that an agreement covers")


def intake_file_from_event(config: DeploymentConfig, home: Home, payload: dict) -> IntakeFile | None:
    """The intake file an IntakeFolderTrigger event names, if it still lies where an agreement covers it."""
    try:
        agency, dataset, path = payload["agency"], payload["dataset"], Path(payload["path"])
    except (KeyError, TypeError):
        return None
    if (agency, dataset) not in provided_datasets(config):
        return None
    folder = home.intake_folder(agency, dataset, config.agencies[agency].intake.folder)
    if path.parent.absolute() != folder.absolute() or not is_extract_name(path.name):
        return None
    return IntakeFile(agency, dataset, str(path), path.name, int(payload.get("size") or 0))
