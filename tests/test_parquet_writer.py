"""ParquetWriter keeps every row when later batches bring new columns or wider types."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dj_ops.io.writers import ParquetWriter


@pytest.mark.parametrize("shard_size", [0, 1])
def test_schema_drift_widens_instead_of_losing_rows(tmp_path, shard_size):
    w = ParquetWriter(tmp_path / "out.parquet", shard_size)
    w.write_table(pa.Table.from_pylist([{"text": "a", "n": 1, "s": {"x": 1}}]))
    w.write_table(pa.Table.from_pylist([{"text": "b", "images": ["p.png"], "n": 2.5, "s": {"x": 2, "y": "z"}}]))
    w.write_table(pa.Table.from_pylist([{"text": "c", "n": None}]))
    paths = w.close()
    rows = [r for p in paths for r in pq.read_table(p).to_pylist()]
    assert [r["text"] for r in rows] == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary left
    if shard_size == 0:
        assert rows[0] == {"text": "a", "n": 1.0, "s": {"x": 1, "y": None}, "images": None}


def test_conflicting_types_are_reported(tmp_path):
    w = ParquetWriter(tmp_path / "out.parquet")
    w.write_table(pa.Table.from_pylist([{"id": 1}]))
    with pytest.raises(ValueError, match="changes type"):
        w.write_table(pa.Table.from_pylist([{"id": "x"}]))
    w.abort()


@pytest.mark.parametrize("codec, stored", [("snappy", "SNAPPY"), ("lz4", "LZ4"), ("none", "UNCOMPRESSED")])
def test_codec(tmp_path, codec, stored):
    w = ParquetWriter(tmp_path / "out.parquet", compression=codec)
    w.write_table(pa.Table.from_pylist([{"text": "a"}]))
    w.write_table(pa.Table.from_pylist([{"text": "b", "n": 1}]))  # a rewrite (new column) keeps the codec
    (path,) = w.close()
    column = pq.ParquetFile(path).metadata.row_group(0).column(0)
    assert column.compression == stored
    assert pq.read_table(path).column("text").to_pylist() == ["a", "b"]
