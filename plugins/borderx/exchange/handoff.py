"""What one stage hands the next. Each type turns into a dict and back only where Airflow stores it as an XCom.

receive -> Received | Quarantined | Gone
validate -> Accepted | Quarantined | Gone
deliver (one per plan of an Accepted) -> DeliveryResult
finish -> Finished
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from borderx.intake import Extract, IntakeFile
from borderx.policy import DeliveryPlan
from borderx.quarantine import Reason


def intake_file_from_dict(data: dict) -> IntakeFile:
    return IntakeFile(**{k: data[k] for k in ("agency", "dataset", "path", "name", "size")})


@dataclass(frozen=True)
class Gone:
    """Another run (or process) took the file first, or it went away while it was read."""

    name: str
    status = "gone"

    def to_dict(self) -> dict:
        return {"status": self.status, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict) -> Gone:
        return cls(data["name"])


@dataclass(frozen=True)
class Quarantined:
    agency: str
    dataset: str
    name: str
    file: str
    reasons: tuple[Reason, ...]
    status = "quarantined"

    @property
    def report(self) -> str:
        return self.file + ".report.txt"

    def to_dict(self) -> dict:
        return {"status": self.status, "agency": self.agency, "dataset": self.dataset, "name": self.name,
                "file": self.file, "report": self.report, "reasons": [r.to_dict() for r in self.reasons]}

    @classmethod
    def from_dict(cls, data: dict) -> Quarantined:
        return cls(data["agency"], data["dataset"], data["name"], data["file"],
                   tuple(Reason(**r) for r in data["reasons"]))


@dataclass(frozen=True)
class Received:
    extract: Extract
    # Claimed in the ledger for the first time by this process: no earlier attempt can have published any of
    # it. Not handed on between tasks (a retried task may follow an attempt that published), nor part of the value.
    first_claim: bool = field(default=False, compare=False)
    status = "received"

    def to_dict(self) -> dict:
        return {"status": self.status, "extract": self.extract.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> Received:
        return cls(Extract.from_dict(data["extract"]))


@dataclass(frozen=True)
class SmallCells:
    """Rows whose count is under the strictest applicable minimum cell size, and what they add up to."""

    min_cell_size: int
    rows: int
    count: int


@dataclass(frozen=True)
class Accepted:
    """An extract that passed its suite and the agreements' rules, with one plan per recipient's delivery."""

    extract: Extract
    # The suite's verdict as the manifest carries it: suite, success, statistics, rows.
    validation: dict[str, Any]
    plans: tuple[DeliveryPlan, ...]
    small_cells: SmallCells
    # What the check of the provider's signature found (borderx.intake.signatures.Verdict as a dict).
    signature: dict[str, Any] | None = None
    # As Received.first_claim: then no delivery of it can be in the bucket yet, and none is looked for.
    first_claim: bool = field(default=False, compare=False)
    # The extract's rows (borderx.policy.minimise.Rows), parsed once in this process for every cut of it; not
    # handed on between tasks (each task parses what it cuts), nor part of the value.
    rows: Any = field(default=None, compare=False, repr=False)
    status = "accepted"

    def to_dict(self) -> dict:
        return {"status": self.status, "extract": self.extract.to_dict(), "validation": self.validation,
                "plans": [p.to_dict() for p in self.plans], "small_cells": vars(self.small_cells).copy(),
                "signature": self.signature}

    @classmethod
    def from_dict(cls, data: dict) -> Accepted:
        return cls(Extract.from_dict(data["extract"]), data["validation"],
                   tuple(DeliveryPlan.from_dict(p) for p in data["plans"]), SmallCells(**data["small_cells"]),
                   data.get("signature"))


@dataclass(frozen=True)
class DeliveryResult:
    """One recipient's delivery: published, already there, or not made because the source changed (then the
    extract went to quarantine, by this delivery or by one of its siblings: `quarantined` says where, if known)."""

    delivery_id: str
    agreement: str
    recipient: str
    dataset: str
    prefix: str
    status: str  # published, already-published, quarantined
    rows: int | None = None
    suppressed_rows: int | None = None
    quarantined: Quarantined | None = None

    def to_dict(self) -> dict:
        data = {"status": self.status, "delivery_id": self.delivery_id, "agreement": self.agreement,
                "recipient": self.recipient, "dataset": self.dataset, "prefix": self.prefix}
        if self.status == "published":
            data.update(rows=self.rows, suppressed_rows=self.suppressed_rows)
        if self.quarantined is not None:
            data["quarantined"] = self.quarantined.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DeliveryResult:
        held = data.get("quarantined")
        return cls(data["delivery_id"], data["agreement"], data["recipient"], data["dataset"], data["prefix"],
                   data["status"], data.get("rows"), data.get("suppressed_rows"),
                   Quarantined.from_dict(held) if held else None)


@dataclass(frozen=True)
class DeliveryJob:
    """One mapped delivery task's input: the accepted extract and the plan of one recipient."""

    accepted: Accepted
    plan: DeliveryPlan

    def to_dict(self) -> dict:
        return {"accepted": self.accepted.to_dict(), "plan": self.plan.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> DeliveryJob:
        return cls(Accepted.from_dict(data["accepted"]), DeliveryPlan.from_dict(data["plan"]))


@dataclass(frozen=True)
class Finished:
    """An accepted extract at its end: archived once every delivery was made, or left to quarantine."""

    extract: str
    archived: str | None
    deliveries: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return {"extract": self.extract, "archived": self.archived, "deliveries": list(self.deliveries)}

    @classmethod
    def from_dict(cls, data: dict) -> Finished:
        return cls(data["extract"], data["archived"], tuple(data.get("deliveries", ())))


@dataclass(frozen=True)
class Exchanged:
    """An extract taken through every stage: accepted, delivered to each recipient, archived."""

    accepted: Accepted
    results: tuple[DeliveryResult, ...]
    status = "exchanged"

    def to_dict(self) -> dict:
        return {**self.accepted.to_dict(), "status": self.status, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict) -> Exchanged:
        return cls(Accepted.from_dict(data), tuple(DeliveryResult.from_dict(r) for r in data["results"]))


_BY_STATUS = {t.status: t for t in (Received, Accepted, Quarantined, Gone, Exchanged)}


def outcome_from_dict(data: dict):
    """The stage outcome an XCom holds, by its status."""
    return _BY_STATUS[data["status"]].from_dict(data)
