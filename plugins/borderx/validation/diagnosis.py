"""Why a file cannot be read as CSV, named by byte offset or line number.

pyarrow's and pandas' own messages quote the offending line, so none of them is ever passed on:
when pyarrow stops, the file is scanned again here, and the first problem is named the way a
whole-file read would have found it.
"""

from __future__ import annotations

import csv
from pathlib import Path

# Bytes read at a time while scanning a file.
READ_STEP = 1 << 20


def diagnose(path: Path, block_bytes: int | None = None) -> str:
    """Why the file cannot be read as CSV: its first byte that is not UTF-8, else its first bad
    record. block_bytes: the reader stopped on a record longer than its block of that many."""
    name = str(path)
    try:
        bad = first_invalid_utf8(path)
        if bad is not None:
            offset, line = bad
            return f"{name}: not valid UTF-8 at byte {offset} (line {line})"
        found = first_malformed_record(path)
    except OSError as exc:
        return f"{name}: cannot be read ({exc.strerror or type(exc).__name__})"
    if found:
        return found
    if block_bytes is not None:
        return f"{name}: a record is longer than the reader's block of {block_bytes} bytes"
    return f"{name}: not a well-formed CSV file"


def first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """Byte offset and line of the first byte that is not UTF-8, reading the file in steps."""
    consumed = 0  # bytes before `pending`
    lines = 0  # line breaks before `pending`
    pending = b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(READ_STEP)
            data = pending + block
            if not data:
                return None
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as exc:
                cut = exc.end == len(data) and exc.reason == "unexpected end of data"
                if not block or not cut:
                    return consumed + exc.start, lines + data.count(b"\n", 0, exc.start) + 1
                good = exc.start
            lines += data.count(b"\n", 0, good)
            consumed += good
            pending = data[good:]
            if not block:
                return None


def first_malformed_record(path: Path) -> str | None:
    """The first record whose field count differs from the header's, or a quoting error."""
    name = str(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        header_fields: int | None = None
        data_row = 0
        try:
            for record in reader:
                if not record:
                    continue
                if header_fields is None:
                    header_fields = len(record)
                    continue
                data_row += 1
                if len(record) != header_fields:
                    return (
                        f"{name}: line {reader.line_num} (data row {data_row}) has "
                        f"{len(record)} fields, header has {header_fields}"
                    )
        except csv.Error:
            return (
                f"{name}: malformed CSV at line {reader.line_num} "
                "(unbalanced quotes or stray characters)"
            )
    return None
