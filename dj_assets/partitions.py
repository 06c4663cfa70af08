"""A recipe's partitions: kept in sync with its input files, and the run tags that select them.

Partitions are dynamic, one per input file or row range of a large file (:mod:`dj_assets.shards`),
in the order of the input files.  "Every partition" is one run over the range from the first
partition to the last: every stage asset has a single-run backfill policy, so a range is one run
and one step per stage.  ``dj-process`` and the recipe's schedule sync the partitions with the
input files first (new files added, vanished ones dropped), then request that range; the inbox
sensor adds the partitions of each new inbox file and requests just those.
"""

from __future__ import annotations

import json

import dagster as dg

from .bundle import RecipeBundle
from .shards import discover_shards

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def partition_order(instance: dg.DagsterInstance, partitions_def: dg.PartitionsDefinition | None) -> list[str]:
    """Partition keys in their defined order (dynamic partitions: the order they were added)."""
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return list(instance.get_dynamic_partitions(partitions_def.name))
    if partitions_def is None:
        return []
    return list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))


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


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags selecting ``keys`` (consecutive partitions): one partition, or a range."""
    if len(keys) == 1:
        return {PARTITION_TAG: keys[0]}
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def untagged_run_message(instance: dg.DagsterInstance, bundle: RecipeBundle) -> str:
    """Why a run that names no partition cannot run the recipe's stages, and what to run instead."""
    keys = partition_order(instance, bundle.partitions)
    job = bundle.job_name
    lines = [f"{job} runs on partitions of {bundle.partitions.name} (one per input file or row range) "
             "and this run names none."]
    if bundle.source:
        lines.append(f"Every partition: `dj-process --config {bundle.source}`, run from {bundle.base_dir} (relative "
                     "paths of the recipe are taken from there), syncs the partitions with the input files, then "
                     "runs all of them in one run.")
    if keys:
        lines.append(f"Registered partitions ({len(keys)}): one run over all of them: "
                     f"`dg launch --job {job} --partition-range '{keys[0]}...{keys[-1]}'` or "
                     f"`dagster job execute -j {job} --tags '{json.dumps(range_tags(keys))}'`; "
                     f"one partition: `dg launch --job {job} --partition '{keys[0]}'`.")
    else:
        lines.append("No partition is registered yet: dj-process, the recipe's schedule (recipe key "
                     "`schedule`) and its inbox sensor register them.")
    return "\n".join(lines)
