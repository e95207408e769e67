"""Sealing one recipient's delivery in the work folder: minimise -> age -> hash -> manifest -> sign.

The minimised rows go straight into the age writer, whose output is hashed on its way to the work file: no
plaintext touches the disk, and the file to publish is never read back to hash it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from borderx import tables
from borderx.crypto import age, sshsig
from borderx.delivery import manifest as mf
from borderx.delivery.layout import DeliveryLocation
from borderx.intake import Extract
from borderx.policy import DeliveryPlan
from borderx.policy.minimise import MinimiseResult, Source, minimise


class HashingWriter:
    """Passes writes through to a file while hashing them, so the published file is never re-read."""

    def __init__(self, fh):
        self._fh = fh
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


@dataclass(frozen=True)
class Encrypted:
    """A recipient's cut of an extract, encrypted to its keys in the work folder."""

    path: Path
    cut: MinimiseResult
    sha256: str
    size: int


@dataclass(frozen=True)
class SignedManifest:
    body: bytes
    signature: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def encrypt_minimised(source: Source, work: Path, plan: DeliveryPlan) -> Encrypted:
    """Writes the columns `plan` allows of `source` (the extract's path, or its Rows), small cells left out, as
    age ciphertext to `work` (mode 0600)."""
    recipients = [age.parse_recipient(k) for k in plan.age_recipients]
    fd = os.open(work, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw:
        hashing = HashingWriter(raw)
        with age.encrypting_writer(hashing, recipients) as plaintext_sink:
            cut = minimise(
                source, plaintext_sink, plan.columns, count_column=plan.count_column, min_cell_size=plan.min_cell_size,
                column_types=_types(plan), out_format=plan.format,
            )
    return Encrypted(work, cut, hashing.digest.hexdigest(), work.stat().st_size)


def _types(plan: DeliveryPlan) -> dict[str, str]:
    # A plan made before datasets had types (an XCom of an earlier run) still delivers counts as integers.
    if plan.column_types:
        return plan.column_types
    return {plan.count_column: "integer"} if plan.count_column else {}


def arrow_schema(plan: DeliveryPlan) -> list[dict[str, str]]:
    """Each delivered column's name and Arrow type, as the manifest of a Parquet delivery lists them."""
    schema = tables.arrow_schema(plan.columns, _types(plan))
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def suppressed(plan: DeliveryPlan, cut: MinimiseResult) -> dict[str, Any]:
    """What the small-cell rule left out, as the manifest and the audit trail both count it."""
    return {"rows": cut.suppressed_rows, "count": cut.suppressed_count, "count_column": plan.count_column,
            "min_cell_size": plan.min_cell_size}


def sign_manifest(
    *,
    location: DeliveryLocation,
    plan: DeliveryPlan,
    extract: Extract,
    encrypted: Encrypted,
    schema_version: str,
    validation: dict[str, Any],
    signing_key,
    hub_fingerprint: str,
    airflow: dict[str, Any] | None,
    created_at: str,
    provider_signature: dict[str, Any] | None = None,
) -> SignedManifest:
    manifest = mf.build_manifest(
        location=location,
        provider=plan.provider,
        schema_version=schema_version,
        rows=encrypted.cut.rows_out,
        columns=plan.columns,
        source_sha256=extract.sha256,
        source_name=extract.name,
        published_sha256=encrypted.sha256,
        published_size=encrypted.size,
        suppressed=suppressed(plan, encrypted.cut),
        validation=validation,
        recipient_keys=plan.age_recipients,
        hub_key_fingerprint=hub_fingerprint,
        airflow=airflow,
        created_at=created_at,
        provider_signature=provider_signature,
        data_format=plan.format,
        arrow_schema=arrow_schema(plan) if plan.format == "parquet" else None,
    )
    body = mf.encode(manifest)
    return SignedManifest(body, sshsig.sign(signing_key, body, mf.NAMESPACE).encode())
