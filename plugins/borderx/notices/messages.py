"""What each notice says. A notice carries ids, names, counts, locations and outcomes: never an extract value,
a key, or a secret. Its text is what an e-mail reads; its facts, with the text, are the JSON a webhook gets.

| notice      | to        | says                                                                        |
|-------------|-----------|-----------------------------------------------------------------------------|
| accepted    | provider  | the receipt's text: the file, its hash, the deliveries made of it           |
| quarantined | provider  | the receipt's text: the file, its hash, every problem found                 |
| delivered   | recipient | where the delivery is in the bucket, and its manifest's summary             |
| run-failed  | operator  | which run or task failed, and the error                                     |
| outage      | operator  | the bucket or the time-stamping authority does not answer, since when       |
| overdue     | provider, operator | which extract was due when, and that none was taken in          |
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from borderx.text import printable

NOTICES = ("accepted", "quarantined", "delivered", "run-failed", "outage", "overdue")
AUDIENCES = ("provider", "recipient", "operator")
SUBJECT_PREFIX = "[borderx]"


@dataclass(frozen=True)
class Notice:
    """One notice. `key` says what it is about: the same key posted again is the same notice, sent once."""

    notice: str
    audience: str
    agency: str | None
    key: str
    subject: str
    text: str
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies the facts, which cost more than the rest of a post.
        return {"notice": self.notice, "audience": self.audience, "agency": self.agency, "key": self.key,
                "subject": self.subject, "text": self.text, "facts": dict(self.facts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Notice:
        return cls(**{k: data[k] for k in ("notice", "audience", "agency", "key", "subject", "text", "facts")})

    def webhook_body(self) -> bytes:
        return json.dumps({"source": "borderx", "notice": self.notice, "audience": self.audience,
                           "agency": self.agency, "subject": self.subject, "text": self.text, **self.facts},
                          sort_keys=True).encode("utf-8")


def receipt_notice(receipt, text: str) -> Notice:
    """To the provider: its file was accepted or quarantined, in the receipt's own words."""
    name = printable(receipt.name)
    what = {"accepted": "accepted", "quarantined": "QUARANTINED"}.get(receipt.outcome, receipt.outcome)
    return Notice(
        notice=receipt.outcome, audience="provider", agency=receipt.agency,
        key=f"{receipt.outcome}/{receipt.agency}/{receipt.dataset}/{receipt.sha256 or name}/{receipt.received_at}",
        subject=f"{SUBJECT_PREFIX} {receipt.dataset} extract {name} {what}",
        text=text,
        facts={"dataset": receipt.dataset, "file": name, "sha256": receipt.sha256, "outcome": receipt.outcome,
               "received_at": receipt.received_at,
               "reasons": [r.get("rule") for r in receipt.reasons],
               "deliveries": [d.get("delivery_id") for d in receipt.deliveries]},
    )


def delivery_notice(recipient: str, dataset: str, uri: str, manifest: dict[str, Any] | None,
                    delivery: dict[str, Any]) -> Notice:
    """To the recipient: a delivery is ready at `uri`. What is said of it comes from its signed manifest (or,
    should the bucket not answer, from the delivery's ids alone)."""
    summary = manifest_summary(manifest) if manifest else {
        "delivery_id": delivery["delivery_id"], "agreement": delivery["agreement"], "dataset": dataset}
    lines = [
        f"A new delivery for {recipient} is in the bucket:",
        f"  {uri}",
        "",
        *(f"{k}: {v}" for k, v in summary.items()),
        "",
        "Fetch, verify and decrypt it with",
        f"  borderx fetch --recipient {recipient} --identity AGE_IDENTITY --hub-key allowed_signers --out DIR",
        "or with any S3 client, `ssh-keygen -Y verify -n borderx-manifest` and `age -d`.",
        "",
    ]
    return Notice(
        notice="delivered", audience="recipient", agency=recipient, key=f"delivered/{delivery['delivery_id']}",
        subject=f"{SUBJECT_PREFIX} new delivery of {dataset} under {delivery['agreement']}",
        text="\n".join(lines), facts={"location": uri, **summary},
    )


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a recipient is told of a delivery before fetching it: counts, names and hashes from its manifest."""
    suppressed = manifest.get("suppressed") or {}
    validation = manifest.get("validation") or {}
    published = manifest.get("published") or {}
    return {
        "delivery_id": manifest.get("delivery_id"), "agreement": manifest.get("agreement"),
        "provider": manifest.get("provider"), "dataset": manifest.get("dataset"),
        "schema_version": manifest.get("schema_version"), "rows": manifest.get("rows"),
        "columns": ", ".join(manifest.get("columns") or []),
        "suppressed_rows": suppressed.get("rows", 0), "validation_success": validation.get("success"),
        "published_sha256": published.get("sha256"), "size": published.get("size"),
        "created_at": manifest.get("created_at"),
    }


def run_failed_notice(where: str, error: BaseException | str, at: str) -> Notice:
    """To the operators: a run or task failed. Error messages of the hub name files and rules, never values."""
    problem = printable(error if isinstance(error, str) else f"{type(error).__name__}: {error}")
    return Notice(
        notice="run-failed", audience="operator", agency=None, key=f"run-failed/{where}/{at}",
        subject=f"{SUBJECT_PREFIX} failed: {printable(where)}",
        text=f"{printable(where)} failed at {at}:\n  {problem}\n\n"
             "Its log in Airflow, or `borderx run -v`, says more.\n",
        facts={"where": where, "problem": problem, "at": at},
    )


def outage_notice(service: str, problem: str, since: str) -> Notice:
    """To the operators: the bucket (s3) or the time-stamping authority (tsa) does not answer."""
    name = {"s3": "the S3 bucket", "tsa": "the time-stamping authority"}.get(service, service)
    then = {"s3": "Deliveries wait in intake and are published once the bucket answers again.",
            "tsa": "Signed audit heads wait for their time stamps; publishing stops once they have waited longer "
                   "than audit.acceptable_timestamp_failure."}.get(service, "")
    return Notice(
        notice="outage", audience="operator", agency=None, key=f"outage/{service}/{since}",
        subject=f"{SUBJECT_PREFIX} {name} does not answer",
        text=f"{name[0].upper()}{name[1:]} does not answer (since {since}):\n  {printable(problem)}\n\n{then}\n",
        facts={"service": service, "problem": printable(problem), "since": since},
    )


def overdue_notice(audience: str, agency: str | None, late) -> Notice:
    """To the provider and to the operators: an extract that was due was not taken in."""
    text = (f"No {late.dataset} extract from {late.provider} was taken in between {late.period_start} and "
            f"{late.late_after}; it was due by {late.due_by} under agreement {late.agreement}.\n\n"
            + ("Please drop it into the intake folder (or upload it) as usual; the receipt says when it arrived.\n"
               if audience == "provider" else "`borderx due` lists every extract due, received or late.\n"))
    return Notice(
        notice="overdue", audience=audience, agency=agency,
        key=f"overdue/{audience}/{late.provider}/{late.dataset}/{late.due_by}",
        subject=f"{SUBJECT_PREFIX} {late.dataset} extract of {late.provider} overdue (due {late.due_by[:10]})",
        text=text,
        facts={"provider": late.provider, "dataset": late.dataset, "agreement": late.agreement,
               "period_start": late.period_start, "due_by": late.due_by, "late_after": late.late_after},
    )
