"""Who gets what: the agreements that apply to an extract, and each recipient's share of it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field

from borderx.config.models import DeploymentConfig


@dataclass(frozen=True)
class DeliveryPlan:
    """One recipient's delivery of one extract under one agreement. Plain fields, so it travels as an XCom."""

    delivery_id: str
    agreement: str
    recipient: str
    provider: str
    dataset: str
    columns: list[str]
    min_cell_size: int
    count_column: str | None
    age_recipients: list[str]
    format: str = "csv"  # of the delivery: csv or parquet, as the recipient's terms say
    # The dataset's type of each column delivered, and of the count column (see Dataset.column_types).
    column_types: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DeliveryPlan:
        return cls(**data)


@dataclass(frozen=True)
class Blocked:
    agreement: str
    recipient: str | None
    rule: str


@dataclass(frozen=True)
class Decision:
    plans: list[DeliveryPlan]
    blocked: list[Blocked]
    min_cell_size: int
    reject_small_cells: bool


def delivery_id(agreement: str, recipient: str, dataset: str, source_sha256: str) -> str:
    """Same inputs, same id: a re-run finds the delivery it already made instead of making another."""
    material = "\x1f".join((agreement, recipient, dataset, source_sha256)).encode()
    return hashlib.sha256(material).hexdigest()[:32]


def decide(config: DeploymentConfig, provider: str, dataset: str, source_sha256: str, today: dt.date) -> Decision:
    """Deliveries the agreements in force allow, and why the others were stopped.

    Where several agreements cover one extract the strictest small-cell rule applies to all of them:
    the largest min_cell_size, and reject over suppress.
    """
    plans: list[DeliveryPlan] = []
    blocked: list[Blocked] = []
    applicable = []
    ds = config.datasets[dataset]
    for agreement in sorted(config.agreements_covering(provider, dataset), key=lambda a: a.id):
        if agreement.status.value != "active":
            blocked.append(Blocked(agreement.id, None, f"agreement status is {agreement.status.value}"))
            continue
        if not agreement.in_force_on(today):
            blocked.append(Blocked(agreement.id, None, f"outside validity {agreement.valid_from} to {agreement.valid_to}"))
            continue
        for terms in agreement.recipients:
            if terms.agency == provider:
                continue
            keys = config.agencies[terms.agency].usable_age_keys(today, post_quantum=terms.post_quantum)
            if not keys:
                kind = "post-quantum " if terms.post_quantum else ""
                blocked.append(Blocked(agreement.id, terms.agency, f"recipient has no valid, unrevoked {kind}age key"))
                continue
            applicable.append(terms)
            plans.append(
                DeliveryPlan(
                    delivery_id=delivery_id(agreement.id, terms.agency, dataset, source_sha256),
                    agreement=agreement.id,
                    recipient=terms.agency,
                    provider=provider,
                    dataset=dataset,
                    columns=[c for c in ds.columns if c in terms.columns],
                    min_cell_size=terms.min_cell_size,
                    count_column=ds.count_column,
                    age_recipients=[k.key for k in keys],
                    format=terms.format,
                    column_types={c: ds.type_of(c) for c in ds.columns},
                )
            )
    k = max((t.min_cell_size for t in applicable), default=1)
    reject = any(t.small_cells == "reject" and t.min_cell_size > 1 for t in applicable)
    plans = [DeliveryPlan(**{**asdict(p), "min_cell_size": k}) for p in plans]
    return Decision(plans, blocked, k, reject)
