"""Uniqueness across blocks: each row's key reduced to two keyed 64-bit hashes, duplicates found
bucket by bucket, in memory that does not grow with the file.

A batch sees only its own block, so GX cannot check that a column, or a compound key, is unique
over a file read in blocks; this module does, from what each block's validation hashed.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Iterator

from borderx.validation.outcome import MAX_ROWS_REPORTED

if TYPE_CHECKING:
    import numpy

# Key hashes held in memory before they spill to disk (24 bytes each).
SPILL_RECORDS = 2_000_000

# What an empty cell hashes to.
_NULL_HASH = 0x9E3779B97F4A7C15


def key_hashes(batch, positions: tuple[int, ...], ignore_row_if: str, keys: tuple[str, str]):
    """Two 64-bit hashes of each row's key, and which rows they are (None: all of them).

    keys: secrets drawn per validation and never stored, so that spilled hashes are no
    dictionary of the (low-entropy) keys that went into them.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    n = batch.num_rows
    h1 = np.full(n, 0x345678, dtype=np.uint64)
    h2 = h1.copy()
    nulls = np.zeros(n, dtype=np.uint8)
    multiplier = np.uint64(1000003)
    for step, position in enumerate(positions):
        encoded = pc.dictionary_encode(batch.column(position))
        values = encoded.dictionary.to_numpy(zero_copy_only=False)
        codes = encoded.indices
        if codes.null_count:
            nulls += np.asarray(codes.is_null(), dtype=np.uint8)
            codes = pc.fill_null(codes, len(values))
        codes = codes.to_numpy(zero_copy_only=False)
        for h, key in ((h1, keys[0]), (h2, keys[1])):
            table = np.empty(len(values) + 1, dtype=np.uint64)
            if len(values):
                table[:-1] = pd.util.hash_array(values, hash_key=key, categorize=False)
            table[-1] = _NULL_HASH
            h ^= table[codes]
            h *= multiplier
        # The multiplier changes with the position, so (a, b) and (b, a) differ.
        multiplier += np.uint64(82520 + 2 * (len(positions) - step))
    if ignore_row_if == "all_values_are_missing":
        keep = nulls < len(positions)
    elif ignore_row_if == "any_value_is_missing":
        keep = nulls == 0
    else:
        return h1, h2, None
    if keep.all():
        return h1, h2, None
    return h1[keep], h2[keep], np.flatnonzero(keep).astype(np.uint64)


def bucketed(h1, h2, where, bits: int):
    """The block's hashed keys with their row numbers in the block, grouped by the top bits of h1.

    Done where blocks are validated in parallel, so that spilling to disk is only writing.
    Returns (bounds, h1, h2, rows): bucket b is [bounds[b], bounds[b + 1]).
    """
    import numpy as np

    rows = np.arange(len(h1), dtype=np.uint64) if where is None else where
    buckets = (h1 >> np.uint64(64 - bits)).astype(np.uint16)
    order = np.argsort(buckets, kind="stable")
    bounds = np.searchsorted(buckets[order], np.arange((1 << bits) + 1))
    return bounds, h1[order], h2[order], rows[order]


def bucket_bits(file_size: int) -> int:
    # At least about 32 bytes of CSV per row and 24 bytes per hashed key: at most about 32 MiB
    # of keys per bucket, whatever the file's size, within 16 to 4096 buckets.
    keys = max(1, file_size // 32)
    return max(4, min(12, math.ceil(math.log2(max(2, keys * 24 / (32 << 20))))))


class DuplicateFinder:
    """Rows whose key appears more than once, in memory that does not grow with the file.

    Hashed keys are held until SPILL_RECORDS, then appended to one set of files per bucket (the
    top bits of h1); equal keys share a bucket, so each bucket is checked on its own.
    """

    def __init__(self, bits: int):
        self._bits = bits
        self._parts: list = []
        self._held = 0
        self._kept = 0
        self._dir: str | None = None

    def add(self, part) -> None:
        self._parts.append(part)
        self._held += len(part[1])
        self._kept += len(part[1])
        if self._held >= SPILL_RECORDS:
            self._spill()

    @property
    def considered(self) -> int:
        return self._kept

    def _spill(self) -> None:
        if not self._parts:
            return
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="borderx-keys-")
        for bucket in range(1 << self._bits):
            slices = [
                (h1[low:high], h2[low:high], rows[low:high])
                for bounds, h1, h2, rows in self._parts
                for low, high in [(bounds[bucket], bounds[bucket + 1])]
                if low < high
            ]
            if not slices:
                continue
            stem = os.path.join(self._dir, f"{bucket:04x}")
            for field_no, suffix in enumerate((".h1", ".h2", ".row")):
                with open(stem + suffix, "ab") as fh:
                    for piece in slices:
                        piece[field_no].tofile(fh)
        self._parts, self._held = [], 0

    def _groups(self) -> Iterator[tuple]:
        import numpy as np

        if self._dir is None:
            if self._parts:
                yield tuple(np.concatenate([p[i] for p in self._parts]) for i in (1, 2, 3))
            return
        self._spill()
        for stem in sorted({name.split(".")[0] for name in os.listdir(self._dir)}):
            path = os.path.join(self._dir, stem)
            yield tuple(
                np.fromfile(path + suffix, dtype=np.uint64) for suffix in (".h1", ".h2", ".row")
            )

    def duplicates(self) -> tuple[int, list[int]]:
        """How many rows share their key with another, and the first of them (0-based)."""
        import numpy as np

        count = 0
        first = np.empty(0, dtype=np.uint64)
        for h1, h2, rows in self._groups():
            found = duplicated_rows(h1, h2, rows)
            if len(found):
                count += len(found)
                first = np.sort(np.concatenate([first, found]))[:MAX_ROWS_REPORTED]
        return count, [int(r) for r in first]

    def close(self) -> None:
        self._parts = []
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def duplicated_rows(h1, h2, rows) -> "numpy.ndarray":
    import numpy as np

    empty = np.empty(0, dtype=np.uint64)
    if len(h1) < 2:
        return empty
    # Sorting the first hash alone settles the usual case, a bucket without a repeated key.
    ordered = np.sort(h1)
    repeated = ordered[1:] == ordered[:-1]
    if not repeated.any():
        return empty
    candidate = np.isin(h1, np.unique(ordered[1:][repeated]))
    c1, c2, crows = h1[candidate], h2[candidate], rows[candidate]
    order = np.lexsort((c2, c1))
    c1, c2, crows = c1[order], c2[order], crows[order]
    same = (c1[1:] == c1[:-1]) & (c2[1:] == c2[:-1])
    member = np.zeros(len(c1), dtype=bool)
    member[1:] |= same
    member[:-1] |= same
    return crows[member]
