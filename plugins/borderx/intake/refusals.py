"""What the hub refuses to take in, said once: a clear log line each sweep, an audit event the first time.

A linked agency or dataset folder is refused whole (nothing under it is listed, read or moved), and so is a
source object whose name cannot be copied in. Each refusal is recorded in the audit trail as a `refused`
event once per thing refused (a link is the same until it is made anew), not on every sweep.
"""

from __future__ import annotations

import logging
import os

from borderx.audit.events import Refused
from borderx.audit.trail import AuditTrail
from borderx.folders import LinkedFolder
from borderx.home import Home

log = logging.getLogger(__name__)

REFUSED_STORE = "refused.sqlite"
ACTOR = {"hub": True, "via": "intake"}


def _store(home: Home):
    from borderx.intake.watch import AnnouncedStore

    return AnnouncedStore(home.state / REFUSED_STORE)


def _shown(home: Home, exc: LinkedFolder) -> str:
    where = exc.root / exc.relative
    return str(where.relative_to(home.root)) if where.is_relative_to(home.root) else str(where)


def refuse_linked_folder(home: Home, exc: LinkedFolder, agency: str, dataset: str) -> None:
    """Logs the linked folder and, the first time this link is seen, records it in the audit trail."""
    shown = _shown(home, exc)
    log.warning("%s/%s: %s is a symbolic link; the hub does not follow links, so nothing in it is taken. "
                "Replace the link with a real folder.", agency, dataset, shown)
    try:
        st = os.lstat(exc.root / exc.relative)
        identity = (st.st_ino, st.st_mtime_ns)
    except FileNotFoundError:
        return
    record_once(home, f"linked-folder:{shown}", identity, reason="linked-folder", path=shown, target=exc.target,
                provider=agency, dataset=dataset)


def record_once(home: Home, key: str, identity: tuple[int, int], **details) -> bool:
    """Appends a `refused` event unless this key and identity were recorded before; True if it did."""
    store = _store(home)
    if store.contains(key, *identity):
        return False
    AuditTrail(home.audit).record(Refused(**details), actor=ACTOR)
    store.add(key, *identity)
    return True
