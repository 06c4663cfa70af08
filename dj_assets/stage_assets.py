"""One partitioned asset per stage of a recipe (:mod:`dj_ops.engine.stages`).

A stage's step runs the stage's fused OP chain through the engine (:mod:`dj_assets.stage_runner`)
over the partitions of its run (one, or a range: every stage asset has a single-run backfill
policy, so a range is one step) and stages one Parquet file per partition, which the IO manager
commits.  A global stage (deduplication) stores each partition's keys beside its file and decides
its partitions against the stored keys of the others (:class:`PartitionKeyStore`).
"""

# no `from __future__ import annotations`: Dagster reads the compute functions' annotations
import os
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import dagster as dg
from upath import UPath

from dj_ops.engine import dedup_store
from dj_ops.core.recipe import Recipe
from dj_ops.engine.stages import Stage

from . import metadata as md
from .bundle import RecipeBundle
from .checks import StageChecks, check_specs
from .gpu import GPU_POOL
from .key_store import PartitionKeyStore
from .partitions import partition_order, untagged_run_message
from .resources import GPU_KEY, IO_MANAGER_KEY, RUN_QUEUE_KEY, STORAGE_KEY
from .shards import Shard, resolve_shards
from .stage_runner import StageRun, keys_ahead, run_global_stage, run_per_row_stage, stage_recipe
from .storage import StagedPartitions


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


def stage_asset(bundle: RecipeBundle, stage: Stage, upstream_key: dg.AssetKey | None) -> dg.AssetsDefinition:
    """The asset of ``stage``; ``upstream_key``: the previous stage's asset (None: the first stage,
    which reads the input files)."""
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
        required_resource_keys={STORAGE_KEY, RUN_QUEUE_KEY, *([GPU_KEY] if stage.uses_gpu else [])},
        check_specs=check_specs(key, "every partition"),
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


def _materialize_stage(context: dg.AssetExecutionContext, bundle: RecipeBundle, stage: Stage,
                       upstream: dict[str, Shard] | None, config: EngineConfig) -> Iterator:
    if not (context.has_partition_key or context.has_partition_key_range):
        raise dg.Failure(untagged_run_message(context.instance, bundle))
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
                f"which are not materialized yet: materialize them first (or all partitions, in one run)")
        shards = [upstream[k] for k in needed]

    storage = getattr(context.resources, STORAGE_KEY)
    recipe = config.apply(bundle.recipe)
    bad_dir = recipe.resolved_work_dir / "bad_rows" / stage.name
    claim = getattr(context.resources, GPU_KEY).claim(context.log) if stage.uses_gpu else nullcontext()
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
        checks = StageChecks(stage, recipe.text_key if stage.uses_text else None, upstream is not None)
        shard_of = {s.key: s for s in shards}
        for res in run.partitions:
            final = str(storage.partition_path(context.asset_key, res.key))
            stats = md.read_stats(res.staged, stage.stats_keys) if res.rows_out else {}
            context.add_asset_metadata(md.partition_metadata(res, final, stats), partition_key=res.key)
            checks.add(res, shard_of[res.key])
        yield dg.Output(StagedPartitions({r.key: r.staged for r in run.partitions}),
                        metadata=md.step_metadata(run, stage, recipe, gpu_label))
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
