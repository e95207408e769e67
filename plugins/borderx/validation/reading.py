"""Reading an extract: its header, where its blocks end, and each block parsed as text.

A Parquet extract (borderx.tables) is read row group by row group into the same text batches: its
schema stands for the header, and its rows are cut into GX batches of about as many rows as
CHUNK_BYTES of CSV would hold.

Every column is read as text and empty cells as nulls, as a whole-file pandas read gave GX. No
message from pyarrow is ever passed on (it can quote the data): a read that fails raises
ReadFailed, and borderx.validation.diagnosis names the problem.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from borderx import tables
from borderx.validation.diagnosis import READ_STEP, diagnose

if TYPE_CHECKING:
    import pandas
    import pyarrow

# Bytes of CSV per GX batch. GX costs about 0.1 s per batch whatever its size, and a worker's
# memory grows with its block: on 1 GiB with two workers, 8 MiB blocks took 14% longer than
# 16 MiB, and 32 or 64 MiB saved 5% but the processes peaked at 1.1 and 1.4 GiB instead of
# 0.85 GiB (bench/README.md).
CHUNK_BYTES = 16 << 20

# pyarrow's block size. Its streaming reader reads up to 32 blocks ahead of the consumer, which
# nothing in its Python API limits: at 32 MiB blocks that is a whole gigabyte held for nothing.
# GX batches are made of several such blocks instead.
READ_BLOCK_BYTES = 2 << 20

# A first line this long is not a header; stopping here bounds what the probe holds.
_MAX_HEADER_BYTES = 16 << 20


class Unreadable(Exception):
    """The file cannot be read as CSV; the message names the file and the problem."""


class ReadFailed(Exception):
    """pyarrow stopped reading; the message is built by diagnose, never from pyarrow's."""

    def __init__(self, io_error: str | None = None, too_long: bool = False):
        super().__init__(io_error or "")
        self.io_error = io_error
        self.too_long = too_long

    def unreadable(self, path: Path, chunk_bytes: int) -> Unreadable:
        if self.io_error:
            return Unreadable(f"{path}: cannot be read ({self.io_error})")
        return Unreadable(diagnose(path, chunk_bytes if self.too_long else None))


@dataclass(frozen=True)
class Layout:
    """What the start of a file says about it."""

    # As pyarrow reads the header: the keys of its column types.
    raw_names: list[str]
    # As GX sees them: repeated names renamed the way pandas does ("a", "a.1").
    names: list[str]
    # Bytes up to the end of the header line: the first block must hold at least that.
    header_end: int
    # A header with no line ending and nothing after it; pyarrow reads that as an empty file.
    header_only: bool
    format: str = "csv"


# Bytes a cell takes as CSV text, about: what turns CHUNK_BYTES into rows of a Parquet extract.
_TEXT_BYTES_PER_CELL = 8


def probe(path: Path) -> Layout:
    """Read the header line (a Parquet file's schema); raise Unreadable for a file that is missing, empty or
    undecodable."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if tables.format_of(path) == "parquet":
        return _probe_parquet(path)
    text, start, ends = _first_line(path)
    end = min(ends) if ends else len(text)
    header = text[start:end].encode("utf-8")
    try:
        raw_names = pacsv.read_csv(
            pa.BufferReader(header + b"\n"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
        ).schema.names
    except Exception:
        raise Unreadable(diagnose(path)) from None
    return Layout(
        raw_names=raw_names,
        names=dedup_names(raw_names),
        header_end=len(text[:end].encode("utf-8")) + 1,
        header_only=not ends,
    )


def _probe_parquet(path: Path) -> Layout:
    try:
        with tables.open_parquet(path) as reader:
            names = reader.schema_arrow.names
    except tables.NotParquet as exc:
        raise Unreadable(str(exc)) from None
    return Layout(raw_names=names, names=dedup_names(names), header_end=0, header_only=False, format="parquet")


def _parquet_chunks(path: Path, layout: Layout, chunk_bytes: int) -> Iterator[list["pyarrow.RecordBatch"]]:
    rows = max(1, chunk_bytes // (_TEXT_BYTES_PER_CELL * max(1, len(layout.raw_names))))
    try:
        for batch in tables.parquet_batches(path, rows):
            if batch.num_rows:
                yield [batch]
    except tables.NotParquet as exc:
        raise Unreadable(str(exc)) from None


def _first_line(path: Path) -> tuple[str, int, list[int]]:
    """The decoded start of the file, where its first non-empty line starts, and where that line
    may end (a \\n, a \\r, or neither when the file ends first)."""
    try:
        with open(path, "rb") as fh:
            head = b""
            at_eof = False
            while True:
                block = fh.read(READ_STEP)
                if not block:
                    at_eof = True
                else:
                    head += block
                text = _decodable_prefix(head, at_eof)
                if text is None:
                    raise Unreadable(diagnose(path))
                body = text.lstrip("\ufeff")
                if not body.strip():
                    if at_eof:
                        raise Unreadable(f"{path}: file is empty (no header row)")
                    if len(head) > _MAX_HEADER_BYTES:
                        raise Unreadable(diagnose(path))
                    continue
                # pyarrow skips empty lines, so the header is the first line with anything on it.
                start = len(text) - len(body.lstrip("\r\n"))
                ends = [i for i in (text.find("\n", start), text.find("\r", start)) if i >= 0]
                if ends or at_eof:
                    return text, start, ends
                if len(head) > _MAX_HEADER_BYTES:
                    raise Unreadable(diagnose(path))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise Unreadable(f"{path}: cannot be read ({reason})") from None


def _decodable_prefix(data: bytes, at_eof: bool) -> str | None:
    """data decoded, leaving out a multi-byte character cut at its end; None if it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not at_eof and exc.end == len(data) and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")
        return None


def dedup_names(names: list[str]) -> list[str]:
    # pandas' rule for repeated header names, so GX sees what a whole-file pandas read gave it.
    counts: dict[str, int] = collections.defaultdict(int)
    out = []
    for name in names:
        count = counts[name]
        while count > 0:
            counts[name] = count + 1
            name = f"{name}.{count}"
            count = counts[name]
        out.append(name)
        counts[name] = count + 1
    return out


def batches(
    path: Path, layout: Layout, chunk_bytes: int, start: int = 0
) -> Iterator[list["pyarrow.RecordBatch"]]:
    """The file's data rows from byte `start` (0: from the header), every cell as text and empty
    cells as nulls, about chunk_bytes of CSV at a time (as a list of pyarrow's blocks)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if layout.header_only:
        return
    if layout.format == "parquet":
        yield from _parquet_chunks(path, layout, chunk_bytes)
        return
    block = max(min(chunk_bytes, READ_BLOCK_BYTES), layout.header_end + 1)
    per_chunk = max(1, round(chunk_bytes / block))
    source = None
    try:
        if start:
            source = pa.OSFile(str(path))
            source.seek(start)
        reader = pacsv.open_csv(
            source if start else str(path),
            read_options=pacsv.ReadOptions(
                block_size=block, use_threads=True, column_names=layout.raw_names if start else None
            ),
            parse_options=_parse_options(),
            convert_options=_convert_options(layout.raw_names),
        )
        pieces = []
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            if batch.num_rows:
                pieces.append(batch)
            if len(pieces) >= per_chunk:
                yield pieces
                pieces = []
        if pieces:
            yield pieces
    except OSError as exc:
        raise ReadFailed(io_error=exc.strerror or type(exc).__name__) from None
    except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:
        raise ReadFailed(too_long="straddl" in str(exc)) from None
    finally:
        if source is not None:
            source.close()


def _parse_options():
    import pyarrow.csv as pacsv

    # With quoted line breaks allowed, where pyarrow's blocks end never changes how a row is
    # read; it costs pyarrow next to nothing.
    return pacsv.ParseOptions(newlines_in_values=True)


def _convert_options(raw_names: list[str]):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        column_types={n: pa.string() for n in raw_names},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
        check_utf8=True,
    )


def units(path: Path, layout: Layout, chunk_bytes: int) -> Iterator[tuple]:
    """The file's data cut into the work of one GX batch each, in file order.

    ("range", start, length): bytes that end at a line break and hold no quote character, so
    that no line break in them can be inside a quoted value; whoever validates the block reads
    and parses it (a worker, in parallel). This process only looks for the cut.
    ("pieces", batches): from the first quote character on, only a CSV parser can tell where a
    row ends, so the rest of the file is parsed here by pyarrow.
    """
    if layout.header_only:
        return
    if layout.format == "parquet":
        for pieces in _parquet_chunks(path, layout, chunk_bytes):
            yield ("pieces", pieces)
        return
    position = layout.header_end
    try:
        with open(path, "rb") as fh:
            # No bigger than the file: a thousand small files need no 16 MiB buffer each.
            size = os.fstat(fh.fileno()).st_size
            buffer = bytearray(max(1, min(chunk_bytes, size - position + 1)))
            while True:
                fh.seek(position)
                got = fh.readinto(buffer)
                if not got:
                    return
                if buffer.find(b'"', 0, got) >= 0:
                    break
                if got < len(buffer):
                    yield ("range", position, got)
                    return
                cut = buffer.rfind(b"\n", 0, got) + 1
                if cut == 0:
                    break
                yield ("range", position, cut)
                position += cut
    except OSError as exc:
        raise ReadFailed(io_error=exc.strerror or type(exc).__name__) from None
    for pieces in batches(path, layout, chunk_bytes, start=position):
        yield ("pieces", pieces)


def parse_range(path: str, start: int, length: int, raw_names: list[str]) -> "pyarrow.RecordBatch":
    """The rows in bytes [start, start + length) of the file, which hold no quote character."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(length)
        if len(data) != length:
            raise ReadFailed(io_error="file changed while it was read")
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(
                block_size=length + 1, use_threads=False, column_names=raw_names
            ),
            parse_options=_parse_options(),
            convert_options=_convert_options(raw_names),
        )
    except OSError as exc:
        raise ReadFailed(io_error=exc.strerror or type(exc).__name__) from None
    except (pa.ArrowException, UnicodeDecodeError, ValueError):
        raise ReadFailed() from None
    del data
    parts = table.to_batches()
    if not parts:
        return pa.RecordBatch.from_pylist([], schema=table.schema)
    return parts[0] if len(parts) == 1 else pa.concat_batches(parts)


# --------------------------------------------------------------------------------------------
# Frames for GX


def joined(pieces: list) -> "pyarrow.RecordBatch":
    import pyarrow as pa

    return pieces[0] if len(pieces) == 1 else pa.concat_batches(pieces)


def frame(batch: "pyarrow.RecordBatch", names: list[str], offset: int) -> "pandas.DataFrame":
    import pandas as pd

    df = batch.to_pandas()
    df.columns = names
    # GX reports unexpected rows by index label, so the labels say which rows they are: the
    # block's own positions when blocks are validated apart, shifted to the file's afterwards.
    df.index = pd.RangeIndex(offset, offset + batch.num_rows)
    return df


def empty_frame(names: list[str]) -> "pandas.DataFrame":
    import pandas as pd

    return pd.DataFrame({n: pd.array([], dtype="str") for n in names})


def facts_frame(names: list[str], rows: int) -> "pandas.DataFrame":
    """The file's columns and row count, and not a byte of its data: each column a null array."""
    import pandas as pd
    import pyarrow as pa

    return pd.DataFrame(
        {n: pd.arrays.ArrowExtensionArray(pa.nulls(rows)) for n in names},
        index=pd.RangeIndex(rows),
        copy=False,
    )
