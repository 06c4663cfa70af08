"""Asset checks of stages and of the export: not empty, schema as expected, keep ratio in bounds.

The checks are declared on the assets (``check_specs``) and evaluated by the step that wrote the
partitions, from the files it staged: a check never reads a partition back through Dagster.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from dj_ops.core.constants import Fields
from dj_ops.engine.stages import Stage

from .shards import Shard
from .stage_runner import PartitionResult


def check_specs(key: dg.AssetKey, what: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("non_empty", asset=key, description=f"{what} has at least one row"),
        dg.AssetCheckSpec("schema", asset=key, blocking=True,
                          description="text column is a string; input columns kept; the stage's stats present"),
        dg.AssetCheckSpec("keep_ratio", asset=key, description="rows out / rows in within the recipe's bounds"),
    ]


class StageChecks:
    """The three checks of a stage over the partitions it wrote (one result per check per step)."""

    def __init__(self, stage: Stage, text_key: str | None, parquet_input: bool):
        self.stage, self.text_key, self.parquet_input = stage, text_key, parquet_input
        self.empty: list[str] = []
        self.schema_problems: dict[str, list[str]] = {}
        self.ratios: dict[str, float] = {}

    def add(self, res: PartitionResult, shard: Shard) -> None:
        self.ratios[res.key] = round(res.keep_ratio, 4)
        if res.rows_out == 0:
            self.empty.append(res.key)
            return
        expected = shard_columns(shard) if self.parquet_input else []
        problems = schema_problems(pq.ParquetFile(res.staged).schema_arrow, self.text_key, expected,
                                   self.stage.stats_keys)
        if problems:
            self.schema_problems[res.key] = problems

    def results(self) -> Iterator[dg.AssetCheckResult]:
        lo, hi = self.stage.min_keep_ratio, self.stage.max_keep_ratio
        yield dg.AssetCheckResult(check_name="non_empty", passed=not self.empty,
                                  severity=dg.AssetCheckSeverity.WARN,
                                  metadata={"empty_partitions": dg.MetadataValue.json(self.empty)})
        yield dg.AssetCheckResult(check_name="schema", passed=not self.schema_problems,
                                  metadata={"problems": dg.MetadataValue.json(self.schema_problems)})
        outside = {k: r for k, r in self.ratios.items() if not lo <= r <= hi}
        yield dg.AssetCheckResult(check_name="keep_ratio", passed=not outside, metadata={
            "bounds": dg.MetadataValue.json([lo, hi]), "out_of_bounds": dg.MetadataValue.json(outside),
            "min_seen": min(self.ratios.values(), default=1.0), "max_seen": max(self.ratios.values(), default=1.0)})


def export_checks(rows: int, schema: pa.Schema, text_key: str | None, keep_ratio: float,
                  bounds: tuple[float, float]) -> list[dg.AssetCheckResult]:
    """The export's three checks (``text_key`` None: the text column is not checked)."""
    lo, hi = bounds
    problems = schema_problems(schema, text_key, [], ()) if rows else []
    return [
        dg.AssetCheckResult(check_name="non_empty", passed=rows > 0),
        dg.AssetCheckResult(check_name="schema", passed=not problems,
                            metadata={"problems": dg.MetadataValue.json(problems)}),
        dg.AssetCheckResult(check_name="keep_ratio", passed=lo <= keep_ratio <= hi,
                            metadata={"bounds": dg.MetadataValue.json([lo, hi]), "keep_ratio": round(keep_ratio, 4)}),
    ]


def shard_columns(shard: Shard) -> list[str]:
    with UPath(shard.path).open("rb") as f:
        return [n for n in pq.ParquetFile(f).schema_arrow.names if n != Fields.stats]


def schema_problems(schema: pa.Schema, text_key: str | None, input_columns: list[str],
                    stats_keys: tuple[str, ...]) -> list[str]:
    """What is wrong with a partition file's schema (``text_key`` None: the text is not checked)."""
    problems = []
    if text_key is not None:
        text_type = schema.field(text_key).type if text_key in schema.names else None
        if text_type is None:
            problems.append(f"text column {text_key!r} missing")
        elif not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
            problems.append(f"text column {text_key!r} is {text_type}, not a string")
    lost = [c for c in input_columns if c not in schema.names]
    if lost:
        problems.append(f"input columns lost: {lost}")
    if stats_keys:
        stats_type = schema.field(Fields.stats).type if Fields.stats in schema.names else pa.null()
        have = {f.name for f in stats_type} if pa.types.is_struct(stats_type) else set()
        absent = [k for k in stats_keys if k not in have]
        if absent:
            problems.append(f"stats missing: {absent}")
    return problems
