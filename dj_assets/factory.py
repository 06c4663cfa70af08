"""Recipe -> Dagster definitions: partitioned stage assets, export, checks, job, automation.

Per recipe ``<name>`` (asset keys prefixed by it, one asset group named after it):

- ``<name>/input_shards``: the input files, an external (source) asset; dynamic partitions
  ``<name>_shards``, one per file or row range of a large file (see :mod:`dj_assets.shards`);
- ``<name>/<stage>``: one partitioned asset per stage (:mod:`dj_ops.engine.stages`), whose step
  runs the stage's fused OP chain through the engine and writes one Parquet file per partition;
  a global stage (deduplication) stores each partition's keys beside its file and decides its
  partitions against the stored keys of the others (:class:`PartitionKeyStore`);
- ``<name>/export``: the whole result in the recipe's ``export_path`` and format (Data-Juicer's
  output, stats file included);
- ``<name>_job`` (all of the above), ``<name>_schedule`` (recipe key ``schedule``) and
  ``<name>_inbox_sensor`` (see :mod:`dj_assets.automation`).

Asset runs always name their partitions (one, or a range: every stage asset has a single-run
backfill policy, so a range is one run and one step per stage).  ``<name>_job`` is the entry
point that needs none: untagged (``dagster job execute -j <name>_job``, schedules, ``dj-process``)
it syncs the partitions with the input files and materializes all of them.
"""

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from dj_ops.engine import dedup_store
from dj_ops.core.constants import Fields
from dj_ops.core.heap import frozen_heap
from dj_ops.core.recipe import Recipe, load_recipe
from dj_ops.engine.stages import Stage, plan_stages

from . import metadata as md
from .gpu import GPU_POOL
from .shards import Shard, discover_shards, resolve_shards
from .stage_runner import (PartitionResult, StageRun, keys_ahead, run_global_stage, run_per_row_stage, safe_name,
                           stage_recipe)
from .storage import StagedPartitions, partition_order

# every stage asset declares a single-run backfill policy (a partition range is one step); the
# parameter is "beta" in Dagster 1.13 and would warn at every load
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

IO_MANAGER_KEY = "dj_parquet_io"
RECIPE_TAG = "dj/recipe"


@dataclass
class RecipeBundle:
    """A recipe ready for orchestration: its name, stages and absolute paths."""

    name: str
    source: str
    recipe: Recipe
    stages: list[Stage]
    inbox: Path
    inbox_explicit: bool
    partitions: dg.DynamicPartitionsDefinition

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    @property
    def job_name(self) -> str:
        return f"{self.name}_job"

    @property
    def asset_keys(self) -> list[dg.AssetKey]:
        """The stage assets in order, then the export."""
        return [self.key(st.name) for st in self.stages] + [self.key("export")]


def recipe_name(path: Path) -> str:
    """``recipes/<name>.yaml`` or ``recipes/<name>/recipe.yaml`` -> a valid Dagster name."""
    stem = path.parent.name if path.stem == "recipe" else path.stem
    name = re.sub(r"\W", "_", stem)
    return name if name[:1].isalpha() else f"r_{name}"


def _absolute(p: str, base: Path) -> str:
    return str(Path(p) if Path(p).is_absolute() or "://" in p else (base / p).resolve())


def bundle_from_recipe(recipe: Recipe, name: str, base_dir: Path, source: str = "") -> RecipeBundle:
    """Relative paths of the recipe are taken relative to ``base_dir``."""
    update = {
        "dataset_path": " ".join(_absolute(p, base_dir) for p in recipe.dataset_path.split()),
        "export_path": _absolute(recipe.export_path, base_dir),
    }
    if recipe.work_dir:
        update["work_dir"] = _absolute(recipe.work_dir, base_dir)
    inbox = Path(_absolute(recipe.inbox_path, base_dir)) if recipe.inbox_path else base_dir / "inbox" / name
    recipe = recipe.model_copy(update=update)
    return RecipeBundle(name, source, recipe, plan_stages(recipe), inbox.resolve(), bool(recipe.inbox_path),
                        dg.DynamicPartitionsDefinition(name=f"{name}_shards"))


def load_bundle(path: Path, base_dir: Path) -> RecipeBundle:
    return bundle_from_recipe(load_recipe(path), recipe_name(path), base_dir, source=str(path))


# ---------------------------------------------------------------------------------------------
# stage assets


def _check_specs(key: dg.AssetKey, what: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("non_empty", asset=key, description=f"{what} has at least one row"),
        dg.AssetCheckSpec("schema", asset=key, blocking=True,
                          description="text column is a string; input columns kept; the stage's stats present"),
        dg.AssetCheckSpec("keep_ratio", asset=key, description="rows out / rows in within the recipe's bounds"),
    ]


class EngineConfig(dg.Config):
    """Run config of a stage step: the engine's executor, overriding the recipe's keys."""

    executor_type: str = ""  # "", the recipe's; "local" or "ray"
    ray_address: str = ""  # "", the recipe's

    def apply(self, recipe: Recipe) -> Recipe:
        recipe = recipe.model_copy()
        for key in ("executor_type", "ray_address"):
            if getattr(self, key):
                setattr(recipe, key, getattr(self, key))  # validated like the recipe key
        return recipe


def _stage_asset(bundle: RecipeBundle, stage: Stage, upstream_key: dg.AssetKey | None) -> dg.AssetsDefinition:
    key = bundle.key(stage.name)
    kind = "global stage over all partitions" if stage.is_global else "per-row stage"
    common = dict(
        key=key,
        partitions_def=bundle.partitions,
        group_name=bundle.name,
        io_manager_key=IO_MANAGER_KEY,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=GPU_POOL if stage.uses_gpu else None,
        kinds={"parquet", "gpu"} if stage.uses_gpu else {"parquet"},
        required_resource_keys={"dj_storage", "gpu"} if stage.uses_gpu else {"dj_storage"},
        check_specs=_check_specs(key, "every partition"),
        description=f"Stage {stage.index} of recipe `{bundle.name}` ({kind}): " + " → ".join(stage.op_names),
        metadata={"ops": dg.MetadataValue.json([{s.name: dict(s.params)} for s in stage.specs]),
                  "recipe": bundle.source or bundle.name},
        op_tags={"dj/stage": stage.name},
    )
    if upstream_key is None:
        @dg.asset(deps=[bundle.key("input_shards")], **common)
        def first_stage(context: dg.AssetExecutionContext, config: EngineConfig):
            yield from _materialize_stage(context, bundle, stage, None, config)

        return first_stage

    mapping = dg.AllPartitionMapping() if stage.is_global else None

    @dg.asset(ins={"upstream": dg.AssetIn(key=upstream_key, partition_mapping=mapping)}, **common)
    def later_stage(context: dg.AssetExecutionContext, config: EngineConfig, upstream: dict[str, Shard]):
        yield from _materialize_stage(context, bundle, stage, upstream, config)

    return later_stage


def sync_partitions(instance: dg.DagsterInstance, bundle: RecipeBundle, log) -> list[str]:
    """Make the dynamic partitions mirror the input files: add new shards, drop vanished ones."""
    keys = [s.key for s in discover_shards(bundle.recipe, bundle.inbox)]
    name = bundle.partitions.name
    registered = instance.get_dynamic_partitions(name)
    new = [k for k in keys if k not in set(registered)]
    if new:
        instance.add_dynamic_partitions(name, new)
        log.info(f"added {len(new)} partition(s) to {name}: {new[:10]}{' ...' if len(new) > 10 else ''}")
    for k in set(registered) - set(keys):
        instance.delete_dynamic_partition(name, k)
        log.warning(f"partition {k!r} of {name} dropped: its input file is gone")
    return keys


def _materialize_stage(context: dg.AssetExecutionContext, bundle: RecipeBundle, stage: Stage,
                       upstream: dict[str, Shard] | None, config: EngineConfig) -> Iterator:
    if not (context.has_partition_key or context.has_partition_key_range):
        raise dg.Failure(f"{context.asset_key.to_user_string()} runs on partitions: run {bundle.job_name} "
                         "(every partition when untagged) or tag the run with a partition or a range")
    order = partition_order(context.instance, bundle.partitions)
    span = context.partition_key_range  # read from the run's tags (context.partition_keys looks each end up again)
    unknown = [k for k in (span.start, span.end) if k not in order]
    if unknown:
        raise dg.Failure(f"partitions {unknown} are not partitions of {bundle.partitions.name}")
    targets = order[order.index(span.start):order.index(span.end) + 1]
    if not targets:
        raise dg.Failure(f"partition range {span.start!r}..{span.end!r} is empty: {span.end!r} comes before "
                         f"{span.start!r} in {bundle.partitions.name}")
    needed = order[:order.index(targets[-1]) + 1] if stage.is_global else targets
    # a global stage's later partitions join its decision through their stored keys only
    later = order[order.index(targets[-1]) + 1:] if stage.is_global else []
    if upstream is None:
        shards = resolve_shards(bundle.recipe, bundle.inbox, needed)
        later_shards = resolve_shards(bundle.recipe, bundle.inbox, later) if later else []
    else:
        later_shards = [upstream[k] for k in later if k in upstream]
        missing = [k for k in needed if k not in upstream or not UPath(upstream[k].path).exists()]
        if missing:
            raise dg.Failure(
                f"{context.asset_key.to_user_string()} needs partitions {missing[:10]} of its upstream stage, "
                f"which are not materialized yet: materialize them first (or run {bundle.job_name})")
        shards = [upstream[k] for k in needed]

    storage = context.resources.dj_storage
    recipe = config.apply(bundle.recipe)
    bad_dir = recipe.resolved_work_dir / "bad_rows" / stage.name
    claim = context.resources.gpu.claim(context.log) if stage.uses_gpu else nullcontext()
    with storage.staging() as staging, storage.local_files(shards) as files:
        with claim as device:
            gpu_label = None if not stage.uses_gpu else \
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}" if device else "no GPU on host"
            if stage.is_global:
                key_store = PartitionKeyStore(storage, context.asset_key, [*shards, *later_shards])
                run = run_global_stage(recipe, stage, shards, files, targets, staging, bad_dir, context.log.info,
                                       key_store, [s.key for s in later_shards])
                if run.stale_partitions:
                    context.log.warning(
                        f"{stage.name}: a row of {targets} joined near-duplicate clusters of earlier partitions, "
                        f"whose outputs are now out of date: materialize {run.stale_partitions} again")
            else:
                following = bundle.stages[stage.index] if stage.index < len(bundle.stages) else None
                # keys stored ahead name the committed file by its size and time, which only a
                # local commit (a rename) keeps
                ahead = keys_ahead(recipe, stage, following) if storage.is_local else None
                run = run_per_row_stage(recipe, stage, shards, files, staging, bad_dir, context.log.info, ahead)
                if run.keys_ahead:
                    _store_keys_ahead(run, storage, context.asset_key, bundle, recipe, following, staging)
        context.log.info(
            f"{stage.name}: {len(run.partitions)} partition(s), {sum(r.rows_in for r in run.partitions)} -> "
            f"{sum(r.rows_out for r in run.partitions)} rows, {run.report.bad_rows} bad, engine {run.report.seconds:.2f} s")
        checks = _CheckAccumulator(stage, recipe.text_key if stage.uses_text else None, upstream is not None)
        shard_of = {s.key: s for s in shards}
        for res in run.partitions:
            final = str(storage.partition_path(context.asset_key, res.key))
            stats = md.read_stats(res.staged, stage.stats_keys) if res.rows_out else {}
            context.add_asset_metadata(md.partition_metadata(res, final, stats), partition_key=res.key)
            checks.add(res, shard_of[res.key])
        yield dg.Output(StagedPartitions({r.key: r.staged for r in run.partitions}),
                        metadata=_run_metadata(run, stage, recipe, gpu_label))
    yield from checks.results()


def _store_keys_ahead(run: StageRun, storage, asset_key: dg.AssetKey, bundle: RecipeBundle, recipe: Recipe,
                      following: Stage, staging: Path) -> None:
    """The following global stage's keys of this stage's partitions, stored where that stage looks
    for them, naming each partition file as it will be once committed (os.replace keeps its size
    and time; elsewhere the names differ and the global stage computes the keys itself)."""
    store = PartitionKeyStore(storage, bundle.key(following.name), [])
    fingerprint = dedup_store.keys_fingerprint(stage_recipe(recipe, following), 0)
    for res in run.partitions:
        source = store.source_of(str(storage.partition_path(asset_key, res.key)), None, UPath(res.staged))
        store.save(res.key, fingerprint, run.keys_ahead[res.key], None, staging, source=source)


def _run_metadata(run: StageRun, stage: Stage, recipe: Recipe, gpu_label: str | None) -> dict:
    """Metadata of the step as a whole (Dagster shows it on every partition it wrote)."""
    meta: dict = {
        "execution_plan": dg.MetadataValue.md(md.plan_markdown(stage, recipe.np, recipe.batch_size, gpu_label)),
        "partitions_in_step": len(run.partitions),
    }
    if stage.is_global:
        meta["dedup"] = dg.MetadataValue.json(run.report.dedup)
        meta.update(md.dedup_metadata(run.report.dedup))
        if run.report.trace_dir:
            meta["trace_dir"] = dg.MetadataValue.path(run.report.trace_dir)
    if stage.is_global and not (run.keys_read or run.keys_computed):  # earlier partitions run as context
        meta["ops_all_partitions_read"] = md.ops_table(run.report.ops)
        meta["context_partitions"] = run.context_partitions
        meta["bad_rows_step"] = run.report.bad_rows
        if run.report.bad_rows_file:
            meta["bad_rows_file"] = dg.MetadataValue.path(run.report.bad_rows_file)
    elif stage.is_global:
        meta["dedup_keys_read"] = dg.MetadataValue.json(run.keys_read)
        meta["dedup_keys_computed"] = dg.MetadataValue.json(run.keys_computed)
        meta["stale_partitions"] = dg.MetadataValue.json(run.stale_partitions)
    return meta


class PartitionKeyStore:
    """A global stage's deduplication keys, one small Parquet file per partition beside the
    partition files: ``<root>/<recipe>/<stage>/_dedup_keys/<partition>.parquet``.  Stored keys
    name the input they were computed from (path, row range, size, modification time), so keys of
    a partition whose upstream changed are never read."""

    def __init__(self, storage, asset_key: dg.AssetKey, shards: list[Shard]):
        self.storage = storage
        self.folder = storage.base.joinpath(*asset_key.path, "_dedup_keys")
        self.shards = {s.key: s for s in shards}

    def path(self, partition: str) -> UPath:
        return self.folder / f"{partition}.parquet"

    def source(self, partition: str) -> str | None:
        shard = self.shards.get(partition)
        if shard is None:
            return None
        return self.source_of(shard.path, shard.row_range, UPath(shard.path))

    @staticmethod
    def source_of(path: str, row_range, file: UPath) -> str | None:
        """What the keys of ``path`` (and ``row_range``) are valid for: its size and time, read
        from ``file`` (the file itself, or a staged copy to be moved there)."""
        try:
            info = file.fs.info(file.path)
        except FileNotFoundError:
            return None
        stamp = next((info[k] for k in ("mtime", "LastModified", "last_modified", "created", "ETag") if info.get(k)), "")
        return f"{path}|{row_range}|{info.get('size')}|{stamp}"

    def load(self, partition: str, fingerprint: str):
        source, path = self.source(partition), self.path(partition)
        if source is None or not path.exists():
            return None
        with path.open("rb") as f:
            return dedup_store.read_keys(f, fingerprint, source)

    def save(self, partition: str, fingerprint: str, keys, removed, staging: Path, source: str | None = None) -> None:
        source = source or self.source(partition)
        if source is None:
            return
        staged = staging / "_dedup_keys" / f"{safe_name(partition)}.parquet"
        dedup_store.write_keys(staged, keys, fingerprint, source, removed)
        self.storage.commit(staged, self.path(partition))


class _CheckAccumulator:
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
        expected = _input_columns(shard) if self.parquet_input else []
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


def _input_columns(shard: Shard) -> list[str]:
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


# ---------------------------------------------------------------------------------------------
# export


def _export_asset(bundle: RecipeBundle, last_key: dg.AssetKey) -> dg.AssetsDefinition:
    recipe = bundle.recipe
    key = bundle.key("export")

    @dg.asset(
        key=key, ins={"upstream": dg.AssetIn(key=last_key)}, group_name=bundle.name,
        required_resource_keys={"dj_storage"}, check_specs=_check_specs(key, "the exported dataset"),
        kinds={recipe.resolved_export_type}, op_tags={"dj/stage": "export"},
        description=f"Recipe `{bundle.name}`'s result in Data-Juicer's output format: {recipe.export_path}",
        metadata={"export_path": dg.MetadataValue.path(recipe.export_path)},
    )
    def export(context: dg.AssetExecutionContext, upstream: dict[str, Shard]) -> dg.MaterializeResult:
        from .export import export_dataset

        # partitions still waiting for their run (several inbox files landed at once) join later
        pending = [k for k, s in upstream.items() if not UPath(s.path).exists()]
        if pending:
            context.log.warning(f"{len(pending)} partition(s) not materialized yet, not in this export: {pending[:10]}")
        ready = {k: s for k, s in upstream.items() if k not in pending}
        if not ready:
            raise dg.Failure(f"nothing to export: no partition of {last_key.to_user_string()} is materialized")
        storage = context.resources.dj_storage
        with storage.local_files(list(ready.values())) as files:
            result = export_dataset(recipe, files)
        rows_in = _sum_latest_metadata(context.instance, bundle.key(bundle.stages[0].name), list(ready), "rows_in")
        funnel = [("input", rows_in)] + [
            (st.name, sum(storage.row_count(str(storage.partition_path(bundle.key(st.name), k))) or 0 for k in ready))
            for st in bundle.stages]
        ratio = result.rows / rows_in if rows_in else 1.0
        lo, hi = recipe.min_keep_ratio, recipe.max_keep_ratio
        text_key = recipe.text_key if any(st.uses_text for st in bundle.stages) else None
        schema_issues = schema_problems(result.schema, text_key, [], ()) if result.rows else []
        return dg.MaterializeResult(
            metadata={
                "rows": result.rows,
                "rows_in": rows_in,
                "keep_ratio": round(ratio, 4),
                "partitions": len(ready),
                "partitions_pending": dg.MetadataValue.json(pending),
                "path": dg.MetadataValue.path(result.outputs[0] if len(result.outputs) == 1 else recipe.export_path),
                "outputs": dg.MetadataValue.json(result.outputs),
                "stats_file": dg.MetadataValue.path(result.stats_file) if result.stats_file else None,
                "rows_per_stage": dg.MetadataValue.md(
                    "| stage | rows |\n|---|---|\n" + "\n".join(f"| {n} | {r} |" for n, r in funnel)),
                "columns": dg.MetadataValue.table_schema(dg.TableSchema(columns=[
                    dg.TableColumn(f.name, str(f.type)) for f in result.schema])),
            },
            check_results=[
                dg.AssetCheckResult(check_name="non_empty", passed=result.rows > 0),
                dg.AssetCheckResult(check_name="schema", passed=not schema_issues,
                                    metadata={"problems": dg.MetadataValue.json(schema_issues)}),
                dg.AssetCheckResult(check_name="keep_ratio", passed=lo <= ratio <= hi,
                                    metadata={"bounds": dg.MetadataValue.json([lo, hi]), "keep_ratio": round(ratio, 4)}),
            ],
        )

    return export


def _sum_latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str], label: str) -> int:
    """Sum over ``partitions`` of a number in each one's latest materialization metadata.  Reads
    one record per partition, however often the partitions were materialized before."""
    latest = instance.event_log_storage.get_latest_storage_id_by_partition(
        key, dg.DagsterEventType.ASSET_MATERIALIZATION, set(partitions))
    ids = sorted(latest.values())
    total = 0
    for start in range(0, len(ids), 1000):
        page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, storage_ids=ids[start:start + 1000]),
                                               limit=1000)
        for rec in page.records:
            mat = rec.asset_materialization
            if mat is not None and label in mat.metadata:
                total += int(mat.metadata[label].value)
    return total


# ---------------------------------------------------------------------------------------------
# the recipe's definitions


PARTITION_TAGS = ("dagster/partition", "dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def materialize_recipe(instance: dg.DagsterInstance, bundle: RecipeBundle, defs: dg.Definitions,
                       run_tags: dict[str, str], log, loggers: dict | None = None,
                       extra_tags: dict[str, str] | None = None) -> tuple[dg.ExecuteInProcessResult, dict, dict]:
    """One asset run of the recipe's stages and export over the partitions ``run_tags`` names
    (a partition or a range), or over every partition (partitions synced with the input files
    first) when it names none.  Returns the result, its :func:`run_summary` and the partition tags."""
    tags = {k: run_tags[k] for k in PARTITION_TAGS if k in run_tags}
    if not tags:
        sync_partitions(instance, bundle, log)
        order = partition_order(instance, bundle.partitions)
        if not order:
            raise dg.Failure(f"recipe {bundle.name}: no input files under {bundle.recipe.dataset_path!r} "
                             f"or {str(bundle.inbox)!r}")
        tags = ({PARTITION_TAGS[0]: order[0]} if len(order) == 1
                else {PARTITION_TAGS[1]: order[0], PARTITION_TAGS[2]: order[-1]})
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(bundle.asset_keys))
    log.info(f"materializing {bundle.name} for {tags}")
    with frozen_heap():
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        run_config={"loggers": loggers} if loggers else None,
                                        tags={**tags, RECIPE_TAG: bundle.name, **(extra_tags or {})})
    return result, run_summary(bundle, result), tags


def _driver_job(bundle: RecipeBundle, holder: dict) -> dg.JobDefinition:
    """``<name>_job``: plans the partitions of a recipe run and materializes them in one asset run.

    Dagster cannot run partitioned assets whose upstream is partitioned without a partition in
    the run, so "every partition" (an untagged run) needs this step: it syncs the partitions with
    the input files and starts the asset run over the whole range; a run tagged with a partition
    or a range passes it on.  The asset run appears in the UI beside this one (job
    ``__ASSET_JOB``, tag ``dj/driver_run``).
    """

    @dg.op(name=f"{bundle.name}_run",
           description="Syncs the partitions with the input files (untagged run), then materializes the recipe's assets")
    def run_recipe(context: dg.OpExecutionContext) -> dict:
        result, summary, tags = materialize_recipe(
            context.instance, bundle, holder["defs"], context.run.tags, context.log,
            loggers=context.run_config.get("loggers"),  # the asset run logs like this run
            extra_tags={"dj/driver_run": context.run_id})
        context.add_output_metadata({
            "asset_run": dg.MetadataValue.dagster_run(result.run_id),
            "partitions": tags,
            "rows_out": summary["export"].get("rows", 0),
            "failed_checks": dg.MetadataValue.json(summary["failed_checks"]),
        })
        if not result.success:
            raise dg.Failure(f"asset run {result.run_id} of recipe {bundle.name} failed at steps "
                             f"{summary['failed_steps']}: {first_failure(result)}",
                             metadata={"asset_run": dg.MetadataValue.dagster_run(result.run_id)})
        return summary

    @dg.job(name=bundle.job_name, partitions_def=bundle.partitions, executor_def=dg.in_process_executor,
            tags={RECIPE_TAG: bundle.name},
            description=(f"Runs recipe `{bundle.name}`: every partition (untagged), one (`dagster/partition` tag, "
                         "`--partition`) or a range."))
    def driver():
        run_recipe()

    return driver


def first_failure(result) -> str:
    """The error message of the first failed step of a run ("" when none says)."""
    return next((e.step_failure_data.error.message.strip() for e in result.all_events
                 if e.is_step_failure and e.step_failure_data.error), "")


def run_summary(bundle: RecipeBundle, result) -> dict:
    """Per-stage totals and the export of an asset run, from its materializations (what
    ``dj-process`` prints): rows, per-OP rows and seconds summed over partitions, bad rows."""
    stages: dict[str, dict] = {}
    export: dict = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        name = mat.asset_key.path[-1]
        meta = mat.metadata
        if name == "export":
            export = {k: meta[k].value for k in ("rows", "rows_in", "keep_ratio", "outputs", "stats_file") if k in meta}
            continue
        st = stages.setdefault(name, {"name": name, "partitions": [], "rows_in": 0, "rows_out": 0, "bad_rows": 0,
                                      "seconds": 0.0, "ops": [], "bad_rows_files": []})
        st["partitions"].append({"partition": mat.partition, "rows_in": meta["rows_in"].value,
                                 "rows_out": meta["rows_out"].value})
        st["rows_in"] += meta["rows_in"].value
        st["rows_out"] += meta["rows_out"].value
        if "bad_rows_file" in meta and meta["bad_rows_file"].value not in st["bad_rows_files"]:
            st["bad_rows_files"].append(meta["bad_rows_file"].value)
        if "dedup" in meta:  # a global stage: its decision over every partition
            st["dedup"] = meta["dedup"].value
        if "ops_all_partitions_read" in meta:  # a global stage: one engine run for the whole step
            st["ops"] = [_op_row(r) for r in meta["ops_all_partitions_read"].records]
            st["bad_rows"], st["seconds"] = meta["bad_rows_step"].value, meta["seconds"].value
            continue
        st["bad_rows"] += meta["bad_rows"].value
        st["seconds"] = round(st["seconds"] + meta["seconds"].value, 3)
        rows = [_op_row(r) for r in meta["ops"].records] if "ops" in meta else []
        st["ops"] = rows if not st["ops"] else [
            {**a, **{k: round(a[k] + b[k], 3) for k in ("rows_in", "rows_out", "changed", "errors", "cpu_seconds")}}
            for a, b in zip(st["ops"], rows)]
    failed_steps = [e.step_key for e in result.all_events if e.is_step_failure]
    failed_checks = [f"{c.asset_key.to_user_string()}:{c.check_name}" for c in result.get_asset_check_evaluations()
                     if not c.passed]
    order = [s.name for s in bundle.stages]
    trace_dir = str(bundle.recipe.resolved_work_dir / "trace") if bundle.recipe.open_tracer else None
    return {"asset_run": result.run_id, "success": result.success, "failed_steps": failed_steps,
            "failed_checks": failed_checks, "stages": sorted(stages.values(), key=lambda s: order.index(s["name"])),
            "export": export, "trace_dir": trace_dir}


def _op_row(record: dg.TableRecord) -> dict:
    d = record.data
    return {"name": d["op"], "kind": d["kind"], "rows_in": d["rows_in"], "rows_out": d["rows_out"],
            "changed": d["changed"], "errors": d["errors"], "cpu_seconds": d["cpu_seconds"]}


def recipe_definitions(bundle: RecipeBundle, holder: dict) -> dg.Definitions:
    """The recipe's assets, job, schedule and sensor; ``holder["defs"]`` must be set to the final
    Definitions (the job starts its asset run from them)."""
    from .automation import inbox_sensor, recipe_schedule

    recipe = bundle.recipe
    source = dg.AssetSpec(
        bundle.key("input_shards"), partitions_def=bundle.partitions, group_name=bundle.name,
        description=(f"Input of recipe `{bundle.name}`: one partition per file of `{recipe.dataset_path}` "
                     f"and of the inbox `{bundle.inbox}`; files over {recipe.partition_rows} rows are split "
                     "into row ranges (`file@start-stop`)."),
        metadata={"dataset_path": recipe.dataset_path, "inbox": dg.MetadataValue.path(str(bundle.inbox)),
                  "partition_rows": recipe.partition_rows},
        kinds={"jsonl"},
    )
    assets, prev = [], None
    for stage in bundle.stages:
        asset = _stage_asset(bundle, stage, prev)
        assets.append(asset)
        prev = asset.key
    assets.append(_export_asset(bundle, prev))
    job = _driver_job(bundle, holder)
    schedules = [recipe_schedule(bundle, job)] if recipe.schedule else []
    return dg.Definitions(assets=[source, *assets], jobs=[job], schedules=schedules,
                          sensors=[inbox_sensor(bundle, [a.key for a in assets])])
