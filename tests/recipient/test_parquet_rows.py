"""The light client's Parquet row count, read from the footer as the file streams past, against pyarrow's."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from borderx.recipient.parquet_rows import NotParquetData, ParquetRowCounter, num_rows


def _parquet(table: pa.Table, **kwargs) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kwargs)
    return sink.getvalue()


def _count(data: bytes, seed: int = 0) -> int:
    counter = ParquetRowCounter()
    rng = random.Random(seed)
    at = 0
    while at < len(data):
        step = rng.randint(1, 5000)
        counter.feed(data[at:at + step])
        at += step
    return counter.records


TABLES = {
    "empty": (pa.table({"a": pa.array([], pa.string())}), {}),
    "row groups": (pa.table({"a": [f"v{i}" for i in range(5000)], "n": list(range(5000))}), {"row_group_size": 333}),
    "nested and typed": (pa.table({
        "l": [[1, 2], None, [3]], "m": pa.array([[("k", 1)], [], None], pa.map_(pa.string(), pa.int64())),
        "s": [{"x": 1.5, "y": True}, {"x": None, "y": False}, None],
        "d": pa.array([1, 2, 3], pa.date32()), "t": pa.array([1, 2, 3], pa.timestamp("us", tz="UTC")),
        "dec": pa.array([1, 2, 3], pa.decimal128(10, 2)), "b": [True, None, False],
    }).replace_schema_metadata({"origin": "x" * 3000}), {"compression": "zstd", "write_statistics": True}),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_row_count_matches_pyarrow(name):
    table, kwargs = TABLES[name]
    data = _parquet(table, **kwargs)
    assert _count(data) == pq.ParquetFile(io.BytesIO(data)).metadata.num_rows == table.num_rows


def test_what_is_not_parquet_is_refused():
    data = _parquet(TABLES["row groups"][0])
    for bad in (b"", b"a,b\n1,2\n", data[:-1], data[: len(data) // 2], b"PAR1" + b"\xff" * 30 + b"\x10\x00\x00\x00PAR1"):
        with pytest.raises(NotParquetData):
            _count(bad)
    with pytest.raises(NotParquetData):
        num_rows(b"\x15")  # a field header cut before its value


def test_decrypting_a_parquet_delivery_checks_its_row_count(tmp_path):
    from borderx.crypto import age
    from borderx.recipient import ROW_COUNT, DeliveryRefused, decrypt_checked

    identity = age.X25519Identity.generate()
    data = _parquet(TABLES["row groups"][0], row_group_size=1000)
    src = tmp_path / "data.parquet.age"
    src.write_bytes(age.encrypt(data, [identity.recipient()]))
    out = io.BytesIO()
    assert decrypt_checked(src, out, [identity], 5000, fmt="parquet") == 5000
    assert out.getvalue() == data
    with pytest.raises(DeliveryRefused) as refused:
        decrypt_checked(src, io.BytesIO(), [identity], 4999, fmt="parquet")
    assert refused.value.check == ROW_COUNT
    src.write_bytes(age.encrypt(b"period\n2026-11-01\n", [identity.recipient()]))
    with pytest.raises(DeliveryRefused) as refused:
        decrypt_checked(src, io.BytesIO(), [identity], 1, fmt="parquet")
    assert refused.value.check == ROW_COUNT and "not a Parquet file" in refused.value.reason
