"""A provider's signature of its extract: `NAME.sig` beside `NAME`, made with `ssh-keygen -Y sign -n
borderx-extract` (or `borderx sign`), checked against the agency's signing keys valid on the day.

The signature file comes from whoever can write to the agency's folder: it is opened without following a link,
read up to a size cap and parsed only then, and nothing of it but the key it names reaches a message.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from borderx.config.models import Agency, DeploymentConfig
from borderx.crypto import sshsig
from borderx.errors import SignatureError

NAMESPACE = "borderx-extract"
SUFFIX = ".sig"
# An SSH signature of an Ed25519 key is under 400 bytes; anything near this cap is not one.
MAX_BYTES = 16 * 1024
RULES = ("signature-invalid", "signature-missing")


def signature_path(extract: Path) -> Path:
    return extract.with_name(extract.name + SUFFIX)


def is_signature_name(name: str) -> bool:
    return name.endswith(SUFFIX)


@dataclass(frozen=True)
class Verdict:
    """What the check of one extract's signature found: `valid`, `invalid`, `missing` (required and absent) or
    `unsigned` (absent, not required). `key` is the fingerprint the signature names, when it names one."""

    status: str
    key: str | None = None
    message: str = ""
    signature: str | None = None

    @property
    def rule(self) -> str | None:
        return {"invalid": "signature-invalid", "missing": "signature-missing"}.get(self.status)

    def to_dict(self) -> dict:
        return asdict(self)

    def provenance(self) -> dict | None:
        """What a manifest says of the provider's signature: only a valid one is recorded."""
        if self.status != "valid":
            return None
        return {"namespace": NAMESPACE, "key": self.key, "signature": self.signature}


def required(config: DeploymentConfig, agency: str, dataset: str) -> bool:
    """Whether the agency, or any agreement covering its dataset, asks for signed extracts."""
    if config.agencies[agency].require_signed_extracts:
        return True
    return any(a.require_signed_extracts for a in config.agreements.values()
               if agency in a.providers and dataset in a.datasets)


def read_signature(path: Path) -> str | None:
    """The text of the signature at `path`, or None when there is none. Raises SignatureError for an entry that
    is not a plain file of its own, is larger than MAX_BYTES, or is not ASCII."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SignatureError(f"{path.name}: a symbolic link, not a signature file") from None
        if exc.errno == errno.ENAMETOOLONG:
            return None  # no room for a signature beside a name this long: there is none
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            raise SignatureError(f"{path.name}: not a plain file of its own")
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise SignatureError(f"{path.name}: larger than {MAX_BYTES} bytes, not an SSH signature")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError(f"{path.name}: not an SSH signature (non-ASCII bytes)") from None


def check(config: DeploymentConfig, agency: str, dataset: str, extract: Path, day: dt.date) -> Verdict:
    """The verdict on `extract`'s companion signature, against the agency's keys usable on `day`."""
    try:
        text = read_signature(signature_path(extract))
    except SignatureError as exc:
        return Verdict("invalid", None, str(exc))
    if text is None:
        if required(config, agency, dataset):
            return Verdict("missing", None, f"{extract.name} came without {extract.name}{SUFFIX}, and "
                           f"signed extracts are required of {agency} for {dataset}")
        return Verdict("unsigned")
    return _verify(config.agencies[agency], extract, text, day)


def _verify(agency: Agency, extract: Path, text: str, day: dt.date) -> Verdict:
    try:
        claimed = sshsig.signer_fingerprint(text)
    except SignatureError as exc:
        return Verdict("invalid", None, f"{extract.name}{SUFFIX}: {exc}")
    known = [k for k in agency.signing_keys if _fingerprint(k.key) == claimed]
    if not known:
        return Verdict("invalid", claimed, f"{extract.name}{SUFFIX} is signed by key {claimed}, which is not a "
                       f"signing key of {agency.id}")
    usable = [k for k in known if k.usable_on(day)]
    if not usable:
        why = "revoked" if any(k.revoked for k in known) else "not valid on " + day.isoformat()
        return Verdict("invalid", claimed, f"{extract.name}{SUFFIX} is signed by key {claimed} of {agency.id}, "
                       f"which is {why}")
    try:
        with open(extract, "rb", opener=_no_follow) as fh:
            sshsig.verify_stream(usable[0].key, fh, text, NAMESPACE)
    except SignatureError as exc:
        return Verdict("invalid", claimed, f"{extract.name}{SUFFIX} claims key {claimed} of {agency.id}, and "
                       f"does not verify: {exc}")
    return Verdict("valid", claimed, f"signed by {agency.id} with key {claimed}", text)


def _fingerprint(line: str) -> str | None:
    try:
        return sshsig.fingerprint(line)
    except ValueError:
        return None


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
