"""What the Dagster UI shows for a materialization: tables, stats, histograms, the plan.

Histograms are small PNG bar charts drawn with numpy and encoded by hand (zlib), embedded in
Markdown as data URIs: a few KB each, a millisecond to draw, no plotting library to import in
every step.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections import Counter

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dj_ops.core.constants import Fields
from dj_ops.core.recipe import Recipe
from dj_ops.engine.stages import Stage, op_device

from .stage_runner import SMALL_PARTITION_ROWS, PartitionResult, StageRun

OPS_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("op", "string"), dg.TableColumn("kind", "string"),
    dg.TableColumn("rows_in", "int"), dg.TableColumn("rows_out", "int"), dg.TableColumn("removed", "int"),
    dg.TableColumn("changed", "int"), dg.TableColumn("errors", "int"), dg.TableColumn("cpu_seconds", "float"),
])
STATS_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("stat", "string"), dg.TableColumn("count", "int"), dg.TableColumn("mean", "float"),
    dg.TableColumn("std", "float"), dg.TableColumn("min", "float"), dg.TableColumn("p25", "float"),
    dg.TableColumn("p50", "float"), dg.TableColumn("p75", "float"), dg.TableColumn("max", "float"),
    dg.TableColumn("top", "string"),
])


def ops_table(ops: list[dict]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[dg.TableRecord({
            "op": o["name"], "kind": o["kind"], "rows_in": int(o["rows_in"]), "rows_out": int(o["rows_out"]),
            "removed": int(o["rows_in"] - o["rows_out"]), "changed": int(o["changed"]), "errors": int(o["errors"]),
            "cpu_seconds": float(o["cpu_seconds"]),
        }) for o in ops],
        schema=OPS_SCHEMA,
    )


# ---------------------------------------------------------------------------------------------
# stats of the kept rows


def read_stats(path, keys: tuple[str, ...]) -> dict[str, list | np.ndarray]:
    """The ``__dj__stats__`` values of ``keys`` in a partition file (per-item lists flattened, nulls
    dropped): numbers as a float array, other values (labels, flags) as a list."""
    pf = pq.ParquetFile(path)
    if Fields.stats not in pf.schema_arrow.names or not keys:
        return {}
    col = pf.read(columns=[Fields.stats]).column(Fields.stats)
    struct_type = col.type
    out: dict[str, list] = {}
    for key in keys:
        if not pa.types.is_struct(struct_type) or struct_type.get_field_index(key) < 0:
            continue
        values = pa.chunked_array([c.field(key) for c in col.chunks], type=struct_type.field(key).type)
        if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
            values = pa.chunked_array([c.flatten() for c in values.chunks])
        values = pc.drop_null(values)
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            out[key] = values.to_numpy().astype(np.float64, copy=False)
        else:
            out[key] = values.to_pylist()
    return out


def stats_summary(stats: dict[str, list | np.ndarray]) -> tuple[dg.TableMetadataValue, str]:
    """A summary table (count, mean, std, quartiles / top value) and Markdown histograms."""
    records, charts = [], []
    for key, values in stats.items():
        nums = values if isinstance(values, np.ndarray) else np.asarray(
            [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)], dtype=np.float64)
        if len(nums):
            q = np.percentile(nums, [0, 25, 50, 75, 100])
            std = float(nums.std(ddof=1)) if len(nums) > 1 else 0.0
            records.append(dg.TableRecord({
                "stat": key, "count": int(len(nums)), "mean": _round(nums.mean()), "std": _round(std),
                "min": _round(q[0]), "p25": _round(q[1]), "p50": _round(q[2]), "p75": _round(q[3]), "max": _round(q[4]),
                "top": "",
            }))
            counts, edges = np.histogram(nums, bins=40)
            charts.append(f"**{key}** ({len(nums)} rows, {_fmt(edges[0])} … {_fmt(edges[-1])})\n\n"
                          f"![{key}](data:image/png;base64,{bar_chart_png(counts)})")
        else:
            top = Counter(str(v) for v in values).most_common(12)
            if not top:
                continue
            records.append(dg.TableRecord({
                "stat": key, "count": len(values), "mean": None, "std": None, "min": None, "p25": None, "p50": None,
                "p75": None, "max": None, "top": f"{top[0][0]} ({top[0][1]})",
            }))
            labels = ", ".join(f"{v} {c}" for v, c in top)
            charts.append(f"**{key}** (top values: {labels})\n\n"
                          f"![{key}](data:image/png;base64,{bar_chart_png(np.array([c for _, c in top]))})")
    header = "Stats of the kept rows (the stage's filters), one bar per bin:\n\n"
    return dg.MetadataValue.table(records=records, schema=STATS_SCHEMA), header + "\n\n".join(charts)


def _round(x: float) -> float:
    return float(f"{float(x):.5g}")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def bar_chart_png(counts: np.ndarray, width: int = 320, height: int = 110) -> str:
    """Base64 PNG of a bar chart of ``counts`` (one bar per bin, scaled to the tallest)."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    n = max(len(counts), 1)
    top = max(int(np.max(counts)) if len(counts) else 0, 1)
    bar_w = width / n
    for i, c in enumerate(counts):
        h = int(round((height - 4) * int(c) / top))
        if h:
            x0, x1 = int(i * bar_w) + 1, max(int((i + 1) * bar_w) - 1, int(i * bar_w) + 2)
            img[height - h:height, x0:x1] = (70, 110, 200)
    img[height - 1, :] = (120, 120, 120)
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


# ---------------------------------------------------------------------------------------------
# the execution plan


def plan_markdown(stage: Stage, np_workers: int, batch_size: int, gpu: str | None) -> str:
    """Which OPs run fused in one pass, what they share, on which device."""
    if stage.is_global:
        how = ("**global stage**: per-row OPs and dedup keys are computed in the workers for this step's "
               "partitions and stored beside them; the other partitions' stored keys are read, not recomputed, "
               "and all keys are resolved in partition order (the first occurrence survives), one output per partition")
    else:
        how = ("**per-row stage**: every OP below runs fused on each batch inside one worker "
               "(no intermediate dataset between OPs), partition by partition")
    lines = [f"{how}; {np_workers} worker process(es), batches of {batch_size} rows "
             f"(partitions of at most {SMALL_PARTITION_ROWS} rows run inside the step process).", "",
             "| # | OP | device | shares |", "|---|---|---|---|"]
    shared_by = {name: [k for k, ops in stage.intermediates.items() if name in ops and len(ops) > 1]
                 for name in stage.op_names}
    for i, spec in enumerate(stage.specs, start=1):
        dev = op_device(spec)
        dev = f"{dev} ({gpu})" if dev == "cuda" and gpu else dev
        lines.append(f"| {i} | `{spec.name}` | {dev} | {', '.join(shared_by[spec.name]) or '—'} |")
    shared = [f"`{k}` computed once for {', '.join(ops)}" for k, ops in stage.intermediates.items() if len(ops) > 1]
    if shared:
        lines += ["", "Shared intermediates: " + "; ".join(shared) + "."]
    return "\n".join(lines)


def partition_metadata(res: PartitionResult, path: str, stats: dict[str, list]) -> dict:
    """What one partition of a stage holds and what the engine did to it."""
    md: dict = {
        "rows_in": res.rows_in,
        "rows_out": res.rows_out,
        "keep_ratio": round(res.keep_ratio, 4),
        "bad_rows": res.bad_rows,
        "seconds": res.seconds,
        "workers": res.workers,
        "path": dg.MetadataValue.path(path),
    }
    if res.bad_rows_file:
        md["bad_rows_file"] = dg.MetadataValue.path(res.bad_rows_file)
    if res.ops:
        md["ops"] = ops_table(res.ops)
    if stats:
        table, charts = stats_summary(stats)
        md["stats_summary"] = table
        md["histograms"] = dg.MetadataValue.md(charts)
    return md


def step_metadata(run: StageRun, stage: Stage, recipe: Recipe, gpu_label: str | None) -> dict:
    """Metadata of a stage's step as a whole (Dagster shows it on every partition it wrote)."""
    meta: dict = {
        "execution_plan": dg.MetadataValue.md(plan_markdown(stage, recipe.np, recipe.batch_size, gpu_label)),
        "partitions_in_step": len(run.partitions),
    }
    if not stage.is_global:
        return meta
    meta["dedup"] = dg.MetadataValue.json(run.report.dedup)
    meta.update(dedup_metadata(run.report.dedup))
    if run.report.trace_dir:
        meta["trace_dir"] = dg.MetadataValue.path(run.report.trace_dir)
    if not (run.keys_read or run.keys_computed):  # earlier partitions run as context
        meta["ops_all_partitions_read"] = ops_table(run.report.ops)
        meta["context_partitions"] = run.context_partitions
        meta["bad_rows_step"] = run.report.bad_rows
        if run.report.bad_rows_file:
            meta["bad_rows_file"] = dg.MetadataValue.path(run.report.bad_rows_file)
    else:
        meta["dedup_keys_read"] = dg.MetadataValue.json(run.keys_read)
        meta["dedup_keys_computed"] = dg.MetadataValue.json(run.keys_computed)
        meta["stale_partitions"] = dg.MetadataValue.json(run.stale_partitions)
    return meta


# ---------------------------------------------------------------------------------------------
# deduplication


def dedup_metadata(dedup: dict[str, dict]) -> dict:
    """Clusters, removed rows and the sample duplicate pairs (with their similarity) of each
    deduplicator of a global stage."""
    out: dict = {}
    for name, summary in dedup.items():
        prefix = "dedup" if len(dedup) == 1 else f"dedup_{name}"
        for field in ("clusters", "removed_rows"):
            if field in summary:
                out[f"{prefix}_{field}"] = int(summary[field])
        pairs = summary.get("sample_pairs") or []
        if not pairs:
            continue
        lines = ["| survivor | removed | similarity |", "|---|---|---|"]
        for pair in pairs:
            if "estimated_jaccard" in pair:
                similarity = f"Jaccard ≈ {pair['estimated_jaccard']}"
            elif "hamming_distance" in pair:
                similarity = f"Hamming distance {pair['hamming_distance']}"
            else:
                similarity = "identical key"
            lines.append(f"| {_where(pair['survivor'])} | {_where(pair['removed'])} | {similarity} |")
        out[f"{prefix}_sample_pairs"] = dg.MetadataValue.md("\n".join(lines))
    return out


def _where(row) -> str:
    if not isinstance(row, dict):
        return f"row {row}"
    text = row.get("text")
    snippet = f": {text[:80].replace('|', '/')}" if isinstance(text, str) else ""
    return f"`{row['partition']}` row {row['row']}{snippet}".replace("\n", " ")
