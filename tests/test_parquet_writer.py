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
