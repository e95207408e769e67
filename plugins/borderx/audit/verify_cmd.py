"""`borderx audit verify`: the auditor's trust roots first (key, bucket, endpoint, TSA CA), then the checks.

What the auditor passes wins over what the home's settings say, and the report names which was used, so a
home whose settings were pointed at another bucket or key cannot pass unnoticed.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from borderx.audit import auditor, sources
from borderx.audit.anchors import bucket_heads, local_heads
from borderx.audit.segments import PREFIX as SEGMENTS, bucket_events, list_segments
from borderx.audit.trail import AuditTrail
from borderx.bucket.client import BUCKET_ENV, ENDPOINT_ENV, Target
from borderx.config.models import AuditSettings, S3Settings
from borderx.crypto import sshsig
from borderx.errors import AuditError, BorderxError


@dataclass
class Audit:
    args: object
    target: Target
    trail: AuditTrail | None
    settings: AuditSettings
    hub_key: str
    key_source: str
    home_tsa: tuple[Path, str | None] | None  # the home's TSA CA file and policy
    ok: bool = False

    @classmethod
    def open(cls, args) -> Audit:
        """The home's settings where there is a home; with --from-bucket, --bucket and --hub-key, none is needed."""
        from borderx.exchange import Runtime

        try:
            rt = Runtime.open(args.home, endpoint_url=args.s3_endpoint, bucket=args.bucket)
        except BorderxError:
            if not (args.from_bucket and args.bucket and args.hub_key):
                raise
            target = Target.resolve(S3Settings(bucket=args.bucket), endpoint_url=args.s3_endpoint, bucket=args.bucket)
            return cls(args, target, None, AuditSettings(), *_hub_key(args, None), None)
        settings = rt.config.settings
        tsa = settings.audit.tsa
        home_tsa = None
        if tsa is not None:
            ca = Path(tsa.ca_certificate)
            home_tsa = (ca if ca.is_absolute() else rt.home.root / ca, tsa.policy)
        return cls(args, rt.target, rt.trail, settings.audit, *_hub_key(args, settings.hub.signing_public_key), home_tsa)

    @property
    def s3(self):
        if not hasattr(self, "_s3"):
            self._s3 = self.target.client()
        return self._s3

    @property
    def heads_where(self) -> str:
        if self.args.local:
            return str(self.trail.folder / "heads")
        return f"s3://{self.target.bucket}/audit/heads/"

    def run(self, now: dt.datetime) -> list[str]:
        args, bucket = self.args, self.target.bucket
        if self.trail is None and not args.from_bucket:
            raise AuditError("no home to read the trail from: give --home, or --from-bucket with --bucket and --hub-key")
        segments = []
        if args.local:
            heads = local_heads(self.trail)
            tokens = sources.local_tokens(self.trail, heads)
            events, events_where = sources.trail_events(self.trail), str(self.trail.path)
        else:
            heads = bucket_heads(self.s3, bucket)
            tokens = sources.bucket_tokens(self.s3, bucket, heads)
            segments = list_segments(self.s3, bucket)
            if args.from_bucket:
                events, events_where = bucket_events(self.s3, bucket, segments), f"s3://{bucket}/{SEGMENTS}"
            else:
                events, events_where = sources.trail_events(self.trail), str(self.trail.path)
        stamps = self._stamps()
        found = auditor.check(events, heads, tokens, self.hub_key, settings=self.settings, stamps=stamps, now=now,
                              seen=auditor.Seen.load(args.state) if args.state else None)
        newest = found.newest.seq if found.newest else 0
        for segment in sources.segments_beyond(segments, newest):
            found.problems.append(f"s3://{bucket}/{segment.key()} ends at seq {segment.last}, after the newest "
                                  f"signed head ({newest}): the head that covered it is missing")
        self.ok = found.ok
        if found.ok and args.state and found.newest is not None:
            found.newest.save(args.state, now)
        verdict = (f"ok: {found.events} events in {events_where}, chain intact, {found.heads} signed head(s) in "
                   f"{self.heads_where} match" if found.ok else
                   f"FAILED: {len(found.problems)} problem(s) in {events_where} against {self.heads_where}")
        return [verdict, *self._trust_lines(stamps, events_where), *(f"  {n}" for n in found.notes),
                *(f"  FAILED: {p}" for p in found.problems)]

    def _stamps(self) -> auditor.TimeStamps:
        if self.args.tsa_ca:
            return auditor.TimeStamps(_read(self.args.tsa_ca), None, f"{self.args.tsa_ca} (the auditor's)")
        if self.home_tsa is not None:
            return auditor.TimeStamps(_read(self.home_tsa[0]), self.home_tsa[1], f"{self.home_tsa[0]} (the home's "
                                      "settings)")
        return auditor.TimeStamps(None, None, "no TSA CA given (--tsa-ca) and none in the home's settings")

    def _trust_lines(self, stamps: auditor.TimeStamps, events_where: str) -> list[str]:
        args, target = self.args, self.target
        bucket_from = "--bucket" if args.bucket else f"env {BUCKET_ENV}" if os.environ.get(BUCKET_ENV) else \
            "the home's settings"
        endpoint_from = "--s3-endpoint" if args.s3_endpoint else f"env {ENDPOINT_ENV}" if os.environ.get(
            ENDPOINT_ENV) else "the home's settings"
        return [
            f"  hub key: {sshsig.fingerprint(self.hub_key)} from {self.key_source}",
            f"  bucket: s3://{target.bucket} (from {bucket_from}) at {target.endpoint_url or 'the AWS default endpoint'}"
            f" (from {endpoint_from})",
            f"  events: {events_where}; heads: {self.heads_where}",
            f"  time stamps: {'checked with ' + stamps.source if stamps.ca_pem else 'not checked: ' + stamps.source}",
        ]


def _hub_key(args, home_key: str | None) -> tuple[str, str]:
    if args.hub_key:
        return auditor.read_hub_key(args.hub_key), f"{args.hub_key} (the auditor's)"
    return home_key, "the home's settings (trusted as the hub gives it; pass --hub-key to bring your own)"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditError(f"{path}: the TSA's CA certificate cannot be read ({exc.strerror})") from None
