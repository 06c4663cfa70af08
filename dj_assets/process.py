"""``dj-process`` through Dagster: the recipe file runs as the recipe's job in the persistent instance.

The recipe file (with its command-line overrides) becomes the same assets, partitions and job as a
recipe under ``recipes/`` (its name is the file's stem, relative paths are taken from the working
directory, partitions go under ``$DJ_STORAGE_ROOT``, default ``./outputs/dagster_storage``).  Its
partitions are synced with the input files, then ``<name>_job`` runs over all of them (the range
first..last) in this process, tagged ``dj/recipe: <name>`` and ``dj/trigger: dj-process``: the run
waits first while the instance's run queue is full for it (:mod:`dj_assets.run_queue`).  The run
and every materialization land in ``$DAGSTER_HOME`` (default: the repository's ``.dagster_home``),
so they show in the UI.  Data-Juicer's outputs are written as by the local executor:
``export_path``, the stats file, bad rows, traces, ``run_report.json``.
"""

import json
import logging
import os
import sys
from pathlib import Path

import dagster as dg

from dj_ops.core.heap import frozen_heap
from dj_ops.core.recipe import Recipe

from .bundle import TRIGGER_TAG, RecipeBundle, bundle_from_recipe, recipe_name
from .gpu import ensure_gpu_pool
from .partitions import range_tags, sync_partitions
from .recipe_defs import definitions_for
from .resources import default_storage_root, location_resources
from .shards import discover_shards
from .summary import first_failure, run_summary

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


def run_every_partition(instance: dg.DagsterInstance, bundle: RecipeBundle, defs: dg.Definitions, log,
                        tags: dict[str, str] | None = None, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """Syncs the recipe's partitions with its input files, then runs ``<name>_job`` over all of them
    (one run over the range first..last) in this process."""
    keys = sync_partitions(instance, bundle, log)
    if not keys:
        raise dg.Failure(f"recipe {bundle.name}: no input files under {bundle.recipe.dataset_path!r} "
                         f"or {str(bundle.inbox)!r}")
    with frozen_heap():
        return defs.resolve_job_def(bundle.job_name).execute_in_process(
            instance=instance, raise_on_error=False, tags={**range_tags(keys), **(tags or {})}, run_config=run_config)


def process_with_dagster(recipe: Recipe, config_path: str, report_path: str | None = None) -> int:
    home = default_dagster_home().resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    cwd = Path.cwd()
    bundle = bundle_from_recipe(recipe, recipe_name(Path(config_path)), cwd, source=str(Path(config_path).resolve()))
    discover_shards(bundle.recipe, bundle.inbox)  # a missing or unreadable dataset fails here, as in local mode
    defs = definitions_for([bundle], location_resources(default_storage_root(cwd)))
    level = os.environ.get("DJ_DAGSTER_LOG_LEVEL", "WARNING")
    with dg.DagsterInstance.get() as instance:
        if any(s.uses_gpu for s in bundle.stages):
            ensure_gpu_pool(instance)
        try:
            result = run_every_partition(instance, bundle, defs, logging.getLogger("dj-process"),
                                         tags={TRIGGER_TAG: "dj-process"},
                                         run_config={"loggers": {"console": {"config": {"log_level": level}}}})
        except dg.Failure as exc:
            print(f"error: {exc.description}", file=sys.stderr)
            return 1
        summary = run_summary(bundle, result)
    if not result.success:
        print(f"error: the Dagster run {result.run_id} failed at {summary['failed_steps']}: {first_failure(result)}",
              file=sys.stderr)
        print(f"inspect it in the UI: DAGSTER_HOME={home} dagster dev -w {REPO / 'workspace.yaml'}", file=sys.stderr)
        return 1
    report = print_summary(bundle.recipe, summary)
    print(f"\ndagster: run {summary['run_id']} of {bundle.job_name} in instance {home}")
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
                dagster_run=summary["run_id"], bad_rows_files=bad_files)
    return data
