"""The delivery manifest: what a recipient is told about a delivery, in the bytes the hub signs."""

from __future__ import annotations

import json
from typing import Any

from borderx import __version__
from borderx.delivery.layout import DATA_FILE, MANIFEST_FILE, SIGNATURE_FILE, DeliveryLocation

MANIFEST_VERSION = "1"
NAMESPACE = "borderx-manifest"
__all__ = ["DATA_FILE", "MANIFEST_FILE", "SIGNATURE_FILE", "DeliveryLocation", "MANIFEST_VERSION", "NAMESPACE",
           "build_manifest", "encode"]


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
) -> dict[str, Any]:
    """The manifest of one delivery. `provider_signature` (namespace, key fingerprint, the provider's SSH
    signature of the source extract) is there only when the provider signed it, so the manifest of an unsigned
    extract is byte for byte what it always was."""
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
            "key": location.key(DATA_FILE),
            "sha256": published_sha256,
            "size": published_size,
            "format": "csv",
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
    return manifest


def encode(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
