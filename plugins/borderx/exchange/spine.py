"""One extract through every stage, and one pass over the intake folders as `borderx run --once` makes it.

receive -> validate (suite, gate, agreements) -> quarantine, or per recipient: deliver (seal, publish)
-> finish (archive). `borderx run`, the exchange DAG's one-task path and its mapped tasks all go through
these stages; nothing else orchestrates them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from borderx.bucket.publish import ensure_bucket
from borderx.exchange import stages
from borderx.exchange.handoff import Accepted, Exchanged, Gone, Quarantined
from borderx.exchange.runtime import Runtime
from borderx.intake import Extract, IntakeFile, settling

CLI_ACTOR = {"hub": True, "via": "borderx run"}


def exchange_one(rt: Runtime, intake_file: IntakeFile, actor: dict | None = None) -> Exchanged | Quarantined | Gone:
    """Every stage of one intake file in turn. A file that changed while it was delivered is quarantined, and
    no delivery after that one is made. The bucket must exist (`ensure_bucket`)."""
    return exchange_received(rt, stages.receive(rt, intake_file, actor), actor)


def exchange_many(rt: Runtime, intake_files: list[IntakeFile], actor: dict | None = None
                  ) -> list[Exchanged | Quarantined | Gone]:
    """Every stage of each file in turn, as `exchange_one` takes it, except that the files are first taken and
    hashed, and the small ones of a dataset validated together (see `prepared`)."""
    return [rest() for _, rest in prepared(rt, intake_files, actor)]


def prepared(rt: Runtime, intake_files: list[IntakeFile], actor: dict | None = None
             ) -> list[tuple[IntakeFile, Callable[[], Exchanged | Quarantined | Gone]]]:
    """The files taken and hashed, the small ones of a dataset validated together (`stages.validate_suites`);
    each with the rest of its exchange, to call in turn. A file is claimed only when its turn comes, so the
    trail and ledger read as if the files had been exchanged one by one."""
    taken = [stages.take_and_hash(rt, f, actor) for f in intake_files]
    outcomes = stages.validate_suites(rt, taken)

    def rest(extract) -> Callable[[], Exchanged | Quarantined | Gone]:
        if not isinstance(extract, Extract):
            return lambda: extract
        return lambda: exchange_received(rt, stages.claim(rt, extract, actor), actor, outcomes.get(extract.path))

    return [(f, rest(extract)) for f, extract in zip(intake_files, taken)]


def exchange_received(rt: Runtime, received: Received | Quarantined | Gone, actor: dict | None = None,
                      outcome=None) -> Exchanged | Quarantined | Gone:
    accepted = stages.validate(rt, received, actor, outcome)
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


# Small files taken and validated together: enough to share GX's fixed cost, few enough that a file is
# published soon after it is taken.
GROUP_FILES = 64
GROUP_BYTES = 16 << 20


def groups(found: list[IntakeFile]) -> list[list[IntakeFile]]:
    """The files in the order found, cut into groups of one dataset; a large file is a group of its own."""
    groups: list[list[IntakeFile]] = []
    held = 0
    for f in found:
        last = groups[-1] if groups else None
        if (last is None or len(last) >= GROUP_FILES or held + f.size > GROUP_BYTES
                or (last[0].agency, last[0].dataset) != (f.agency, f.dataset)):
            groups.append([])
            held = 0
        groups[-1].append(f)
        held += f.size
    return groups


@dataclass
class RunSummary:
    """What a pass did, in the form `borderx run` prints it: each entry as its outcome's dict."""

    published: list[dict] = field(default_factory=list)
    already_published: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    files: int = 0
    # Seconds until each file still within its settle time counts as complete.
    settling: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.quarantined

    def add(self, outcome: Exchanged | Quarantined | Gone) -> None:
        if isinstance(outcome, Quarantined):
            self.quarantined.append(outcome.to_dict())
        for r in outcome.results if isinstance(outcome, Exchanged) else ():
            (self.published if r.status == "published" else self.already_published).append(r.to_dict())


def run_once(rt: Runtime, *, settle_seconds: float | None = None, actor: dict | None = None,
             on_progress: Callable[[str], None] | None = None, wait: bool = False,
             sleep: Callable[[float], None] = time.sleep) -> RunSummary:
    """One pass over the intake folders. Files still within their settle time are counted in the summary
    (`settling`); with `wait`, the pass waits for them and takes them too, until none is left waiting."""
    actor = actor or CLI_ACTOR
    rt.prepare()
    rt.record_config_changes()
    summary = RunSummary()
    while True:
        found = stages.discover(rt, settle_seconds)
        if found and not summary.files:
            ensure_bucket(rt.s3, rt.target.bucket)
        summary.files += len(found)
        n = 0
        for group in groups(found):
            for f in group if on_progress else ():
                n += 1
                on_progress(f"[{n}/{len(found)}] {f.agency}/{f.dataset}/{f.name}")
            for outcome in exchange_many(rt, group, actor):
                summary.add(outcome)
        summary.settling = settling(rt.config, rt.home, settle_seconds)
        if not (wait and summary.settling):
            break
        if on_progress:
            on_progress(f"waiting {min(summary.settling):.1f} s for {len(summary.settling)} file(s) to settle")
        sleep(min(summary.settling))
    if summary.files:
        stages.close_segment(rt)
    return summary
