"""One extract through every stage, and one pass over the intake folders as `borderx run --once` makes it.

receive -> validate (suite, gate, agreements) -> quarantine, or per recipient: deliver (seal, publish)
-> finish (archive). `borderx run`, the exchange DAG's one-task path and its mapped tasks all go through
these stages; nothing else orchestrates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from borderx import notices
from borderx.bucket.publish import ensure_bucket
from borderx.exchange import stages
from borderx.exchange.handoff import Accepted, Exchanged, Gone, Quarantined
from borderx.exchange.runtime import Runtime
from borderx.intake import IntakeFile

CLI_ACTOR = {"hub": True, "via": "borderx run"}


def exchange_one(rt: Runtime, intake_file: IntakeFile, actor: dict | None = None) -> Exchanged | Quarantined | Gone:
    """Every stage of one intake file in turn. A file that changed while it was delivered is quarantined, and
    no delivery after that one is made. The bucket must exist (`ensure_bucket`)."""
    accepted = stages.validate(rt, stages.receive(rt, intake_file, actor), actor)
    if not isinstance(accepted, Accepted):
        return accepted
    results = []
    for plan in accepted.plans:
        result = stages.deliver(rt, accepted, plan, actor)
        if result.quarantined is not None:
            return result.quarantined
        results.append(result)
    stages.finish(rt, accepted, results, actor)
    return Exchanged(accepted, tuple(results))


@dataclass
class RunSummary:
    """What a pass did, in the form `borderx run` prints it: each entry as its outcome's dict."""

    published: list[dict] = field(default_factory=list)
    already_published: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    files: int = 0
    notices: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.quarantined

    def add(self, outcome: Exchanged | Quarantined | Gone) -> None:
        if isinstance(outcome, Quarantined):
            self.quarantined.append(outcome.to_dict())
        for r in outcome.results if isinstance(outcome, Exchanged) else ():
            (self.published if r.status == "published" else self.already_published).append(r.to_dict())


def run_once(rt: Runtime, *, settle_seconds: float | None = None, actor: dict | None = None,
             on_progress: Callable[[str], None] | None = None) -> RunSummary:
    actor = actor or CLI_ACTOR
    rt.prepare()
    rt.record_config_changes()
    summary = RunSummary()
    try:
        found = stages.discover(rt, settle_seconds)
        summary.files = len(found)
        if found:
            ensure_bucket(rt.s3, rt.target.bucket)
        for n, intake_file in enumerate(found, start=1):
            if on_progress:
                on_progress(f"[{n}/{len(found)}] {intake_file.agency}/{intake_file.dataset}/{intake_file.name}")
            summary.add(exchange_one(rt, intake_file, actor))
        if found:
            stages.close_segment(rt)
    except Exception as exc:
        notices.run_failed(rt, actor.get("via", "borderx run"), exc)
        notices.after_run(rt, bucket_answered=False)
        raise
    summary.notices = notices.after_run(rt).to_dict()
    return summary
