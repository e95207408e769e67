"""The delivery manifest: what a recipient is told about a delivery, in the bytes the hub signs."""

from __future__ import annotations

import json
from typing import Any

from borderx import __version__
from borderx.delivery.layout import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation, data_file

MANIFEST_VERSION = "1"
NAMESPACE = "borderx-manifest"
__all__ = ["DATA_FILE", "MANIFEST_FILE", "SIGNATURE_FILE", "DeliveryLocation", "MANIFEST_VERSION", "NAMESPACE",
           "build_manifest", "data_file", "encode", "published_file"]


def build_manifest(
    *,
    location: DeliveryLocation,
    provider: str,
    schema_version: str,
    rows: int,
    columns: list[str],
    source_sha256: str,
    source_name: str,
    published_sha256: str,
    published_size: int,
    suppressed: dict[str, Any],
    validation: dict[str, Any],
    recipient_keys: list[str],
    hub_key_fingerprint: str,
    airflow: dict[str, Any] | None,
    created_at: str,
    provider_signature: dict[str, Any] | None = None,
    data_format: str = "csv",
    arrow_schema: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The manifest of one delivery. `provider_signature` (namespace, key fingerprint, the provider's SSH
    signature of the source extract) is there only when the provider signed it, so the manifest of an unsigned
    extract is byte for byte what it always was. Likewise `published.arrow_schema` (each column's name and
    Arrow type, as `pyarrow.parquet.read_schema` gives them) is there only in a Parquet delivery."""
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "delivery_id": location.delivery_id,
        "agreement": location.agreement,
        "provider": provider,
        "recipient": location.recipient,
        "dataset": location.dataset,
        "schema_version": schema_version,
        "rows": rows,
        "columns": columns,
        "source": {"sha256": source_sha256, "name": source_name},
        "published": {
            "key": location.key(data_file(data_format)),
            "sha256": published_sha256,
            "size": published_size,
            "format": data_format,
            "encryption": "age-encryption.org/v1",
        },
        "suppressed": suppressed,
        "validation": validation,
        "keys": {"recipients": recipient_keys, "hub_signing_key": hub_key_fingerprint},
        "airflow": airflow,
        "software": {"name": "borderx", "version": __version__},
        "created_at": created_at,
    }
    if provider_signature:
        manifest["provider_signature"] = provider_signature
    if data_format == "parquet":
        manifest["published"]["arrow_schema"] = arrow_schema
    return manifest


def published_file(manifest: dict[str, Any]) -> str:
    """The name of the data file a manifest describes (data.csv.age, data.parquet.age): the last part of its
    published.key, which the recipient's checks hold to the delivery's own place."""
    return str(manifest["published"]["key"]).rpartition("/")[2]


def encode(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
