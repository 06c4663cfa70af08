"""The export: every partition of the last stage, in partition order, in Data-Juicer's output.

``export_path`` in the recipe's format (jsonl / json lines / parquet, sharded by
``export_shard_size``), written atomically by the engine's writers, and, unless
``keep_stats_in_res_ds``, the stats carried through the stages split off into Data-Juicer's
``<export>_stats.jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from dj_ops.core.constants import Fields
from dj_ops.core.recipe import Recipe
from dj_ops.io.writers import JsonlWriter, ParquetWriter, stats_path_for


@dataclass
class ExportResult:
    rows: int
    outputs: list[str]
    stats_file: str | None
    schema: pa.Schema


def export_dataset(recipe: Recipe, files: list[Path]) -> ExportResult:
    parquet = recipe.resolved_export_type == "parquet"
    writer = ParquetWriter(recipe.export_path, recipe.export_shard_size, recipe.export_compression) if parquet \
        else JsonlWriter(recipe.export_path, recipe.export_shard_size)
    split_stats = not recipe.keep_stats_in_res_ds
    has_stats = split_stats and any(Fields.stats in pq.ParquetFile(f).schema_arrow.names for f in files)
    stats_writer = JsonlWriter(stats_path_for(recipe.export_path)) if has_stats else None
    rows, schema = 0, pa.schema([])
    opt = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    try:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=recipe.batch_size):
                table = pa.Table.from_batches([batch])
                if split_stats and Fields.stats in table.column_names:
                    column = table.column(Fields.stats)
                    stats = column.to_pylist()
                    table = table.drop_columns([Fields.stats])
                    if stats_writer is not None:
                        # a stage's struct holds every stat key; rows only own those computed for them
                        if _has_nulls(column):
                            stats = [{k: v for k, v in (s or {}).items() if v is not None} for s in stats]
                        stats_writer.write_lines([orjson.dumps({Fields.stats: s}, option=opt) for s in stats])
                if not table.num_rows:
                    continue
                schema = table.schema if not schema.names else schema
                if parquet:
                    writer.write_table(table)
                else:
                    writer.write_lines([orjson.dumps(r, option=opt) for r in table.to_pylist()])
                rows += table.num_rows
    except BaseException:
        writer.abort()
        if stats_writer is not None:
            stats_writer.abort()
        raise
    outputs = [str(p) for p in writer.close()]
    stats_file = str(stats_writer.close()[0]) if stats_writer is not None else None
    return ExportResult(rows, outputs, stats_file, schema)


def _has_nulls(column: pa.ChunkedArray) -> bool:
    """Whether a struct column has a null anywhere (a row, or a field of a row)."""
    return column.null_count > 0 or (pa.types.is_struct(column.type) and any(
        chunk.field(i).null_count for chunk in column.chunks for i in range(column.type.num_fields)))
