"""Analyzer: every filter's stats over the whole dataset, nothing filtered.

Writes, as Data-Juicer does: ``<export path without extension>_stats.jsonl`` (one line of
``__dj__stats__`` per row), ``<work_dir>/analysis/overall.csv`` and ``overall.md`` (count, mean,
std, min, percentiles, max per numeric stat; count, unique, top, freq per string stat) and a
histogram ``<stat>-hist.png`` per stat.  Per-item list stats (one value per image) are exploded.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from .core.constants import Fields
from .engine import LocalExecutor
from .core.recipe import Recipe
from .io.writers import JsonlWriter, stats_path_for


@dataclass
class AnalysisResult:
    overall: pd.DataFrame
    stats_file: str
    overall_csv: str
    overall_md: str
    plots: list[str] = field(default_factory=list)
    rows: int = 0
    bad_rows: int = 0
    bad_rows_file: str | None = None


class _StatColumn:
    """Accumulates one stat over all rows: numbers in float64 chunks, strings in a counter."""

    def __init__(self) -> None:
        self.numbers: list[np.ndarray] = []
        self.strings: collections.Counter = collections.Counter()

    def add(self, values: list) -> None:
        flat: list = []
        for v in values:
            if isinstance(v, (list, tuple)):
                flat.extend(v)
            elif v is not None:
                flat.append(v)
        nums = [v for v in flat if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)]
        if nums:
            self.numbers.append(np.asarray(nums, dtype=np.float64))
        self.strings.update(v for v in flat if isinstance(v, str))

    def describe(self, percentiles: list[float]) -> dict[str, Any]:
        if self.numbers:
            s = pd.Series(np.concatenate(self.numbers))
            return s.describe(percentiles=percentiles).to_dict()
        total = sum(self.strings.values())
        top, freq = self.strings.most_common(1)[0] if self.strings else (None, 0)
        return {"count": total, "unique": len(self.strings), "top": top, "freq": freq}


class Analyzer:
    def __init__(self, recipe: Recipe, progress: bool | None = None):
        self.recipe = recipe
        self.executor = LocalExecutor(recipe, progress=progress)

    def run(self, files=None, row_range=None, plots: bool = True) -> AnalysisResult:
        recipe = self.recipe
        work = recipe.resolved_work_dir / "analysis"
        work.mkdir(parents=True, exist_ok=True)
        stats_writer = JsonlWriter(stats_path_for(recipe.export_path))
        columns: dict[str, _StatColumn] = collections.defaultdict(_StatColumn)
        rows = 0
        bad_sink = None
        try:
            for res, bad_sink in self.executor.iter_stats(files, row_range):
                cols = res.stats_columns or {}
                n = len(res.cand_ids)
                rows += n
                keys = list(cols)
                stats_writer.write_lines([
                    orjson.dumps({Fields.stats: dict(zip(keys, vals))}, option=orjson.OPT_SERIALIZE_NUMPY)
                    for vals in zip(*(cols[k] for k in keys))
                ] if keys else [b"{}"] * n)
                for k, vals in cols.items():
                    columns[k].add(vals)
        except BaseException:
            stats_writer.abort()
            raise
        stats_file = stats_writer.close()[0]
        percentiles = sorted(set(recipe.percentiles) | {0.25, 0.5, 0.75})
        overall = pd.DataFrame({k: c.describe(percentiles) for k, c in columns.items()})
        csv_path, md_path = work / "overall.csv", work / "overall.md"
        overall.to_csv(csv_path)
        md_path.write_text(overall.to_markdown() if _has_tabulate() else overall.to_string())
        result = AnalysisResult(overall, str(stats_file), str(csv_path), str(md_path), rows=rows,
                                bad_rows=bad_sink.count if bad_sink else 0,
                                bad_rows_file=str(bad_sink.path) if bad_sink and bad_sink.count else None)
        if plots:
            result.plots = [str(p) for p in _histograms(columns, work)]
        return result


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _histograms(columns: dict[str, _StatColumn], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for key, col in columns.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        if col.numbers:
            ax.hist(np.concatenate(col.numbers), bins=50)
            ax.set_ylabel("samples")
        else:
            top = col.strings.most_common(20)
            ax.bar([t for t, _ in top], [c for _, c in top])
            ax.tick_params(axis="x", rotation=60)
        ax.set_title(key)
        fig.tight_layout()
        path = out_dir / f"{key}-hist.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths
