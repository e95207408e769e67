"""The exchange of one extract: its stages, the spine that runs them in turn, and what they hand each other.

runtime    the home's config and clients, opened once per process or task (opening writes nothing)
stages     receive, validate, deliver, finish, close_segment
spine      exchange_one (one extract through every stage) and run_once (`borderx run --once`)
handoff    the typed outcome of each stage, and its dict form for Airflow's XComs
"""

from borderx.exchange.handoff import (
    Accepted, DeliveryJob, DeliveryResult, Exchanged, Finished, Gone, Quarantined, Received, SmallCells,
)
from borderx.exchange.runtime import Runtime
from borderx.exchange.spine import CLI_ACTOR, RunSummary, exchange_one, run_once
from borderx.exchange.stages import (
    announced_waiting, close_segment, deliver, discover, finish, receive, validate,
)
from borderx.errors import NoSpaceError, TransientError, is_transient

__all__ = [
    "Accepted", "CLI_ACTOR", "DeliveryJob", "DeliveryResult", "Exchanged", "Finished", "Gone", "NoSpaceError",
    "Quarantined", "Received", "RunSummary", "Runtime", "SmallCells", "TransientError", "announced_waiting",
    "close_segment", "deliver", "discover", "exchange_one", "finish", "is_transient", "receive", "run_once",
    "validate",
]
