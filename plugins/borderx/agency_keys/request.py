"""An agency's key-change request: a small JSON document and its SSH signature (namespace borderx-key-request).

The agency makes and signs it on its own machine with its current signing key, so only public keys ever travel
to the hub. This module knows the bytes: building, signing, reading with a size cap, and checking the signature
against the key the request names. Whether that key may speak for the agency is decided in `accept`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from borderx.config.models import AGENCY_ID
from borderx.crypto import age, sshsig
from borderx.errors import KeyRequestError, SignatureError

NAMESPACE = "borderx-key-request"
FORMAT = "borderx-key-request/v1"
SIGNATURE_SUFFIX = ".sig"
# Read before parsing: a request holds a few key lines, so anything larger is not one.
MAX_REQUEST_BYTES = 16 * 1024
MAX_SIGNATURE_BYTES = 4 * 1024
MAX_KEYS = 8
DEFAULT_EXPIRES_DAYS = 14
MAX_EXPIRES_DAYS = 90
DEFAULT_OVERLAP_DAYS = 30
MAX_OVERLAP_DAYS = 365
# Clocks of the agency and the hub differ a little; a request made later than this ahead of the hub is refused.
CLOCK_SKEW = dt.timedelta(minutes=5)

_FIELDS = {"format", "request_id", "agency", "created", "expires", "signed_by", "age_recipients", "signing_keys",
           "revoke", "overlap_days", "valid_to"}
_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
# Key lines without a comment: the hub adds the agency's id as the comment when it writes them.
_SSH_KEY = re.compile(r"^ssh-ed25519 [A-Za-z0-9+/]+={0,2}$")
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class KeyRequest:
    request_id: str
    agency: str
    created: dt.datetime
    expires: dt.datetime
    signed_by: str  # the OpenSSH public key line of the signing key
    age_recipients: tuple[str, ...] = ()
    signing_keys: tuple[str, ...] = ()
    revoke: tuple[str, ...] = ()  # age recipients and ssh fingerprints
    overlap_days: int = DEFAULT_OVERLAP_DAYS
    valid_to: dt.date | None = None  # when the new keys end; open-ended if None

    @property
    def signer_fingerprint(self) -> str:
        return sshsig.fingerprint(self.signed_by)

    def to_json(self) -> bytes:
        doc = {
            "format": FORMAT, "request_id": self.request_id, "agency": self.agency,
            "created": self.created.strftime(_TIME), "expires": self.expires.strftime(_TIME),
            "signed_by": self.signed_by, "age_recipients": list(self.age_recipients),
            "signing_keys": list(self.signing_keys), "revoke": list(self.revoke),
            "overlap_days": self.overlap_days, "valid_to": self.valid_to.isoformat() if self.valid_to else None,
        }
        return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def revoke_target(value: str) -> str:
    """What `--revoke` names, as the request carries it: an age recipient as is, an ssh key as its fingerprint."""
    value = value.strip()
    if value.startswith("age1") or _FINGERPRINT.match(value):
        return value
    if value.startswith("ssh-"):
        try:
            return sshsig.fingerprint(value)
        except ValueError as exc:
            raise KeyRequestError(f"--revoke {value[:40]!r}: {exc}") from None
    raise KeyRequestError(f"--revoke {value[:40]!r}: give an age recipient (age1...), an ssh key's fingerprint "
                          "(SHA256:...) or its public key line")


def make_request(agency: str, signer, *, age_recipients=(), signing_keys=(), revoke=(),
                 overlap_days: int = DEFAULT_OVERLAP_DAYS, valid_to: dt.date | None = None,
                 expires_in_days: int = DEFAULT_EXPIRES_DAYS, now: dt.datetime | None = None,
                 request_id: str | None = None) -> tuple[KeyRequest, bytes, str | None]:
    """(request, its JSON bytes, their signature by `signer`). The request is checked as the hub will check it,
    so an agency learns of a mistake before sending it.

    `signer` is the Ed25519 private key, or only its public key line: then no signature is made, and the
    agency signs the bytes with `ssh-keygen -Y sign -n borderx-key-request` (a key with a passphrase, or one
    held by ssh-agent or a token).
    """
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(microsecond=0)
    signed_by = " ".join(signer.split()[:2]) if isinstance(signer, str) else sshsig.public_key_line(signer)
    request = KeyRequest(
        request_id=request_id or os.urandom(16).hex(), agency=agency, created=now,
        expires=now + dt.timedelta(days=expires_in_days), signed_by=signed_by,
        age_recipients=tuple(age_recipients), signing_keys=tuple(" ".join(k.split()[:2]) for k in signing_keys),
        revoke=tuple(revoke_target(r) for r in revoke), overlap_days=overlap_days, valid_to=valid_to)
    raw = request.to_json()
    parse_request(raw, "the new request")
    return request, raw, None if isinstance(signer, str) else sshsig.sign(signer, raw, NAMESPACE)


def write_request(out: Path, raw: bytes, signature: str | None) -> tuple[Path, Path]:
    """REQUEST and REQUEST.sig (unless there is no signature yet), never over existing files: a request is
    public, but one already sent must stay what was sent."""
    sig_path = out.with_name(out.name + SIGNATURE_SUFFIX)
    taken = [str(p) for p in (out, sig_path) if p.exists()]
    if taken:
        raise KeyRequestError(f"refusing to overwrite existing files: {', '.join(taken)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    if signature is not None:
        sig_path.write_text(signature, encoding="ascii")
    return out, sig_path


def _read_capped(path: Path, cap: int, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(cap + 1)
    except OSError as exc:
        raise KeyRequestError(f"{path}: {what} cannot be read ({exc.strerror})") from None
    if len(data) > cap:
        raise KeyRequestError(f"{path}: {what} is larger than {cap} bytes; refused without reading it")
    return data


def read_request(path: Path, signature_path: Path | None = None) -> tuple[KeyRequest, bytes]:
    """The request at `path`, its signature (default PATH.sig) checked against the key it names.

    Raises KeyRequestError naming the file, and once the request is readable, its agency and signing key.
    """
    path = Path(path)
    signature_path = Path(signature_path) if signature_path else path.with_name(path.name + SIGNATURE_SUFFIX)
    raw = _read_capped(path, MAX_REQUEST_BYTES, "the key request")
    signature = _read_capped(signature_path, MAX_SIGNATURE_BYTES, "the request's signature")
    request = parse_request(raw, str(path))
    try:
        sshsig.verify(request.signed_by, raw, signature, NAMESPACE)
    except SignatureError as exc:
        raise KeyRequestError(f"{path}: key request for {request.agency}: its signature does not verify with the "
                              f"key it names, {request.signer_fingerprint} ({exc}); refused") from None
    return request, raw


def _fail(shown: str, field: str, problem: str):
    raise KeyRequestError(f"{shown}: not a valid key request: {field}: {problem}")


def _time(doc: dict, field: str, shown: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(doc[field], _TIME).replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        _fail(shown, field, "must be a UTC time as YYYY-MM-DDTHH:MM:SSZ")


def _strings(doc: dict, field: str, shown: str) -> tuple[str, ...]:
    value = doc[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(shown, field, "must be a list of strings")
    if len(value) > MAX_KEYS or len(set(value)) != len(value):
        _fail(shown, field, f"at most {MAX_KEYS} entries, each once")
    return tuple(value)


def _check_keys(request: KeyRequest, shown: str) -> None:
    for i, key in enumerate(request.age_recipients):
        try:
            canonical = age.parse_recipient(key).string
        except ValueError as exc:
            _fail(shown, f"age_recipients.{i}", str(exc))
        if canonical != key:
            _fail(shown, f"age_recipients.{i}", f"write it as {canonical}")
    for i, key in enumerate((request.signed_by, *request.signing_keys)):
        field = "signed_by" if i == 0 else f"signing_keys.{i - 1}"
        if not _SSH_KEY.match(key):
            _fail(shown, field, "must be an OpenSSH ssh-ed25519 public key, 'ssh-ed25519 BASE64', without a comment")
        try:
            sshsig.fingerprint(key)
        except ValueError as exc:
            _fail(shown, field, str(exc))
    for i, target in enumerate(request.revoke):
        if not _FINGERPRINT.match(target):
            try:
                age.parse_recipient(target)
            except ValueError:
                _fail(shown, f"revoke.{i}", "must be an age recipient or an ssh fingerprint (SHA256:...)")


def _no_duplicates(pairs: list) -> dict:
    # Readers that keep the first of two equal fields would see another request than this one.
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("a field appears twice")
    return doc


def parse_request(raw: bytes, shown: str) -> KeyRequest:
    """The request in `raw`, every field checked; its signature is not (see `read_request`)."""
    if len(raw) > MAX_REQUEST_BYTES:
        _fail(shown, "-", f"larger than {MAX_REQUEST_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        _fail(shown, "-", "not UTF-8 JSON with each field once")
    if not isinstance(doc, dict) or set(doc) != _FIELDS:
        _fail(shown, "-", f"must be an object with exactly the fields {', '.join(sorted(_FIELDS))}")
    if doc["format"] != FORMAT:
        _fail(shown, "format", f"must be {FORMAT!r}")
    for field, pattern in (("request_id", _REQUEST_ID), ("agency", re.compile(AGENCY_ID))):
        if not isinstance(doc[field], str) or not pattern.match(doc[field]):
            _fail(shown, field, f"does not match {pattern.pattern}")
    if not isinstance(doc["signed_by"], str):
        _fail(shown, "signed_by", "must be a string")
    overlap = doc["overlap_days"]
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap <= MAX_OVERLAP_DAYS:
        _fail(shown, "overlap_days", f"must be a whole number of days from 0 to {MAX_OVERLAP_DAYS}")
    valid_to = None
    if doc["valid_to"] is not None:
        try:
            valid_to = dt.date.fromisoformat(doc["valid_to"])
        except (TypeError, ValueError):
            _fail(shown, "valid_to", "must be a date (YYYY-MM-DD) or null")
    request = KeyRequest(
        request_id=doc["request_id"], agency=doc["agency"], created=_time(doc, "created", shown),
        expires=_time(doc, "expires", shown), signed_by=doc["signed_by"],
        age_recipients=_strings(doc, "age_recipients", shown), signing_keys=_strings(doc, "signing_keys", shown),
        revoke=_strings(doc, "revoke", shown), overlap_days=overlap, valid_to=valid_to)
    life = request.expires - request.created
    if not dt.timedelta(0) < life <= dt.timedelta(days=MAX_EXPIRES_DAYS):
        _fail(shown, "expires", f"must be after created, by at most {MAX_EXPIRES_DAYS} days")
    if not (request.age_recipients or request.signing_keys or request.revoke):
        _fail(shown, "-", "asks for nothing: give new keys, keys to revoke, or both")
    _check_keys(request, shown)
    return request
