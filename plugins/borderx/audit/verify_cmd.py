"""`borderx audit verify` and the auditor's page: the trust roots first (key, bucket, endpoint, TSA CA), then
the checks.

What the auditor passes wins over what the home's settings say, and the report names which was used, so a
home whose settings were pointed at another bucket or key cannot pass unnoticed.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from borderx.audit import auditor, sources
from borderx.audit.anchors import bucket_heads, local_heads
from borderx.audit.segments import PREFIX as SEGMENTS, bucket_events, list_segments
from borderx.audit.trail import AuditTrail
from borderx.bucket.client import BUCKET_ENV, ENDPOINT_ENV, Target
from borderx.config.models import AuditSettings, S3Settings
from borderx.crypto import sshsig
from borderx.errors import AuditError, BorderxError


@dataclass(frozen=True)
class Asked:
    """What the auditor brings; None means "as the home says"."""

    bucket: str | None = None
    s3_endpoint: str | None = None
    hub_key: Path | None = None
    tsa_ca: Path | None = None
    state: Path | None = None
    local: bool = False
    from_bucket: bool = False

    @classmethod
    def from_args(cls, args) -> Asked:
        return cls(args.bucket, args.s3_endpoint, args.hub_key, args.tsa_ca, args.state, args.local, args.from_bucket)


@dataclass
class Audit:
    asked: Asked
    target: Target
    trail: AuditTrail | None
    settings: AuditSettings
    hub_key: str
    key_source: str
    home_tsa: tuple[Path, str | None] | None  # the home's TSA CA file and policy
    found: auditor.Findings | None = field(default=None, init=False)

    @classmethod
    def open(cls, home: str | os.PathLike | None, asked: Asked) -> Audit:
        """The home's settings where there is a home; with --from-bucket, --bucket and --hub-key, none is needed."""
        from borderx.config.loader import load_config
        from borderx.home import Home

        try:
            root = Home.resolve(home)
            config = load_config(root.root)
        except BorderxError:
            if not (asked.from_bucket and asked.bucket and asked.hub_key):
                raise
            target = Target.resolve(S3Settings(bucket=asked.bucket), endpoint_url=asked.s3_endpoint, bucket=asked.bucket)
            return cls(asked, target, None, AuditSettings(), *_hub_key(asked, None), None)
        settings = config.settings
        target = Target.resolve(settings.s3, endpoint_url=asked.s3_endpoint, bucket=asked.bucket)
        tsa = settings.audit.tsa
        home_tsa = None
        if tsa is not None:
            ca = Path(tsa.ca_certificate)
            home_tsa = (ca if ca.is_absolute() else root.root / ca, tsa.policy)
        return cls(asked, target, AuditTrail(root.audit), settings.audit,
                   *_hub_key(asked, settings.hub.signing_public_key), home_tsa)

    @property
    def ok(self) -> bool:
        return self.found is not None and self.found.ok

    @cached_property
    def s3(self):
        return self.target.client()

    @property
    def heads_where(self) -> str:
        if self.asked.local:
            return str(self.trail.folder / "heads")
        return f"s3://{self.target.bucket}/audit/heads/"

    @property
    def events_where(self) -> str:
        return f"s3://{self.target.bucket}/{SEGMENTS}" if self.asked.from_bucket else str(self.trail.path)

    def run(self, now: dt.datetime) -> auditor.Findings:
        asked, bucket = self.asked, self.target.bucket
        if self.trail is None and not asked.from_bucket:
            raise AuditError("no home to read the trail from: give --home, or --from-bucket with --bucket and --hub-key")
        segments = []
        if asked.local:
            heads = local_heads(self.trail)
            tokens = sources.local_tokens(self.trail, heads)
        else:
            heads = bucket_heads(self.s3, bucket)
            tokens = sources.bucket_tokens(self.s3, bucket, heads)
            segments = list_segments(self.s3, bucket)
        events = bucket_events(self.s3, bucket, segments) if asked.from_bucket else sources.trail_events(self.trail)
        found = auditor.check(events, heads, tokens, self.hub_key, settings=self.settings, stamps=self.stamps,
                              now=now, seen=auditor.Seen.load(asked.state) if asked.state else None)
        newest = found.newest.seq if found.newest else 0
        for segment in sources.segments_beyond(segments, newest):
            found.problems.append(f"s3://{bucket}/{segment.key()} ends at seq {segment.last}, after the newest "
                                  f"signed head ({newest}): the head that covered it is missing")
        if found.ok and asked.state and found.newest is not None:
            found.newest.save(asked.state, now)
        self.found = found
        return found

    def report(self) -> list[str]:
        found = self.found
        verdict = (f"ok: {found.events} events in {self.events_where}, chain intact, {found.heads} signed head(s) "
                   f"in {self.heads_where} match" if found.ok else
                   f"FAILED: {len(found.problems)} problem(s) in {self.events_where} against {self.heads_where}")
        return [verdict, *(f"  {line}" for line in self.trust_lines()), *(f"  {n}" for n in found.notes),
                *(f"  FAILED: {p}" for p in found.problems)]

    @cached_property
    def stamps(self) -> auditor.TimeStamps:
        if self.asked.tsa_ca:
            return auditor.TimeStamps(_read(self.asked.tsa_ca), None, f"{self.asked.tsa_ca} (the auditor's)")
        if self.home_tsa is not None:
            return auditor.TimeStamps(_read(self.home_tsa[0]), self.home_tsa[1],
                                      f"{self.home_tsa[0]} (the home's settings)")
        return auditor.TimeStamps(None, None, "no TSA CA given (--tsa-ca) and none in the home's settings")

    def checked_against(self) -> dict[str, str]:
        asked, target = self.asked, self.target
        return {
            "hub_key": sshsig.fingerprint(self.hub_key),
            "hub_key_from": self.key_source,
            "bucket": f"s3://{target.bucket}",
            "bucket_from": _origin(asked.bucket, "--bucket", BUCKET_ENV),
            "endpoint": target.endpoint_url or "the AWS default endpoint",
            "endpoint_from": _origin(asked.s3_endpoint, "--s3-endpoint", ENDPOINT_ENV),
            "time_stamps": ("checked with " if self.stamps.ca_pem else "not checked: ") + self.stamps.source,
        }

    def trust_lines(self) -> list[str]:
        c = self.checked_against()
        return [
            f"hub key: {c['hub_key']} from {c['hub_key_from']}",
            f"bucket: {c['bucket']} (from {c['bucket_from']}) at {c['endpoint']} (from {c['endpoint_from']})",
            f"events: {self.events_where}; heads: {self.heads_where}",
            f"time stamps: {c['time_stamps']}",
        ]


def _origin(given: str | None, flag: str, env: str) -> str:
    return flag if given else f"env {env}" if os.environ.get(env) else "the home's settings"


def _hub_key(asked: Asked, home_key: str | None) -> tuple[str, str]:
    if asked.hub_key:
        return auditor.read_hub_key(asked.hub_key), f"{asked.hub_key} (the auditor's)"
    return home_key, "the home's settings (trusted as the hub gives it; pass --hub-key to bring your own)"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: the TSA's CA certificate cannot be read ({exc.strerror})") from None
