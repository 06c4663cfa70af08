"""``dj-process`` through Dagster: the recipe's job runs in the persistent instance.

The recipe file (with its command-line overrides) becomes the same assets, partitions and job
as a recipe under ``recipes/`` (its name is the file's stem); its partitions are synced with the
input files and its assets materialized in one asset run in this process (what the recipe's job
does, without the job's own run around it).  The run and every materialization land in
``$DAGSTER_HOME`` (default: the repository's ``.dagster_home``), so they show in the UI.
Data-Juicer's outputs are written as by the local executor: ``export_path``, the stats file, bad
rows, traces, ``run_report.json``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from dj_ops.core.recipe import Recipe

REPO = Path(__file__).resolve().parent.parent


def default_dagster_home() -> Path:
    """``$DAGSTER_HOME``, else the repository's ``.dagster_home``, else ``~/.dagster_home``."""
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    repo_home = REPO / ".dagster_home"
    if (repo_home / "dagster.yaml").is_file():
        return repo_home
    home = Path.home() / ".dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return home


def process_with_dagster(recipe: Recipe, config_path: str, report_path: str | None = None) -> int:
    home = default_dagster_home()
    os.environ["DAGSTER_HOME"] = str(home.resolve())

    import dagster as dg

    from .build import build_definitions
    from .factory import bundle_from_recipe, first_failure, materialize_recipe, recipe_name
    from .gpu import ensure_gpu_pool
    from .shards import discover_shards

    cwd = Path.cwd()
    bundle = bundle_from_recipe(recipe, recipe_name(Path(config_path)), cwd, source=str(Path(config_path).resolve()))
    discover_shards(bundle.recipe, bundle.inbox)  # a missing or unreadable dataset fails here, as in local mode
    defs = build_definitions([bundle], os.environ.get("DJ_STORAGE_ROOT") or str(cwd / "outputs" / "dagster_storage"))
    level = os.environ.get("DJ_DAGSTER_LOG_LEVEL", "WARNING")
    log = logging.getLogger("dj-process")
    with dg.DagsterInstance.get() as instance:
        if any(s.uses_gpu for s in bundle.stages):
            ensure_gpu_pool(instance)
        # the asset run itself (what <recipe>_job starts after syncing the partitions), one run in the UI
        try:
            result, summary, _ = materialize_recipe(instance, bundle, defs, {}, log,
                                                    loggers={"console": {"config": {"log_level": level}}},
                                                    extra_tags={"dj/trigger": "dj-process"})
        except dg.Failure as exc:
            print(f"error: {exc.description}", file=sys.stderr)
            return 1
    if not result.success:
        print(f"error: the Dagster run {result.run_id} failed at {summary['failed_steps']}: {first_failure(result)}",
              file=sys.stderr)
        print(f"inspect it in the UI: DAGSTER_HOME={home} dagster dev -w {REPO / 'workspace.yaml'}", file=sys.stderr)
        return 1
    report = print_summary(bundle.recipe, summary)
    print(f"\ndagster: run {summary['asset_run']} (assets of {bundle.name}) in instance {home}")
    print(f"open the UI: DAGSTER_HOME={home} {sys.prefix}/bin/dagster dev -w {REPO / 'workspace.yaml'}")
    out = Path(report_path) if report_path else bundle.recipe.resolved_work_dir / "run_report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0


def print_summary(recipe: Recipe, summary: dict) -> dict:
    """Prints what the local executor prints (per-OP table, totals, output files); returns the report."""
    from dj_ops.engine import RunReport

    stages = summary["stages"]
    ops = [o for st in stages for o in st["ops"]]
    export = summary["export"]
    bad = sum(st["bad_rows"] for st in stages)
    report = RunReport(recipe=recipe.project_name, rows_in=stages[0]["rows_in"] if stages else 0,
                       rows_out=export.get("rows") or 0,
                       bad_rows=bad, seconds=round(sum(st["seconds"] for st in stages), 3), ops=ops,
                       outputs=export.get("outputs") or [], stats_file=export.get("stats_file"),
                       bad_rows_file=next((f for st in stages for f in st["bad_rows_files"]), None),
                       trace_dir=summary["trace_dir"])
    print(report.table())
    print(f"\n{report.rows_in} rows read, {report.bad_rows} bad, {report.rows_out} written in {report.seconds:.1f} s "
          f"(engine time over {len(stages)} stages)")
    for p in report.outputs:
        print(f"output: {p}")
    if report.stats_file:
        print(f"stats:  {report.stats_file}")
    bad_files = sorted({f for st in stages for f in st["bad_rows_files"]})
    for f in bad_files:
        print(f"bad rows set aside: {f}")
    if report.trace_dir:
        print(f"traces: {report.trace_dir}")
    if summary["failed_checks"]:
        print(f"failed asset checks: {', '.join(summary['failed_checks'])}")
    data = report.to_dict()
    data.update(stages=[{k: st[k] for k in ("name", "partitions", "seconds")} for st in stages],
                asset_run=summary["asset_run"], bad_rows_files=bad_files)
    return data
