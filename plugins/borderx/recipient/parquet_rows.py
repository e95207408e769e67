"""The row count of a Parquet file, read from its footer as the file streams past, without pyarrow.

A Parquet file ends with its footer (FileMetaData, Thrift compact encoding), the footer's length as 4 bytes
little-endian, and the magic PAR1; FileMetaData's field 3 is the number of rows. The light client checks a
Parquet delivery's row count with this alone.
"""

from __future__ import annotations

import collections
import struct

MAGIC = b"PAR1"
# Footers of extracts are kilobytes; one larger than this is not a delivery the hub made.
MAX_FOOTER_BYTES = 16 << 20
_NUM_ROWS_FIELD = 3
_I64 = 6


class NotParquetData(ValueError):
    """The bytes are not a Parquet file, or its footer cannot be read."""


class ParquetRowCounter:
    """Fed a file's bytes in order, keeps only its tail, then reads the row count from the footer."""

    def __init__(self) -> None:
        self._head = b""
        self._tail: collections.deque[bytes] = collections.deque()
        self._held = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        if len(self._head) < 4:
            self._head += bytes(data[: 4 - len(self._head)])
        self._tail.append(bytes(data))
        self._held += len(data)
        limit = MAX_FOOTER_BYTES + 8
        while self._held - len(self._tail[0]) >= limit:
            self._held -= len(self._tail.popleft())

    @property
    def records(self) -> int:
        tail = b"".join(self._tail)
        self._tail = collections.deque([tail])
        if self._head != MAGIC or len(tail) < 12 or tail[-4:] != MAGIC:
            raise NotParquetData("not a Parquet file (it does not begin and end with PAR1)")
        (length,) = struct.unpack("<I", tail[-8:-4])
        if length > MAX_FOOTER_BYTES or length + 8 > len(tail):
            raise NotParquetData("the Parquet footer is larger than the file or than a delivery's can be")
        return num_rows(tail[-8 - length:-8])


def num_rows(footer: bytes) -> int:
    """FileMetaData.num_rows from the Thrift compact encoding of a Parquet footer."""
    reader = _Compact(footer)
    try:
        found = reader.find_i64(_NUM_ROWS_FIELD)
    except (IndexError, struct.error, RecursionError):
        raise NotParquetData("the Parquet footer is cut short or malformed") from None
    if found is None or found < 0:
        raise NotParquetData("the Parquet footer has no row count")
    return found


class _Compact:
    """Just enough of Thrift's compact protocol to skip any field and read one top-level i64."""

    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def _byte(self) -> int:
        value = self.data[self.at]
        self.at += 1
        return value

    def _varint(self) -> int:
        shift = value = 0
        while True:
            byte = self._byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 70:
                raise IndexError("varint too long")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _fields(self):
        """(field id, type) of each field of the struct that starts here, up to its stop byte."""
        last = 0
        while True:
            header = self._byte()
            if header == 0:
                return
            delta, kind = header >> 4, header & 0x0F
            last = last + delta if delta else self._zigzag()
            yield last, kind

    def find_i64(self, wanted: int) -> int | None:
        value = None
        for field_id, kind in self._fields():
            if field_id == wanted and kind == _I64:
                value = self._zigzag()
            else:
                self._skip(kind)
        return value

    def _skip(self, kind: int, depth: int = 0) -> None:
        if depth > 64:
            raise RecursionError("nested too deep")
        if kind in (1, 2):  # booleans carry their value in the type
            return
        if kind == 3:
            self.at += 1
        elif kind in (4, 5, 6):
            self._varint()
        elif kind == 7:
            self.at += 8
        elif kind == 8:
            length = self._varint()  # read before self.at is: `self.at += ...` would add to the old position
            self.at += length
        elif kind in (9, 10):
            header = self._byte()
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self._varint()
            for _ in range(size):
                self._skip_element(element, depth + 1)
        elif kind == 11:
            size = self._varint()
            if size:
                types = self._byte()
                for _ in range(size):
                    self._skip_element(types >> 4, depth + 1)
                    self._skip_element(types & 0x0F, depth + 1)
        elif kind == 12:
            for _, inner in self._fields():
                self._skip(inner, depth + 1)
        elif kind == 13:
            self.at += 16
        else:
            raise IndexError(f"unknown Thrift type {kind}")
        if self.at > len(self.data):
            raise IndexError("past the end")

    def _skip_element(self, kind: int, depth: int) -> None:
        # In a list, set or map a boolean takes a byte of its own.
        if kind in (1, 2):
            self.at += 1
        else:
            self._skip(kind, depth)
