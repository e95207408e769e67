"""Rejected extracts: kept byte for byte, each beside a report that says why and what to do."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import json
import logging
import os
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borderx.errors import PageSourceError, QuarantineError
from borderx.folders import FILE_MODE, NAME_MAX, LinkedFolder, create_private, opened, private_folders, write_private
from borderx.home import Home
from borderx.intake.finding import SIGNATURE_SUFFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reason:
    rule: str
    message: str
    column: str | None = None
    rows: list[int] = field(default_factory=list)
    count: int | None = None
    gate: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "column": self.column, "rows": self.rows,
                "count": self.count, "gate": self.gate}


HINTS = {
    "duplicate": "This content was already received; nothing more to do unless you meant to send another file.",
    "unreadable": "Save the extract as UTF-8 CSV with one header row and the same number of fields on every line.",
    "small-cells": "Aggregate further (wider periods or fewer breakdowns) until every non-zero count reaches the "
                   "agreement's minimum cell size, then send the file again.",
    "no-agreement-in-force": "No active agreement allows this exchange today; ask the hub operator.",
    "gate": "The file carries what looks like a direct identifier (a name, document number, date of birth, "
            "contact detail or tax number). Remove it at source; the hub never forwards such data.",
    "symlink": "Links are never followed. Copy the file itself into the intake folder; this entry is the link "
               "as it was, and what it pointed to was not read.",
    "hard-link": "The file had other names besides the one in the intake folder, so the hub did not read it. "
                 "Copy the file into the intake folder (a copy, not a link); find its other names with "
                 "`find / -xdev -inum INODE` using the inode in this report.",
    "not-a-file": "Only plain files are taken in. Write the extract to a file in the intake folder.",
    "changed-while-read": "The file was still being written or was replaced while the hub read it. Write it "
                          "under a temporary name (such as NAME.part) and rename it when complete.",
    "signature-invalid": "The signature beside the file (NAME.sig) is not a valid signature of this file by one of "
                         "your agency's current signing keys. Sign the file again with a current key "
                         "(`borderx sign FILE --key KEY`) and drop both again.",
    "signature-missing": "Signed extracts are required: drop NAME.sig beside the file (`borderx sign FILE --key "
                         "KEY`, or `ssh-keygen -Y sign -n borderx-extract -f KEY FILE`).",
    "other-agency": "The file's location codes belong to another agency. Drop it into that agency's intake "
                    "folder, or, if it is yours, correct the codes.",
}
EXPECTATION_HINT = "Correct the values in the rows listed (the row numbers count data rows from 1)."

ADVICE = (
    "Nothing from this file was published. Correct the file and drop the corrected version into the "
    "same intake folder; this copy stays here for the record."
)


# What a kept file's name must leave room for: a tag and a counter for a second file of the same name, and the
# longest companion written beside it (a report's temporary `.NAME.report.json.XXXXXXXX.tmp`).
_ROOM = len(".123456789abc-99") + len("..report.json.12345678.tmp")


def keepable_name(name: str) -> str:
    """`name` where it leaves room for its companions; otherwise a fixed-length name from its bytes (the report
    and the audit trail keep the original), so a name at the file system's limit cannot stop a file being kept."""
    raw = os.fsencode(name)
    if len(raw) + _ROOM <= NAME_MAX:
        return name
    suffix = Path(name).suffix
    keep = suffix if len(os.fsencode(suffix)) <= 8 and suffix.isprintable() else ""
    return f"long-name-{hashlib.sha256(raw).hexdigest()[:32]}{keep}"


def place_beside(folder: Path, name: str, tag: str) -> Path:
    """A free path for `name` in `folder`; a second file of the same name gets the tag in its name."""
    private_folders(folder)
    name = keepable_name(name)
    # lexists: a link already in quarantine occupies its name even when it leads nowhere.
    target = folder / name
    if not os.path.lexists(target):
        return target
    stem, dot, ext = name.partition(".")
    target = folder / f"{stem}.{tag}{dot}{ext}"
    n = 1
    while os.path.lexists(target):
        n += 1
        target = folder / f"{stem}.{tag}-{n}{dot}{ext}"
    return target


def quarantine(
    home: Home,
    *,
    source: Path,
    agency: str,
    dataset: str,
    sha256: str | None,
    reasons: list[Reason],
    validation: dict[str, Any] | None = None,
    entry: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Path:
    """Moves `source` into quarantine unchanged and writes its JSON and text reports; returns the new path.

    `source` may be a link: a symbolic link is moved as the link itself, a hard link keeps its inode, and
    neither's content is ever read. `entry` describes such an entry for the report.

    The reports are written before the file moves and put in place after it, so a failure (a full disk)
    leaves the file where it was and nothing half-written in quarantine; it raises QuarantineError.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    folder = home.quarantine / agency / dataset
    pending: list[tuple[Path, Path]] = []
    try:
        target = place_beside(folder, source.name, (sha256 or now.strftime("%Y%m%dT%H%M%S"))[:12])
        if entry and entry.get("kind") != "symbolic link" and source.lstat().st_dev != folder.stat().st_dev:
            entry = {**entry, "in_quarantine": False,
                     "note": f"the quarantine is on another file system and a {entry.get('kind')} cannot move there "
                             "unread: its name in the intake folder was removed, and a hard link's content remains "
                             "under its other names only"}
        validation = _move_data_docs(validation, target)
        report = _report(target, source.name, agency, dataset, sha256, reasons, validation, entry, now)
        texts = {".report.json": json.dumps(report, indent=2) + "\n", ".report.txt": render_text(report)}
        for suffix, text in texts.items():
            final = target.with_name(target.name + suffix)
            pending.append((_write_aside(final, text), final))
        moved = _move_entry(source, target)
        _move_signature(source, target)
    except (OSError, LinkedFolder) as exc:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, LinkedFolder):
            raise QuarantineError(f"{exc}; {source.name} was not moved") from None
        raise QuarantineError(
            f"quarantine folder {folder}: {exc.strerror or type(exc).__name__}; {source.name} was not moved and "
            f"waits to be taken again", exc.errno,
        ) from None
    for tmp, final in pending:
        os.replace(tmp, final)
    if not moved:
        log.warning("%s: kept by its other names only; its report is in %s", source.name, folder)
    return target


def _report(target: Path, original: str, agency: str, dataset: str, sha256: str | None, reasons: list[Reason],
            validation: dict[str, Any] | None, entry: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    docs_page = Path(validation["data_docs"]).name if validation and validation.get("data_docs") else None
    report = {
        "file": target.name,
        "data_docs": docs_page,
        "original_name": original,
        "agency": agency,
        "dataset": dataset,
        "sha256": sha256,
        "quarantined_at": now.isoformat().replace("+00:00", "Z"),
        "reasons": [r.to_dict() for r in reasons],
        "validation": validation,
        "what_to_do": ADVICE,
    }
    if entry:
        report["entry"] = entry
    return report


def _move_data_docs(validation: dict[str, Any] | None, target: Path) -> dict[str, Any] | None:
    docs = Path(validation["data_docs"]) if validation and validation.get("data_docs") else None
    if docs is None or not _rendered(docs):
        return validation
    docs_page = target.with_name(target.name + ".validation.html")
    # The page holds no extract value, so a copy across file systems is harmless.
    shutil.move(docs, docs_page)
    os.chmod(docs_page, FILE_MODE)  # it names the file's columns and failing values: as private as the file
    with contextlib.suppress(OSError):
        docs.parent.rmdir()
    return {**validation, "data_docs": str(docs_page)}


def _rendered(page: Path) -> bool:
    """Whether the page is there, rendered now from its source if a file that passed validation is quarantined
    after all (its page was left to render on first need): the report sends the officer to it."""
    from borderx.validation.datadocs import ensure_page

    try:
        return ensure_page(page)
    except (PageSourceError, OSError) as exc:
        log.warning("%s: Data Docs page not rendered (%s)", page.name, exc if isinstance(exc, PageSourceError)
                    else type(exc).__name__)
        return False


def _move_signature(source: Path, target: Path) -> None:
    """The provider's signature, if it came with the file, is kept beside it as evidence."""
    sig = source.with_name(source.name + SIGNATURE_SUFFIX)
    if os.path.lexists(sig):
        _move_entry(sig, target.with_name(target.name + SIGNATURE_SUFFIX))


def _write_aside(final: Path, text: str) -> Path:
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write_private(tmp, text)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _move_entry(source: Path, target: Path) -> bool:
    """Moves `source` to `target` without reading through a link; False if a hard link could only be let go.

    Both folders are opened without following a link on the way (from the file system's root: the home is
    known by its real path), so a folder swapped for a link raises LinkedFolder and nothing is moved. A rename
    keeps the inode (the bytes cannot change on the way, and it is atomic on one file system). Across file
    systems a symbolic link is made again with the same target, and a plain file is copied to a private
    temporary name first, so a failed copy leaves no partial plaintext. A hard link cannot cross without
    reading it: its name in intake is removed, and its content lives on under its other names.
    """
    with opened(source.parent, Path("/")) as src, opened(target.parent, Path("/")) as dst:
        try:
            os.replace(source.name, target.name, src_dir_fd=src, dst_dir_fd=dst)
            return True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        st = os.stat(source.name, dir_fd=src, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source.name, dir_fd=src), target.name, dir_fd=dst)
            os.unlink(source.name, dir_fd=src)
            return True
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            os.unlink(source.name, dir_fd=src)
            return False
        _copy_private(src, source.name, dst, target.name)
        os.unlink(source.name, dir_fd=src)
        return True


def _copy_private(src: int, name: str, dst: int, target: str) -> None:
    tmp = f".{target}.{uuid.uuid4().hex[:8]}.part"
    fd = create_private(tmp, dir_fd=dst)
    try:
        with os.fdopen(fd, "wb") as out, os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src),
                                                   "rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
            # Kept as it came, mode and times too, as a rename within one file system would keep them.
            st = os.fstat(source.fileno())
            os.utime(out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))
            os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
        os.replace(tmp, target, src_dir_fd=dst, dst_dir_fd=dst)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dst)
        except FileNotFoundError:
            pass
        raise


def render_text(report: dict[str, Any]) -> str:
    lines = [
        f"QUARANTINED: {report['original_name']}",
        f"agency {report['agency']}, dataset {report['dataset']}, at {report['quarantined_at']}",
        f"sha256 {report['sha256'] or '-'}",
        "",
        f"{len(report['reasons'])} problem(s):",
    ]
    for i, r in enumerate(report["reasons"], start=1):
        where = []
        if r["column"]:
            where.append(f"column {r['column']}")
        if r["rows"]:
            shown = ", ".join(str(n) for n in r["rows"])
            more = "" if not r["count"] or r["count"] <= len(r["rows"]) else f" (and {r['count'] - len(r['rows'])} more)"
            where.append(f"rows {shown}{more}")
        elif r["count"]:
            where.append(f"{r['count']} rows")
        lines.append(f"  {i}. [{r['rule']}] {r['message']}" + (f" ({'; '.join(where)})" if where else ""))
    entry = report.get("entry")
    if entry:
        lines += ["", f"What was in the intake folder: a {entry['kind']}, moved here as it was and never read."]
        if "target" in entry:
            lines.append(f"  it pointed to: {entry['target']} (as written in the link; the hub did not look there)")
        if "inode" in entry:
            lines.append(f"  inode {entry['inode']} on device {entry['device']}, {entry['links']} names, "
                         f"{entry['size']} bytes, modified {entry['modified']}")
            lines.append("  Its content is shared with its other names: a change made through them shows here too.")
        if "note" in entry:
            lines.append(f"  Not kept here: {entry['note']}.")
    if report.get("data_docs"):
        lines += ["", f"The Great Expectations validation of this file: {report['data_docs']} (open it in a browser)."]
    lines += ["", "What to do:"]
    for hint in dict.fromkeys(_hint(r) for r in report["reasons"]):
        lines.append(f"  - {hint}")
    lines += ["", report["what_to_do"], ""]
    return "\n".join(lines)


def _hint(reason: dict[str, Any]) -> str:
    if reason.get("gate"):
        return HINTS["gate"]
    return HINTS.get(reason["rule"], EXPECTATION_HINT)
