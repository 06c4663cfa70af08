"""A recipe's definitions: its partitioned asset graph, its job, schedule and inbox sensor.

Per recipe ``<name>`` (asset keys prefixed by it, one asset group named after it):

- ``<name>/input_shards``: the input files, an external (source) asset; dynamic partitions
  ``<name>_shards``, one per file or row range of a large file (:mod:`dj_assets.shards`);
- ``<name>/<stage>``: one partitioned asset per stage (:mod:`dj_assets.stage_assets`);
- ``<name>/export``: the whole result in the recipe's ``export_path`` (:mod:`dj_assets.export_asset`);
- ``<name>_job``: an asset job over the stages and the export, run on a partition or a range of
  partitions (every partition: the range first..last, see :mod:`dj_assets.partitions`), tagged
  ``dj/recipe: <name>`` for the instance's run queue;
- ``<name>_schedule`` (recipe key ``schedule``) and ``<name>_inbox_sensor`` (:mod:`dj_assets.automation`).

The resources the assets use are the location's (:mod:`dj_assets.resources`).
"""

from __future__ import annotations

import warnings

import dagster as dg

from .automation import inbox_sensor, recipe_schedule
from .bundle import RECIPE_TAG, RecipeBundle
from .export_asset import export_asset
from .stage_assets import stage_asset

# every asset of a recipe declares a single-run backfill policy (a partition range is one run);
# the parameter is "beta" in Dagster 1.13 and would warn at every load
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def recipe_definitions(bundle: RecipeBundle) -> dg.Definitions:
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
        asset = stage_asset(bundle, stage, prev)
        assets.append(asset)
        prev = asset.key
    assets.append(export_asset(bundle, prev))
    job = dg.define_asset_job(
        bundle.job_name, selection=dg.AssetSelection.assets(*assets), tags={RECIPE_TAG: bundle.name},
        description=(f"Runs recipe `{bundle.name}` on a partition (`--partition`, tag `dagster/partition`) or a "
                     "range (`--partition-range first...last`); a run over every partition is the range from "
                     "the first to the last."))
    schedules = [recipe_schedule(bundle, job)] if recipe.schedule else []
    return dg.Definitions(assets=[source, *assets], jobs=[job], schedules=schedules,
                          sensors=[inbox_sensor(bundle, job)])


def definitions_for(bundles: list[RecipeBundle], location: dg.Definitions) -> dg.Definitions:
    """The definitions of ``bundles`` with the location's resources and executor (``location``,
    see :func:`dj_assets.resources.location_resources`)."""
    return dg.Definitions.merge(*(recipe_definitions(b) for b in bundles), location)
