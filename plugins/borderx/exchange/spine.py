"""One extract through every stage, and one pass over the intake folders as `borderx run --once` makes it.

receive -> validate (suite, gate, agreements) -> quarantine, or per recipient: deliver (seal, publish)
-> finish (archive). `borderx run`, the exchange DAG's one-task path and its mapped tasks all go through
these stages; nothing else orchestrates them. Many files at once (`exchange_many`) go through the same stages
in groups: taken and hashed, small ones validated together, claimed and checked in order, then delivered on a
few threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator

from borderx import notices
from borderx.bucket.publish import ensure_bucket
from borderx.exchange import stages
from borderx.exchange.handoff import Accepted, Exchanged, Gone, Quarantined, Received
from borderx.exchange.runtime import Runtime
from borderx.intake import Extract, IntakeFile, settling

CLI_ACTOR = {"hub": True, "via": "borderx run"}


def exchange_one(rt: Runtime, intake_file: IntakeFile, actor: dict | None = None) -> Exchanged | Quarantined | Gone:
    """Every stage of one intake file in turn. A file that changed while it was delivered is quarantined, and
    no delivery after that one is made. The bucket must exist (`ensure_bucket`)."""
    return exchange_received(rt, stages.receive(rt, intake_file, actor), actor)


def exchange_many(rt: Runtime, intake_files: list[IntakeFile], actor: dict | None = None, *,
                  threads: int | None = None) -> list[Exchanged | Quarantined | Gone | Exception]:
    """Every stage of each file, as `exchange_one` takes it, in three steps: the files are taken and hashed and
    the small ones of a dataset validated together (`stages.validate_suites`); then each is claimed and checked,
    in order; then the accepted ones are delivered and archived on `threads` threads (S3 requests and the
    trail's fsyncs wait, they do not compute). A copy of content earlier in the list is claimed last, once the
    first is done, and is quarantined as a duplicate, as it would be one by one.

    Returns each file's outcome, in order, or the exception its exchange raised: one file's failure does not
    stop the others.
    """
    with contextlib.closing(exchange_groups(rt, [intake_files], actor, threads=threads)) as each:
        return next(each)


def exchange_groups(rt: Runtime, file_groups: list[list[IntakeFile]], actor: dict | None = None, *,
                    threads: int | None = None,
                    on_group: Callable[[list[IntakeFile]], None] | None = None) -> Iterator[list]:
    """`exchange_many` of each group in turn, yielding each group's outcomes. The next group is taken, hashed and
    validated while the deliveries of the one before wait on S3 and the disk; its files are claimed only once
    those are done, and content still being delivered is left out of its shared validation, so each file ends
    as it would with the groups one after the other. `on_group` hears of each group as it is begun."""
    with ThreadPoolExecutor(max_workers=threads or DELIVERY_THREADS) as pool:
        ahead = _taken_and_validated(rt, file_groups[0], actor, set(), on_group) if file_groups else None
        for n in range(len(file_groups)):
            taken, outcomes = ahead
            done, copies, sent = _claimed_and_sent(rt, taken, outcomes, actor, pool)
            in_flight = {done[i].extract.sha256 for i in sent}
            ahead = (_taken_and_validated(rt, file_groups[n + 1], actor, in_flight, on_group)
                     if n + 1 < len(file_groups) else None)
            for i, future in sent.items():
                done[i] = future.result()
            for i in copies:
                done[i] = _caught(exchange_received, rt, _caught(stages.claim, rt, taken[i], actor), actor)
            yield done


def _taken_and_validated(rt: Runtime, files: list[IntakeFile], actor: dict | None, in_flight: set[str],
                         on_group: Callable[[list[IntakeFile]], None] | None) -> tuple[list, dict]:
    if on_group:
        on_group(files)
    taken = [_caught(stages.take_and_hash, rt, f, actor) for f in files]
    outcomes = stages.validate_suites(rt, taken, leave_out=in_flight)
    return taken, outcomes


def _claimed_and_sent(rt: Runtime, taken: list, outcomes: dict, actor: dict | None,
                      pool: ThreadPoolExecutor) -> tuple[list, list[int], dict[int, Future]]:
    """Each file claimed and checked in order, and the accepted ones handed to `pool` for delivery; a copy of
    content earlier in the group is left for later (its index is returned)."""
    done: list = list(taken)
    seen: set[str] = set()
    copies = []
    # The group's Received and Validated events reach the disk together, before any delivery of them.
    with rt.trail.grouped():
        for n, extract in enumerate(taken):
            if isinstance(extract, Extract) and extract.sha256 in seen:
                copies.append(n)
            elif isinstance(extract, Extract):
                seen.add(extract.sha256)
                done[n] = _caught(_claimed_and_checked, rt, extract, actor, outcomes.get(extract.path))
    sent = {n: pool.submit(_caught, delivered, rt, a, actor) for n, a in enumerate(done) if isinstance(a, Accepted)}
    return done, copies, sent


def _claimed_and_checked(rt: Runtime, extract: Extract, actor: dict | None, outcome) -> Accepted | Quarantined | Gone:
    return stages.validate(rt, stages.claim(rt, extract, actor), actor, outcome)


def _caught(call: Callable, *args):
    """call(*args), or the exception it raised; an exception among the arguments (an earlier step's) is passed
    on without calling."""
    if any(isinstance(a, Exception) for a in args):
        return next(a for a in args if isinstance(a, Exception))
    try:
        return call(*args)
    except Exception as exc:
        return exc


def exchange_received(rt: Runtime, received: Received | Quarantined | Gone, actor: dict | None = None,
                      outcome=None) -> Exchanged | Quarantined | Gone:
    accepted = stages.validate(rt, received, actor, outcome)
    if not isinstance(accepted, Accepted):
        return accepted
    return delivered(rt, accepted, actor)


def delivered(rt: Runtime, accepted: Accepted, actor: dict | None = None) -> Exchanged | Quarantined:
    """Every delivery of an accepted extract, then the extract archived. A file that changed while it was
    delivered is quarantined, and no delivery after that one is made."""
    # One fsync for the events of each step that reports something done (stages commit before the ledger
    # settles and before a receipt), rather than one for every event.
    with rt.trail.grouped():
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
# Accepted files of a group delivered at once: their time goes to waiting on S3 and on the disk.
DELIVERY_THREADS = int(os.environ.get("BORDERX_DELIVERY_THREADS", "4"))


def groups(found: list[IntakeFile], max_files: int | None = None) -> list[list[IntakeFile]]:
    """The files in the order found, cut into groups of one dataset; a large file is a group of its own."""
    max_files = max_files or GROUP_FILES
    groups: list[list[IntakeFile]] = []
    held = 0
    for f in found:
        last = groups[-1] if groups else None
        if (last is None or len(last) >= max_files or held + f.size > GROUP_BYTES
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
    notices: dict = field(default_factory=dict)
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
    try:
        while True:
            found = stages.discover(rt, settle_seconds)
            if found and not summary.files:
                ensure_bucket(rt.s3, rt.target.bucket)
            summary.files += len(found)
            counted = itertools.count(1)

            def begun(group: list[IntakeFile]) -> None:
                for f in group:
                    on_progress(f"[{next(counted)}/{len(found)}] {f.agency}/{f.dataset}/{f.name}")

            each_group = exchange_groups(rt, groups(found), actor, on_group=begun if on_progress else None)
            with contextlib.closing(each_group):
                for outcomes in each_group:
                    for outcome in outcomes:
                        if not isinstance(outcome, Exception):
                            summary.add(outcome)
                    failed = next((o for o in outcomes if isinstance(o, Exception)), None)
                    if failed is not None:
                        raise failed
            summary.settling = settling(rt.config, rt.home, settle_seconds)
            if not wait or not (found or summary.settling):
                break
            # Waiting: files that settled while this pass worked are found by the next one.
            if summary.settling:
                if on_progress:
                    on_progress(f"waiting {min(summary.settling):.1f} s for {len(summary.settling)} file(s) to settle")
                sleep(min(summary.settling))
        if summary.files:
            stages.close_segment(rt)
    except Exception as exc:
        notices.run_failed(rt, actor.get("via", "borderx run"), exc)
        notices.after_run(rt, bucket_answered=False)
        raise
    summary.notices = notices.after_run(rt).to_dict()
    return summary
