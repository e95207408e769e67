"""The recipient's side: finding, downloading, verifying and decrypting deliveries.

A recipient trusts nothing in the bucket but the hub's signature: the manifest must carry it, the
manifest must describe the very place it was found in, the data file must have the hash the manifest
states, and the plaintext must hold the rows the manifest counts. Plaintext reaches its final place
only after every one of those checks passed, and never in part.

The modules follow a delivery's way: :mod:`.keys` (hub keys, identities, settings), :mod:`.listing`
(what the bucket holds for the recipient), :mod:`.remote` (reading one delivery), :mod:`.checks`
(signature, manifest, data hash, row count), :mod:`.staging` (owner-only local files),
:mod:`.progress`, :mod:`.record` (what was fetched into a folder), :mod:`.fetch` (all new deliveries),
:mod:`.watch` and :mod:`.stopping` (new deliveries as they appear, until stopped) and :mod:`.single` (one delivery).
"""

from __future__ import annotations

from borderx.recipient.checks import (
    DATA_HASH,
    DECRYPT,
    DOWNLOAD,
    MANIFEST_MISMATCH,
    REVOKED,
    ROW_COUNT,
    SIGNATURE,
    DeliveryRefused,
    RecordCounter,
    Verified,
    check_data,
    decrypt_checked,
    verify_manifest,
)
from borderx.errors import RecipientError, RecipientUsageError
from borderx.recipient.fetch import (
    FetchReport,
    Outcome,
    cleanup_on_terminate,
    fetch,
    fetch_one,
    print_outcome,
    print_summary,
)
from borderx.recipient.keys import hub_keys, load_identities, parse_hub_keys, read_settings, resolve_target
from borderx.bucket.objects import parse_location
from borderx.recipient.listing import check_name, list_deliveries, list_revoked, local_folder
from borderx.recipient.notices import QueueNotices
from borderx.recipient.progress import Progress
from borderx.recipient.remote import MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, verify_remote
from borderx.recipient.single import (
    Source,
    decrypt_source,
    describe,
    parse_source,
    resolve_source,
    verify_local,
    verify_source,
)
from borderx.recipient.record import RECORD_FILE, FetchedRecord
from borderx.recipient.staging import PLAINTEXT_FILE, TEMP_PREFIX
from borderx.recipient.stopping import StopOnSignal
from borderx.recipient.watch import Pace, WatchReport, watch

__all__ = [
    "REVOKED", "SIGNATURE", "MANIFEST_MISMATCH", "DATA_HASH", "DECRYPT", "ROW_COUNT", "DOWNLOAD",
    "DeliveryRefused", "RecipientError", "RecipientUsageError", "FetchReport", "Outcome", "Progress",
    "RecordCounter", "Source", "Verified", "check_data", "decrypt_checked", "decrypt_source", "fetch", "fetch_one",
    "hub_keys", "list_deliveries", "load_identities", "local_folder", "parse_hub_keys", "parse_location",
    "parse_source", "print_outcome", "print_summary", "resolve_source", "read_settings", "resolve_target", "verify_manifest", "verify_remote",
    "verify_source", "RECORD_FILE", "FetchedRecord", "Pace", "QueueNotices", "StopOnSignal", "WatchReport", "watch",
]
