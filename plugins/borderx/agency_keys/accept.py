"""The hub's side of a key change: a signed request checked against the agency's valid signing keys, applied to
its config file with an overlap, remembered so it cannot be replayed, and recorded in the audit trail.

What may speak for an agency is decided here only: a signing key of that agency, in config/agencies/, not
revoked and inside its validity window on the day the hub accepts the request.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from borderx.agency_keys.agency_file import KeyChanges, edit_text, key_id, write_checked
from borderx.agency_keys.request import CLOCK_SKEW, KeyRequest, read_request
from borderx.audit import events as ev
from borderx.audit.trail import AuditTrail
from borderx.config.loader import load_agency_files
from borderx.config.models import Agency
from borderx.errors import KeyRequestError
from borderx.folders import private_folders, replace_private
from borderx.home import Home

STATE_FILE = "key-requests.json"
ACTOR = {"hub": True, "via": "borderx keys accept"}


@dataclass(frozen=True)
class Acceptance:
    request: KeyRequest
    file: Path
    changes: KeyChanges
    comments_dropped: bool

    def describe(self) -> str:
        c, lines = self.changes, [f"{self.file}: accepted request {self.request.request_id} of {self.request.agency}, "
                                  f"signed by {self.request.signer_fingerprint}"]
        for kind in ("age", "ssh"):
            for entry in c.added[kind]:
                until = f" to {entry['valid_to']}" if "valid_to" in entry else ""
                lines.append(f"  added {kind} key {key_id(kind, entry['key'])} valid from {entry['valid_from']}{until}")
        lines += [f"  key {k}: valid_to -> {day}" for k, day in c.ended.items()]
        lines += [f"  key {k}: revoked" for k in sorted(c.revoked)]
        if self.comments_dropped:
            lines.append("  note: comments inside the file were not kept (PyYAML drops them); the header comment was")
        return "\n".join(lines) + "\n"


def _refuse(shown: Path, request: KeyRequest, problem: str):
    raise KeyRequestError(f"{shown}: key request for {request.agency} signed by {request.signer_fingerprint}: "
                          f"{problem}; refused")


def _check_signer(shown: Path, request: KeyRequest, agencies: dict[str, Agency], today: dt.date) -> None:
    fp = request.signer_fingerprint
    own = [k for k in agencies[request.agency].signing_keys if key_id("ssh", k.key) == fp]
    if not own:
        others = sorted(a for a, agency in agencies.items()
                        if any(key_id("ssh", k.key) == fp for k in agency.signing_keys))
        if others:
            _refuse(shown, request, f"that is a key of {', '.join(others)}, not of {request.agency}")
        _refuse(shown, request, f"that is not a signing key of {request.agency}")
    if any(k.usable_on(today) for k in own):
        return
    key = own[0]
    if key.revoked:
        _refuse(shown, request, f"that signing key of {request.agency} is revoked")
    if key.valid_to and today > key.valid_to:
        _refuse(shown, request, f"that signing key of {request.agency} expired on {key.valid_to}")
    _refuse(shown, request, f"that signing key of {request.agency} is valid only from {key.valid_from}")


def _check_time(shown: Path, request: KeyRequest, now: dt.datetime) -> None:
    if now > request.expires:
        _refuse(shown, request, f"the request expired at {request.expires:%Y-%m-%dT%H:%M:%SZ}")
    if request.created > now + CLOCK_SKEW:
        _refuse(shown, request, f"the request claims to be made at {request.created:%Y-%m-%dT%H:%M:%SZ}, "
                                "ahead of the hub's clock")


def plan_changes(shown: Path, request: KeyRequest, agencies: dict[str, Agency], today: dt.date) -> KeyChanges:
    """What the request does to the agency's keys; refuses what would leave it unable to sign or to receive."""
    agency = agencies[request.agency]
    known = {key_id(kind, k.key): a for a, ag in agencies.items()
             for kind, keys in (("age", ag.age_recipients), ("ssh", ag.signing_keys)) for k in keys}
    new = {"age": list(request.age_recipients), "ssh": list(request.signing_keys)}
    for kind, keys in new.items():
        for key in keys:
            ident = key_id(kind, key)
            if ident in known:
                _refuse(shown, request, f"{kind} key {ident} is already a key of {known[ident]}")
    if request.valid_to is not None and request.valid_to < today:
        _refuse(shown, request, f"the new keys would end on {request.valid_to}, before today")
    changes = KeyChanges()
    mine = {key_id(kind, k.key): (kind, k) for kind, keys in (("age", agency.age_recipients),
                                                              ("ssh", agency.signing_keys)) for k in keys}
    for target in request.revoke:
        if target not in mine:
            _refuse(shown, request, f"{target} is not a key of {request.agency}")
        changes.revoked.add(target)
    end = today + dt.timedelta(days=request.overlap_days)
    for kind, keys in new.items():
        for key in keys:
            entry = {"key": key if kind == "age" else f"{key} {request.agency}", "valid_from": today}
            if request.valid_to is not None:
                entry["valid_to"] = request.valid_to
            changes.added[kind].append(entry)
    # A new key replaces the current keys of its own kind; a hybrid age key only the hybrid ones.
    pq_new = {k.startswith("age1pq1") for k in new["age"]}
    for ident, (kind, k) in mine.items():
        replaced = bool(new["ssh"]) if kind == "ssh" else getattr(k, "post_quantum", False) in pq_new
        if replaced and ident not in changes.revoked and k.usable_on(today) and not (k.valid_to and k.valid_to <= end):
            changes.ended[ident] = end
    _check_left_usable(shown, request, agency, changes, today, end)
    return changes


def _check_left_usable(shown: Path, request: KeyRequest, agency: Agency, changes: KeyChanges, today: dt.date,
                       end: dt.date) -> None:
    for kind, name, option in (("ssh", "signing_keys", "--ssh-key"), ("age", "age_recipients", "--age-recipient")):
        touched = any(key_id(kind, k.key) in changes.revoked | set(changes.ended) for k in getattr(agency, name))
        if not touched:
            continue
        after = [(k.valid_from, changes.ended.get(key_id(kind, k.key), k.valid_to)) for k in getattr(agency, name)
                 if not k.revoked and key_id(kind, k.key) not in changes.revoked]
        after += [(e["valid_from"], e.get("valid_to")) for e in changes.added[kind]]
        for day in (today, end + dt.timedelta(days=1)):
            if not any((f is None or f <= day) and (t is None or day <= t) for f, t in after):
                _refuse(shown, request, f"it would leave {request.agency} without a valid {kind} key on {day}; "
                                        f"add one with {option}")


class AcceptedRequests:
    """The ids of accepted requests, kept until they expire (an expired request is refused anyway)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextmanager
    def locked(self):
        private_folders(self.path.parent)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            # Forgetting accepted ids would let them be replayed: a damaged file stops acceptance instead.
            raise KeyRequestError(f"{self.path}: not readable JSON; restore it from a backup (removing it would let "
                                  "requests accepted before be accepted again until they expire)") from None

    def remember(self, request: KeyRequest, now: dt.datetime) -> None:
        kept = {rid: v for rid, v in self.load().items()
                if dt.datetime.fromisoformat(v["expires"].replace("Z", "+00:00")) >= now}
        kept[request.request_id] = {"agency": request.agency, "accepted": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    "expires": request.expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
        replace_private(self.path, json.dumps(kept, indent=1, sort_keys=True) + "\n")


def accept_request(home: Home, request_path: Path, *, signature_path: Path | None = None,
                   now: dt.datetime | None = None, keep_comments: bool = True) -> Acceptance:
    """Checks the request and, if it holds, applies it; raises KeyRequestError naming what refused it."""
    now = now or dt.datetime.now(dt.timezone.utc)
    today = now.date()
    request_path = Path(request_path)
    request, raw = read_request(request_path, signature_path)
    # Held from the first look at the agency's keys to the last write, so two accepts never both see the old keys.
    with AcceptedRequests(home.state / STATE_FILE).locked() as accepted:
        files = load_agency_files(home.root)
        agencies = {a: agency for a, (_, agency) in files.items()}
        if request.agency not in agencies:
            _refuse(request_path, request, f"no agency {request.agency} in {home.config / 'agencies'}")
        _check_signer(request_path, request, agencies, today)
        earlier = accepted.load().get(request.request_id)
        if earlier:
            _refuse(request_path, request,
                    f"request {request.request_id} was already accepted at {earlier['accepted']}")
        _check_time(request_path, request, now)
        changes = plan_changes(request_path, request, agencies, today)
        path = files[request.agency][0]
        text, dropped = edit_text(path.read_text(encoding="utf-8"), changes, keep_comments=keep_comments)
        write_checked(path, text, request.agency)
        accepted.remember(request, now)
    AuditTrail(home.audit, clock=lambda: now).record(ev.KeysChanged(
        agency=request.agency, request_id=request.request_id, request_sha256=hashlib.sha256(raw).hexdigest(),
        signed_by=request.signer_fingerprint,
        added=[key_id(kind, e["key"]) for kind in ("age", "ssh") for e in changes.added[kind]],
        ended={k: day.isoformat() for k, day in changes.ended.items()}, revoked_keys=sorted(changes.revoked),
        config_file=str(path.relative_to(home.root)) if path.is_relative_to(home.root) else str(path),
    ), actor=ACTOR)
    return Acceptance(request, path, changes, dropped)
