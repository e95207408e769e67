"""One home's configuration and the clients every stage needs, opened once per process or task."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

from borderx.audit import events as ev
from borderx.audit.trail import AuditTrail
from borderx.bucket.publish import Target
from borderx.config.loader import load_config
from borderx.config.models import DeploymentConfig
from borderx.crypto import sshsig
from borderx.folders import replace_private
from borderx.home import Home
from borderx.intake import Ledger
from borderx.keys import load_signing_key


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def stamp(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Runtime:
    """Opening one has no side effects, so read-only commands leave the home as it is; a process that writes
    calls `prepare` first, and a run that exchanges extracts `record_config_changes`."""

    home: Home
    config: DeploymentConfig
    target: Target
    clock: Callable[[], dt.datetime] = utcnow

    @classmethod
    def open(
        cls,
        home: str | os.PathLike | None = None,
        *,
        endpoint_url: str | None = None,
        bucket: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> Runtime:
        resolved = Home.resolve(home)
        config = load_config(resolved.root, today=clock().date())
        target = Target.resolve(config.settings.s3, endpoint_url=endpoint_url, bucket=bucket)
        return cls(resolved, config, target, clock)

    def prepare(self) -> Runtime:
        """Makes the home's folders (private) for a process that takes in, publishes or records; a read-only
        command never calls it, so it leaves the home as it found it."""
        self.home.ensure()
        return self

    def record_config_changes(self) -> None:
        """Appends a config-changed event when agencies, keys, agreements or suites differ from the last run."""
        files = sorted([*self.home.config.rglob("*.y*ml"), *self.config.expectations_dir().glob("*.json")])
        current = {str(p.relative_to(self.home.root)) if p.is_relative_to(self.home.root) else str(p):
                   hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
        seen = self.home.state / "config.json"
        try:
            before = json.loads(seen.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = {}
        if current == before:
            return
        changed = sorted(k for k in current.keys() | before.keys() if current.get(k) != before.get(k))
        self.trail.record(ev.ConfigChanged(files={k: current.get(k) for k in changed}))
        replace_private(seen, json.dumps(current, indent=1, sort_keys=True))

    @cached_property
    def trail(self) -> AuditTrail:
        return AuditTrail(self.home.audit, clock=self.clock)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.home.state / "ledger.sqlite",
                      hub_has_past=lambda: any(e["type"] in ("received", "quarantined") for e in self.trail.events()))

    @cached_property
    def manifests_published(self) -> dict[str, bytes]:
        """Manifests this process put in the bucket, by key, kept until the notice of their delivery is written:
        it then need not read them back from the bucket."""
        return {}

    @cached_property
    def s3(self):
        return self.target.client(check_parameters=False)

    @cached_property
    def signing_key(self):
        return load_signing_key(self.config.settings.hub.signing_key, self.home.root)

    @cached_property
    def hub_fingerprint(self) -> str:
        return sshsig.fingerprint(self.config.settings.hub.signing_public_key)
