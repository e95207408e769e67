"""Receipts: what the hub tells a provider about each file it took in, signed so the provider can prove it.

For every file taken in, accepted or quarantined, the hub writes beside the agency's dataset folders

    receipts/DATASET/NAME.receipt.json       the receipt (below), the bytes that are signed
    receipts/DATASET/NAME.receipt.json.sig   SSH signature by the hub key, namespace borderx-receipt
    receipts/DATASET/NAME.receipt.txt        the same in a few lines for a person (not signed)

and, for an agency that uploads to an S3 prefix, the same three objects under PREFIX/receipts/DATASET/.
`ssh-keygen -Y verify -f allowed_signers -I hub -n borderx-receipt -s NAME.receipt.json.sig < NAME.receipt.json`
proves the handover. A receipt holds names, hashes, outcomes, value-free reasons and delivery ids: never an
extract value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from borderx.crypto import sshsig
from borderx.errors import BorderxError
from borderx.folders import NAME_MAX, create_private, descend, opened
from borderx.intake.finding import RECEIPTS_DIR
from borderx.text import printable

log = logging.getLogger(__name__)

NAMESPACE = "borderx-receipt"
RECEIPT_VERSION = "1"
JSON, SIG, TXT = ".receipt.json", ".receipt.json.sig", ".receipt.txt"
# A receipt of the same name is read back only to see whether it is the same one; a larger file is not ours.
MAX_EXISTING = 1 << 20
# The agency folder is the agency's: the operator gives its officers access to it (by its group, or by owning
# it). Receipts hold no extract data, so they are opened to that group, read-only, and to no one else; what
# keeps other agencies out is the agency folder itself, which they cannot reach.
FOLDER_MODE = 0o750
FILE_MODE = 0o640


@dataclass(frozen=True)
class Receipt:
    """One file's receipt. `name` is the file's name as it was dropped; `sha256` is None for an entry that was
    never read (a link). `signature` is what the check of the provider's signature found."""

    agency: str
    dataset: str
    name: str
    sha256: str | None
    size: int
    received_at: str
    outcome: str  # accepted, quarantined
    reasons: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    signature: dict[str, Any] | None = None

    def body(self, hub_fingerprint: str, issued_at: str) -> dict[str, Any]:
        shown = self.signature or {"status": "not-checked"}
        return {
            "receipt_version": RECEIPT_VERSION,
            "agency": self.agency,
            "dataset": self.dataset,
            "file": {"name": _text(self.name), "sha256": self.sha256, "size": self.size},
            "received_at": self.received_at,
            "issued_at": issued_at,
            "outcome": self.outcome,
            "reasons": self.reasons,
            "deliveries": self.deliveries,
            "provider_signature": {k: shown.get(k) for k in ("status", "key", "message") if k in shown},
            "hub_signing_key": hub_fingerprint,
        }


def encode(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def stem_for(name: str, sha256: str | None) -> str:
    """The receipt's file name without its suffix: the file's own name where the longest suffix still fits a
    file name and the name is text; otherwise a fixed-length name from the content hash (the receipt then
    names the file inside)."""
    raw = os.fsencode(name)
    if len(raw) + len(SIG) <= NAME_MAX and _is_text(name):
        return name
    return "sha256-" + (sha256 or hashlib.sha256(raw).hexdigest())[:32]


@dataclass(frozen=True)
class Issued:
    """A receipt as the hub issued it: where it was written locally (None if it could not be), the SHA-256 of its
    signed bytes, and its text for a person (what the provider's notice says)."""

    where: str | None
    sha256: str
    text: str


def issue(rt, receipt: Receipt) -> Issued:
    """Writes, signs and (for an S3 intake) uploads the receipt.

    A receipt that cannot be written is logged and left out: the extract's own outcome stands either way, and
    the audit trail records it.
    """
    issued_at = rt.clock().isoformat().replace("+00:00", "Z")
    shown = receipt.body(rt.hub_fingerprint, issued_at)
    body = encode(shown)
    sha256 = hashlib.sha256(body).hexdigest()
    signature = sshsig.sign(rt.signing_key, body, NAMESPACE).encode()
    where = _agency_folder(rt, receipt.agency, receipt.dataset)
    try:
        with opened(where, rt.home.root, create=True) as agency_fd:
            gid = os.fstat(agency_fd).st_gid
            folder_fd = _receipts_folder(agency_fd, receipt.dataset, where, gid)
            try:
                stem = _free_stem(folder_fd, receipt)
                text = render_text(shown, stem)
                files = {stem + JSON: body, stem + TXT: text.encode("utf-8"), stem + SIG: signature}
                for name, data in files.items():
                    _put(folder_fd, name, data, gid)
            finally:
                os.close(folder_fd)
    except (OSError, BorderxError) as exc:
        log.warning("receipt of %s in %s/%s/%s: %s; not written", printable(receipt.name), where, RECEIPTS_DIR,
                    receipt.dataset, exc)
        return Issued(None, sha256, render_text(shown, stem_for(receipt.name, receipt.sha256)))
    _upload(rt, receipt, files)
    return Issued(str(where / RECEIPTS_DIR / receipt.dataset / (stem + JSON)), sha256, text)


def _agency_folder(rt, agency: str, dataset: str) -> Path:
    return rt.home.intake_folder(agency, dataset, rt.config.agencies[agency].intake.folder).parent


def _receipts_folder(agency_fd: int, dataset: str, shown: Path, gid: int) -> int:
    """receipts/DATASET under the agency folder, made FOLDER_MODE with the agency folder's group (`gid`) where
    missing. A link on the way raises LinkedFolder: nothing is written through it."""
    fd = agency_fd
    here = shown
    for name in (RECEIPTS_DIR, dataset):
        made = True
        try:
            os.mkdir(name, FOLDER_MODE, dir_fd=fd)
        except FileExistsError:
            made = False
        below = descend(fd, (name,), shown=here)
        if fd != agency_fd:
            os.close(fd)
        if made:
            _share(below, gid, FOLDER_MODE)
        fd, here = below, here / name
    return fd


def _share(fd: int, gid: int, mode: int) -> None:
    os.fchmod(fd, mode)  # exactly, whatever the umask
    try:
        os.fchown(fd, -1, gid)
    except PermissionError:
        # Not a member of the agency folder's group: the file keeps the hub's group, still closed to others.
        pass


def _put(folder_fd: int, name: str, data: bytes, gid: int) -> None:
    """Puts `data` at `name` in one step; a temporary name of fixed length leaves room however long `name` is."""
    tmp = f".receipt.{uuid.uuid4().hex}.tmp"
    fd = create_private(tmp, dir_fd=folder_fd)
    try:
        # Written straight to the descriptor: a buffered file object around it costs more system calls than
        # the write itself for a receipt's few kilobytes.
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            _share(fd, gid, FILE_MODE)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=folder_fd)
        except FileNotFoundError:
            pass
        raise


def _free_stem(folder_fd: int, receipt: Receipt) -> str:
    """The stem for this receipt: its own, unless a receipt of another take-in holds it (a corrected file sent
    under the same name, a duplicate); then the stem tagged with the hash. A receipt of the same take-in (a
    retried task) is written over, so each take-in has one."""
    base = stem_for(receipt.name, receipt.sha256)
    tag = (receipt.sha256 or hashlib.sha256(os.fsencode(receipt.name)).hexdigest())[:12]
    n = 0
    while True:
        stem = base if n == 0 else f"{base}.{tag}" if n == 1 else f"{base}.{tag}-{n}"
        if len(os.fsencode(stem)) + len(SIG) > NAME_MAX:
            base, n = "sha256-" + tag, 0
            continue
        held = _existing(folder_fd, stem + JSON)
        if held is None or _same_event(held, receipt):
            return stem
        n += 1


def _same_event(held: dict, receipt: Receipt) -> bool:
    file = held.get("file") if isinstance(held.get("file"), dict) else {}
    return (file.get("sha256"), held.get("outcome"), held.get("received_at")) == (
        receipt.sha256, receipt.outcome, receipt.received_at)


def _existing(folder_fd: int, name: str) -> dict | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder_fd)
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_EXISTING + 1)
    try:
        held = json.loads(data) if len(data) <= MAX_EXISTING else {}
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _upload(rt, receipt: Receipt, files: dict[str, bytes]) -> None:
    """The same objects under the agency's S3 intake prefix, signature last, so a receipt there is complete once
    its signature is."""
    prefix = rt.config.agencies[receipt.agency].intake.s3_prefix
    if not prefix or not files:
        return
    base = f"{prefix.strip('/')}/{RECEIPTS_DIR}/{receipt.dataset}/"
    try:
        for name, data in files.items():
            rt.s3.put_object(Bucket=rt.target.bucket, Key=base + name, Body=data,
                             ContentType="application/json" if name.endswith(JSON) else "text/plain")
    except Exception as exc:  # the bucket's client raises its own error types; the receipt is not worth a failure
        log.warning("receipt of %s to s3://%s/%s: %s: %s; not uploaded", printable(receipt.name), rt.target.bucket,
                    base, type(exc).__name__, exc)


def render_text(body: dict[str, Any], stem: str) -> str:
    f = body["file"]
    lines = [
        f"RECEIPT: {printable(f['name'])} {body['outcome'].upper()}",
        f"agency {body['agency']}, dataset {body['dataset']}",
        f"sha256 {f['sha256'] or '- (not read)'}, {f['size']} bytes",
        f"received {body['received_at']}, receipt issued {body['issued_at']}",
        f"provider signature: {_signature_line(body['provider_signature'])}",
    ]
    if body["deliveries"]:
        lines += ["", "Delivered:"]
        lines += [f"  - agreement {d['agreement']} to {d['recipient']}: delivery {d['delivery_id']} ({d['status']})"
                  for d in body["deliveries"]]
    if body["reasons"]:
        lines += ["", f"{len(body['reasons'])} problem(s), nothing was delivered:"]
        lines += [f"  {i}. [{r['rule']}] {printable(r['message'])}" for i, r in enumerate(body["reasons"], 1)]
    lines += [
        "",
        f"This text is for reading. The signed receipt is {printable(stem)}{JSON}; check it with the hub's key:",
        f"  ssh-keygen -Y verify -f allowed_signers -I hub -n {NAMESPACE} -s '{printable(stem)}{SIG}' "
        f"< '{printable(stem)}{JSON}'",
        "",
    ]
    return "\n".join(lines)


def _signature_line(sig: dict[str, Any]) -> str:
    status = sig.get("status")
    if status == "valid":
        return f"checked, valid (key {sig.get('key')})"
    if status == "unsigned":
        return "none (not required)"
    if status == "not-checked":
        return "not checked"
    return f"{status}: {sig.get('message', '')}"


def _is_text(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
