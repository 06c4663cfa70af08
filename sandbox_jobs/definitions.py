"""Dagster definitions of sandbox configs: one partition per trial, one asset per step.

For each sandbox config ``<name>`` (``recipes/sandbox/<name>.yaml`` and the same in each folder of
``$DJ_SANDBOX_DIR``; a YAML file with a job list is a sandbox config) in asset group ``<name>``:

- ``<name>/prepared_data`` (when the config has ``prepare_data``): the sample the trials use;
- ``<name>/probe_report`` -> ``refined_recipe`` -> ``processed_dataset`` -> ``trained_model`` ->
  ``evaluation_report``: partitioned by ``<name>_trials`` (dynamic, one key per trial); each
  runs the jobs of its step (probe list; refine list; data hooks of the execution list; model
  hooks of the execution list; evaluation list) through :class:`sandbox_jobs.runner.SandboxRunner`;
- ``<name>/best_recipe``: every trial's parameters and scores, plots across trials, and the best
  trial's recipe (``<work_dir>/best_recipe.yaml``).

Jobs: ``<name>_trial_job`` (a whole trial in one run), ``<name>_<step>_job`` per step and
``<name>_best_recipe_job``.  Sensors: ``<name>_start_trials`` (off by default: switch it on to run
the sandbox unattended) creates the next trial (the HPO study's next proposal, or the next
iteration) as a partition and launches its probe when no trial is in progress;
``<name>_<step>_to_<next>`` start each next step when its input materializes (not when the run
that materialized it covers the next step too); ``<name>_trial_failures`` marks the HPO trial of
a failed run as failed so the study moves on.  The probe step registers its partition itself, so
``dagster job execute -m sandbox_jobs.definitions -j <name>_trial_job --tags
'{"dagster/partition": "<any new key>"}'`` runs a new trial from the command line.
"""


import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from .config import STEPS, SandboxConfig
from .context import TrialContext, load_trial_record
from .loader import is_sandbox_config, load_sandbox_config
from .plots import trials_markdown, trials_table_md
from .runner import SandboxRunner, StepResult

REPO = Path(__file__).resolve().parent.parent
STEP_ASSET = {"probe": "probe_report", "refine": "refined_recipe", "process": "processed_dataset",
              "train": "trained_model", "evaluate": "evaluation_report"}
STEP_DESCRIPTION = {
    "probe": "Analyzer stats of the data (the probe_job_configs jobs): count, mean, std, quantiles per stat.",
    "refine": "The recipe refined from the probe (refine_recipe_job_configs, e.g. k-sigma bounds): a runnable YAML.",
    "process": "The data processed with the refined recipe (data hooks of execution_job_configs).",
    "train": "Small models trained on the processed data (model hooks of execution_job_configs).",
    "evaluate": "Scores of the data and the models (evaluation_job_configs); tells the HPO study the objective.",
}
TRIAL_TAG = "sandbox/trial"


@dataclass
class SandboxBundle:
    name: str
    sandbox: SandboxConfig
    partitions: dg.DynamicPartitionsDefinition

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    def runner(self, log=print) -> SandboxRunner:
        return SandboxRunner(self.sandbox, log=log)

    def steps(self) -> list[str]:
        return [s for s in STEPS if self.sandbox.jobs_for_step(s)]


def sandbox_name(path: Path) -> str:
    name = re.sub(r"\W", "_", path.stem)
    return name if name[:1].isalpha() else f"s_{name}"


def bundle_for(sandbox: SandboxConfig, name: str) -> SandboxBundle:
    return SandboxBundle(name, sandbox, dg.DynamicPartitionsDefinition(name=f"{name}_trials"))


def find_sandbox_bundles(folders: list[Path], base_dir: Path) -> list[SandboxBundle]:
    bundles: dict[str, SandboxBundle] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            if not is_sandbox_config(path):
                continue
            name = sandbox_name(path)
            if name in bundles:
                raise ValueError(f"sandbox configs {bundles[name].sandbox.source} and {path} share the name {name!r}")
            bundles[name] = bundle_for(load_sandbox_config(path, base_dir), name)
    return list(bundles.values())


# ---------------------------------------------------------------------------------------------
# metadata


def _scalars(metrics: dict[str, Any], metas: set[str]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if k.split(".", 1)[0] in metas and isinstance(v, (int, float)) and not isinstance(v, bool)
            and ".stat_shift." not in k}


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.5g}" if isinstance(v, float) else str(v)

    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows)])


def step_metadata(bundle: SandboxBundle, res: StepResult) -> dict[str, Any]:
    record = load_trial_record(bundle.sandbox, res.trial)
    ctx = TrialContext(bundle.sandbox, res.trial)
    md: dict[str, Any] = {
        "trial": res.trial,
        "trial_params": dg.MetadataValue.json(record.params if record else {}),
        "seconds": round(res.seconds, 3),
        "jobs": dg.MetadataValue.md(_md_table(["job", "hook", "meta_name", "seconds"],
                                              [[r.job.where, r.job.hook, r.job.meta_name, round(r.seconds, 2)]
                                               for r in res.jobs])),
        "outputs": dg.MetadataValue.json({r.job.meta_name: {k: v for k, v in r.outputs.items() if k != "bound_changes"}
                                          for r in res.jobs}),
    }
    scores = _scalars(res.metrics, {r.job.meta_name for r in res.jobs if r.job.hook != "ProbeViaAnalyzer"})
    if scores:
        md["scores"] = dg.MetadataValue.json(scores)
        for k, v in scores.items():
            md[k] = v
    for r in res.jobs:
        if r.job.hook == "ProbeViaAnalyzer":
            overall = ctx.query(r.job.meta_name) or {}
            md[f"{r.job.meta_name}_stats"] = dg.MetadataValue.md(_md_table(
                ["stat", "count", "mean", "std", "min", "50%", "max"],
                [[stat, *(rows.get(c) for c in ("count", "mean", "std", "min", "50%", "max"))]
                 for stat, rows in overall.items()]))
        if "bound_changes" in r.outputs:
            md["bound_changes"] = dg.MetadataValue.md(_md_table(
                ["op", "param", "stat", "old", "new", "pinned"],
                [[c["op"], c["param"], c["stat"], c["old"], c["new"], c["pinned"]] for c in r.outputs["bound_changes"]]))
            path = Path(r.outputs["refined_recipe_path"])
            md["refined_recipe_path"] = dg.MetadataValue.path(str(path))
            md["refined_recipe"] = dg.MetadataValue.md(f"```yaml\n{path.read_text()}\n```")
    return md


def study_metadata(bundle: SandboxBundle, runner: SandboxRunner, report: dict[str, Any] | None = None) -> dict[str, Any]:
    rows = report["trials"] if report else runner.trial_rows()
    eval_metas = {j.meta_name for j in bundle.sandbox.jobs_for_step("evaluate") if j.hook != "ProbeViaAnalyzer"}
    scores = sorted({k for r in rows for k in _scalars(r["metrics"], eval_metas)})
    metric = runner.hpo.metric.name if runner.hpo else (scores[0] if scores else None)
    md: dict[str, Any] = {"trials": len(rows),
                          "trials_table": dg.MetadataValue.md(trials_table_md(rows, scores))}
    if metric:
        md["objective_metric"] = metric
        md["trials_plot"] = dg.MetadataValue.md(trials_markdown(rows, metric, runner.hpo.metric.goal if runner.hpo else None))
    best = runner.best_trial(rows)
    if best:
        md["best_trial"] = best["trial"]
        md["best_params"] = dg.MetadataValue.json(best["params"])
        if best["objective"] is not None:
            md["best_objective"] = float(best["objective"])
    return md


# ---------------------------------------------------------------------------------------------
# assets


class TrialConfig(dg.Config):
    """Parameters of a new trial as a JSON object (ignored when the trial exists; with an HPO
    config and no parameters the study proposes them)."""

    params_json: str = ""


def _step_asset(bundle: SandboxBundle, step: str, first: bool, deps: list[dg.AssetKey]) -> dg.AssetsDefinition:
    common = dict(key=bundle.key(STEP_ASSET[step]), partitions_def=bundle.partitions, group_name=bundle.name,
                  deps=deps, description=STEP_DESCRIPTION[step], kinds={"python"})
    if first:
        @dg.asset(**common)
        def first_step(context: dg.AssetExecutionContext, config: TrialConfig) -> dg.MaterializeResult:
            # the first step registers its partition: a run for a new key creates the trial
            if not context.instance.has_dynamic_partition(bundle.partitions.name, context.partition_key):
                context.instance.add_dynamic_partitions(bundle.partitions.name, [context.partition_key])
            runner = bundle.runner(context.log.info)
            runner.ensure_trial(context.partition_key, json.loads(config.params_json) if config.params_json else None)
            return _run(context, bundle, runner, step)

        return first_step

    @dg.asset(**common)
    def next_step(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return _run(context, bundle, bundle.runner(context.log.info), step)

    return next_step


def _step_assets(bundle: SandboxBundle) -> list[dg.AssetsDefinition]:
    assets = []
    deps: list[dg.AssetKey] = [bundle.key("prepared_data")] if bundle.sandbox.prepare_data else []
    for i, step in enumerate(bundle.steps()):
        assets.append(_step_asset(bundle, step, i == 0, deps))
        deps = [bundle.key(STEP_ASSET[step])]
    return assets


def _run(context: dg.AssetExecutionContext, bundle: SandboxBundle, runner: SandboxRunner, step: str) -> dg.MaterializeResult:
    res = runner.run_step(context.partition_key, step)
    md = step_metadata(bundle, res)
    if step == bundle.steps()[-1]:
        objective = runner.finish_trial(context.partition_key)
        if objective is not None:
            md["objective"] = objective
        md.update(study_metadata(bundle, runner))
    return dg.MaterializeResult(metadata=md)


def sandbox_definitions(bundle: SandboxBundle) -> dg.Definitions:
    steps = bundle.steps()
    step_assets = _step_assets(bundle)
    assets: list[dg.AssetsDefinition] = list(step_assets)
    if bundle.sandbox.prepare_data:
        @dg.asset(key=bundle.key("prepared_data"), group_name=bundle.name, kinds={"json"},
                  description="The data the trials use, prepared once from prepare_data.source.")
        def prepared_data(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            done = bundle.runner(context.log.info).prepare()
            return dg.MaterializeResult(metadata={"rows": dg.MetadataValue.json(done["rows"]),
                                                  "paths": dg.MetadataValue.json(done["paths"]),
                                                  "source": dg.MetadataValue.path(done["source"])})

        assets.append(prepared_data)

    @dg.asset(key=bundle.key("best_recipe"), group_name=bundle.name, kinds={"yaml"},
              deps=[bundle.key(STEP_ASSET[steps[-1]])],
              description="Every trial's parameters and scores, plots across trials, the best trial's recipe.")
    def best_recipe(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        runner = bundle.runner(context.log.info)
        report = runner.write_report()
        md = study_metadata(bundle, runner, report)
        md["report"] = dg.MetadataValue.path(report["report_path"])
        if report.get("best_recipe"):
            md["path"] = dg.MetadataValue.path(report["best_recipe"])
            md["recipe"] = dg.MetadataValue.md(f"```yaml\n{Path(report['best_recipe']).read_text()}\n```")
        return dg.MaterializeResult(metadata=md)

    assets.append(best_recipe)

    tags = {"sandbox": bundle.name}
    trial_job = dg.define_asset_job(f"{bundle.name}_trial_job", selection=step_assets,
                                    executor_def=dg.in_process_executor, tags=tags,
                                    description="One whole trial (every step) for one partition.")
    step_jobs = {step: dg.define_asset_job(f"{bundle.name}_{step}_job", selection=[a], tags=tags,
                                           executor_def=dg.in_process_executor)
                 for step, a in zip(steps, step_assets)}
    best_job = dg.define_asset_job(f"{bundle.name}_best_recipe_job", selection=[best_recipe], tags=tags,
                                   executor_def=dg.in_process_executor)

    sensors = [_start_sensor(bundle, step_jobs[steps[0]])]
    for up, down in zip(steps, steps[1:]):
        sensors.append(_chain_sensor(bundle, f"{bundle.name}_{up}_to_{down}", bundle.key(STEP_ASSET[up]),
                                     bundle.key(STEP_ASSET[down]), step_jobs[down], trial_job.name))
    sensors.append(_chain_sensor(bundle, f"{bundle.name}_{steps[-1]}_to_best_recipe", bundle.key(STEP_ASSET[steps[-1]]),
                                 bundle.key("best_recipe"), best_job, None))
    sensors.append(_failure_sensor(bundle, [trial_job, *step_jobs.values()]))
    return dg.Definitions(assets=assets, jobs=[trial_job, *step_jobs.values(), best_job], sensors=sensors)


# ---------------------------------------------------------------------------------------------
# sensors


def _start_sensor(bundle: SandboxBundle, first_job) -> dg.SensorDefinition:
    @dg.sensor(name=f"{bundle.name}_start_trials", job=first_job, minimum_interval_seconds=15,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description="Creates the next trial (HPO proposal or next iteration) and launches its first step.")
    def start_trials(context: dg.SensorEvaluationContext):
        runner = bundle.runner(context.log.info)
        busy = runner.trial_in_progress()
        if busy:
            return dg.SkipReason(f"trial {busy} is in progress")
        record = runner.next_trial()
        if record is None:
            return dg.SkipReason("every trial has finished")
        return dg.SensorResult(
            dynamic_partitions_requests=[bundle.partitions.build_add_request([record.key])],
            run_requests=[dg.RunRequest(run_key=record.key, partition_key=record.key, tags={TRIAL_TAG: record.key})],
        )

    return start_trials


def _chain_sensor(bundle: SandboxBundle, name: str, up: dg.AssetKey, down: dg.AssetKey, job,
                  whole_trial_job: str | None) -> dg.SensorDefinition:
    @dg.sensor(name=name, job=job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING,
               description=f"Materializes {down.to_user_string()} when {up.to_user_string()} materializes.")
    def next_step(context: dg.SensorEvaluationContext):
        after = int(context.cursor) if context.cursor else None
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=up, after_storage_id=after), ascending=True, limit=100).records
        if not records:
            return dg.SkipReason(f"no new {up.to_user_string()} materialization")
        requests = []
        for rec in records:
            run = context.instance.get_run_by_id(rec.event_log_entry.run_id)
            covered = run is not None and (run.job_name == whole_trial_job
                                           or (run.asset_selection is not None and down in run.asset_selection))
            if covered:
                continue  # the same run materializes the next step itself
            part = rec.partition_key if down != bundle.key("best_recipe") else None
            requests.append(dg.RunRequest(run_key=f"{name}-{rec.storage_id}", partition_key=part,
                                          tags={TRIAL_TAG: rec.partition_key} if rec.partition_key else {}))
        return dg.SensorResult(run_requests=requests, cursor=str(records[-1].storage_id))

    return next_step


def _failure_sensor(bundle: SandboxBundle, jobs: list) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name=f"{bundle.name}_trial_failures", monitored_jobs=jobs,
                           default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Marks the HPO trial of a failed run as failed, so the study goes on.")
    def trial_failures(context: dg.RunFailureSensorContext):
        key = context.dagster_run.tags.get("dagster/partition")
        if key:
            bundle.runner(context.log.info).finish_trial(key, error=context.failure_event.message or "run failed")

    return trial_failures


# ---------------------------------------------------------------------------------------------
# the module-level Definitions


def hook_modules() -> None:
    """Import the modules of ``$DJ_SANDBOX_HOOK_MODULES`` (comma-separated): custom hooks."""
    import importlib

    for mod in filter(None, (m.strip() for m in os.environ.get("DJ_SANDBOX_HOOK_MODULES", "").split(","))):
        importlib.import_module(mod)


def sandbox_folders() -> list[Path]:
    extra = [Path(p).resolve() for p in os.environ.get("DJ_SANDBOX_DIR", "").split(os.pathsep) if p]
    return [REPO / "recipes" / "sandbox", *extra]


def build_sandbox_definitions(bundles: list[SandboxBundle]) -> dg.Definitions:
    return dg.Definitions.merge(*(sandbox_definitions(b) for b in bundles)) if bundles else dg.Definitions()


def load_definitions() -> dg.Definitions:
    """Every sandbox config of :func:`sandbox_folders`; relative paths are relative to the repository."""
    hook_modules()
    return build_sandbox_definitions(find_sandbox_bundles(sandbox_folders(), REPO))


defs = load_definitions()

