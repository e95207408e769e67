"""Key generation, listing keys with their status, and loading the hub's private signing key from where settings say.

`generate_keys` is for an agency on its own machine (`borderx keys generate`) and for the demo, which plays every
agency; the hub itself never makes or keeps an agency's private key (see borderx.agency_keys).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from borderx.config.loader import load_agencies
from borderx.config.models import KeySource
from borderx.crypto import age, sshsig
from borderx.errors import KeyMaterialError

AGE_IDENTITY_FILE = "age.key"
SSH_KEY_FILE = "ssh_ed25519"


@dataclass(frozen=True)
class GeneratedKeys:
    age_identity_path: Path
    age_recipient: str
    ssh_private_path: Path
    ssh_public_key: str

    def config_snippet(self, valid_from: dt.date) -> str:
        return (
            "age_recipients:\n"
            f"  - key: {self.age_recipient}\n"
            f"    valid_from: {valid_from.isoformat()}\n"
            "signing_keys:\n"
            f"  - key: {self.ssh_public_key}\n"
            f"    valid_from: {valid_from.isoformat()}\n"
        )


def _write_private(path: Path, data: bytes) -> None:
    # Created owner-only from the first byte: a chmod after writing would leave a window.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def generate_keys(owner: str, out_dir: Path, *, now: dt.datetime | None = None) -> GeneratedKeys:
    """Writes an age identity (age-keygen format) and an OpenSSH ed25519 key pair; refuses to overwrite."""
    now = now or dt.datetime.now(dt.timezone.utc)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    paths = [out_dir / AGE_IDENTITY_FILE, out_dir / SSH_KEY_FILE, out_dir / f"{SSH_KEY_FILE}.pub"]
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise KeyMaterialError(f"refusing to overwrite existing key files: {', '.join(existing)}")
    identity, recipient = age.generate_x25519_identity()
    _write_private(paths[0], age.format_identity_file(identity, recipient, now).encode())
    private_pem, public_line = sshsig.generate_ed25519_keypair(comment=owner)
    _write_private(paths[1], private_pem)
    paths[2].write_text(public_line + "\n", encoding="utf-8")
    return GeneratedKeys(paths[0], recipient, paths[1], public_line)


def load_signing_key(source: KeySource, home: Path):
    """The hub's Ed25519 private key, from a file, an environment variable or an Airflow connection."""
    if source.file:
        path = (home / source.file) if not os.path.isabs(source.file) else Path(source.file)
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeyMaterialError(f"hub signing key file {path}: cannot be read ({exc.strerror})") from None
        origin = f"file {path}"
    elif source.env:
        value = os.environ.get(source.env)
        if not value:
            raise KeyMaterialError(f"hub signing key: environment variable {source.env} is not set")
        pem = value.encode()
        origin = f"environment variable {source.env}"
    else:
        pem, origin = _from_airflow_connection(source.airflow_connection)
    try:
        return sshsig.load_private_key(pem)
    except ValueError:
        raise KeyMaterialError(f"hub signing key from {origin} is not an OpenSSH ed25519 private key") from None


def _from_airflow_connection(conn_id: str) -> tuple[bytes, str]:
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow raises its own not-found type, which varies by version
        raise KeyMaterialError(f"hub signing key: Airflow connection {conn_id!r} not found ({exc.__class__.__name__})") from None
    secret = conn.password or (conn.extra_dejson or {}).get("private_key")
    if not secret:
        raise KeyMaterialError(f"hub signing key: Airflow connection {conn_id!r} has no password or extra.private_key")
    return secret.encode(), f"Airflow connection {conn_id!r}"


# -- lifecycle: listing keys with their status (an agency changes its keys through borderx.agency_keys) --

EXPIRING_WITHIN_DAYS = 30
CURRENT, EXPIRING, NOT_YET_VALID, EXPIRED, REVOKED = "current", "expiring", "not yet valid", "expired", "revoked"


def key_status(key, today: dt.date) -> str:
    """current, expiring (valid, ending within 30 days), not yet valid, expired or revoked."""
    if key.revoked:
        return REVOKED
    if key.valid_from and today < key.valid_from:
        return NOT_YET_VALID
    if key.valid_to and today > key.valid_to:
        return EXPIRED
    if key.valid_to and (key.valid_to - today).days <= EXPIRING_WITHIN_DAYS:
        return EXPIRING
    return CURRENT


@dataclass(frozen=True)
class KeyRow:
    agency: str
    kind: str  # age, age-pq, ssh
    key: str
    valid_from: dt.date | None
    valid_to: dt.date | None
    revoked: bool
    status: str
    days_left: int | None

    @property
    def short(self) -> str:
        """The age recipient abbreviated, or the ssh key's fingerprint: enough to tell keys apart in a table."""
        if self.kind == "ssh":
            return sshsig.fingerprint(self.key)
        return f"{self.key[:12]}…{self.key[-6:]}"


def list_keys(home: Path, today: dt.date | None = None) -> list[KeyRow]:
    today = today or dt.date.today()
    rows = []
    # Agencies only, without the full check: listing keys must work exactly when that fails because keys ran out.
    for agency_id, agency in sorted(load_agencies(home).items()):
        keys = [("age-pq" if k.post_quantum else "age", k) for k in agency.age_recipients]
        keys += [("ssh", k) for k in agency.signing_keys]
        for kind, k in keys:
            days = (k.valid_to - today).days if k.valid_to else None
            rows.append(KeyRow(agency_id, kind, k.key, k.valid_from, k.valid_to, k.revoked, key_status(k, today), days))
    return rows


def format_key_table(rows: list[KeyRow]) -> str:
    header = ("AGENCY", "KIND", "KEY", "VALID FROM", "VALID TO", "REVOKED", "STATUS")
    table = [header] + [
        (r.agency, r.kind, r.short, str(r.valid_from or "-"), str(r.valid_to or "-"), "yes" if r.revoked else "no",
         r.status + (f" ({r.days_left} days left)" if r.status == EXPIRING else ""))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n" for row in table)
