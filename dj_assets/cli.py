"""``dj-process`` and ``dj-analyze``: Data-Juicer's command lines.

Flags: ``--config recipe.yaml`` plus any recipe key as ``--key value`` (``--np 2``,
``--export_path out.jsonl``) and any OP parameter as ``--op_name.param value``, as in
Data-Juicer.  Values are read as YAML scalars (``--open_tracer true``, ``--suffixes [.txt]``).

They live in the Dagster layer, which may import both the engine and Dagster; Dagster is imported
only on ``dj-process``'s default path, so ``--executor local`` and ``dj-analyze`` run the engine
alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from dj_ops.core.recipe import RecipeError, apply_overrides, load_recipe, recipe_from_dict
from dj_ops.io.readers import DatasetFormatError


def _parse_overrides(tokens: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--"):
            raise RecipeError(f"unexpected argument {tok!r}: use --key value")
        key = tok[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            raw = tokens[i + 1]
            i += 2
        else:
            raw = "true"
            i += 1
        out[key.replace("-", "_") if "." not in key else key] = yaml.safe_load(raw) if raw != "" else ""
    return out


def _load(argv: list[str] | None, prog: str, description: str, analyzer: bool):
    ap = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    ap.add_argument("--config", help="recipe YAML file (Data-Juicer format)")
    if analyzer:
        ap.add_argument("--auto", action="store_true", help="analyze the first --auto_num rows of --dataset_path with every stats filter")
    if not analyzer:
        ap.add_argument("--executor", choices=("dagster", "local"), default="dagster",
                        help="dagster (default): run as the recipe's Dagster job in the persistent instance "
                             "($DAGSTER_HOME, default <repo>/.dagster_home), so the run shows in the UI; "
                             "local: the engine alone, no Dagster")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--report", help="write the run report as JSON to this path")
    args, rest = ap.parse_known_args(argv)
    overrides = _parse_overrides(rest)
    if analyzer and args.auto:
        return args, _auto_recipe(overrides)
    if not args.config:
        ap.error("--config is required")
    return args, load_recipe(args.config, overrides)


def _auto_recipe(overrides: dict[str, Any]):
    """Data-Juicer's ``dj-analyze --auto``: every stats filter with default params on the first rows."""
    from dj_ops.core.registry import load_all_ops
    from dj_ops.ops.base import Filter

    skip_models = {"language_id_score_filter", "token_num_filter", "alphanumeric_filter"}
    ops = [
        {name: None} for name, cls in sorted(load_all_ops().items())
        if issubclass(cls, Filter) and cls.has_stats and name not in skip_models
    ]
    data = apply_overrides({"process": ops}, overrides)
    return recipe_from_dict(data, source="--auto")


def process_main(argv: list[str] | None = None) -> int:
    from dj_ops.core.faults import WorkerCrashed
    from dj_ops.engine import executor_for

    try:
        args, recipe = _load(argv, "dj-process", "Process a dataset with a Data-Juicer recipe.", analyzer=False)
        if args.executor == "dagster":
            from .process import process_with_dagster

            return process_with_dagster(recipe, args.config, args.report)
        executor = executor_for(recipe)(recipe, progress=False if args.no_progress else None)
        report = executor.run()
    except (RecipeError, DatasetFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WorkerCrashed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(report.table())
    print(f"\n{report.rows_in} rows read, {report.bad_rows} bad, {report.rows_out} written in {report.seconds:.1f} s")
    for p in report.outputs:
        print(f"output: {p}")
    if report.stats_file:
        print(f"stats:  {report.stats_file}")
    if report.bad_rows_file:
        print(f"bad rows set aside: {report.bad_rows_file}")
    if report.trace_dir:
        print(f"traces: {report.trace_dir}")
    report_path = Path(args.report) if args.report else recipe.resolved_work_dir / "run_report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report.to_dict(), indent=2))
    return 0


def analyze_main(argv: list[str] | None = None) -> int:
    from dj_ops.analyzer import Analyzer

    try:
        args, recipe = _load(argv, "dj-analyze", "Compute every filter's stats over a dataset.", analyzer=True)
        if args.auto:
            from dj_ops.io.readers import resolve_inputs

            files = resolve_inputs(recipe.dataset_path)
            result = Analyzer(recipe, progress=False if args.no_progress else None).run(
                files=files, row_range=(0, recipe.auto_num))
        else:
            result = Analyzer(recipe, progress=False if args.no_progress else None).run()
    except (RecipeError, DatasetFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.overall.to_string())
    print(f"\n{result.rows} rows analysed, {result.bad_rows} bad")
    print(f"stats:   {result.stats_file}")
    print(f"overall: {result.overall_csv}")
    for p in result.plots:
        print(f"plot:    {p}")
    return 0
