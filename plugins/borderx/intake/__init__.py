"""Intake: finding complete extracts in the intake folders, taking them for one run, hashing them, and
remembering what was seen.

    finding   which names count, when a file is whole, the scan of every intake folder
    watch     the folder watch behind the intake trigger, and the store of what it announced
    taking    the hand-off: a file moved aside for one run, and what a dead run left behind
    entries   reading a taken file safely: links and special files refused, its hash, changes noticed
    ledger    what was taken in, by content hash
    origin    location codes that belong to another agency
    signatures  a provider's NAME.sig, checked against the agency's signing keys
    receipts  the hub-signed receipt of each file taken in, where its agency reads it
    refusals  linked folders and names that cannot be copied in, refused and recorded once
    sources   copying extracts in from an agency's pull source or S3 uploads

The names below are what the other stages use.
"""

from borderx.intake.entries import (
    HASH_BLOCK, ChangedWhileRead, Extract, UnsafeEntry, check_entry, check_unchanged, fingerprint, hash_taken,
    sha256_file,
)
from borderx.intake.finding import (
    IntakeFile, candidate_files, intake_file_for, intake_file_from_event, is_candidate_name, is_complete,
    provided_datasets, scan, settling,
)
from borderx.intake.ledger import Ledger
from borderx.intake.origin import ForeignCodes, foreign_codes
from borderx.intake.taking import INFLIGHT_DIR, LIVE_RUN_STATES, Owner, adoptable, take

__all__ = [
    "HASH_BLOCK", "INFLIGHT_DIR", "LIVE_RUN_STATES", "ChangedWhileRead", "Extract", "ForeignCodes", "IntakeFile",
    "Ledger", "Owner", "UnsafeEntry", "adoptable", "candidate_files", "check_entry", "check_unchanged",
    "fingerprint", "foreign_codes", "hash_taken", "intake_file_for", "intake_file_from_event", "is_candidate_name",
    "is_complete", "provided_datasets", "scan", "settling", "sha256_file", "take",
]
