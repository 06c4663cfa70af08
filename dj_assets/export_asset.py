"""``<recipe>/export``: every materialized partition of the last stage, in partition order, in the
recipe's ``export_path`` and format (Data-Juicer's output, stats file included)."""

# no `from __future__ import annotations`: Dagster reads the compute function's annotations
import dagster as dg
from upath import UPath

from .bundle import RecipeBundle
from .checks import check_specs, export_checks
from .export import export_dataset
from .resources import RUN_QUEUE_KEY, STORAGE_KEY
from .shards import Shard


def export_asset(bundle: RecipeBundle, last_key: dg.AssetKey) -> dg.AssetsDefinition:
    recipe = bundle.recipe
    key = bundle.key("export")

    @dg.asset(
        key=key, ins={"upstream": dg.AssetIn(key=last_key)}, group_name=bundle.name,
        # a run over a range of the stages' partitions exports once (and `dg launch
        # --partition-range` takes a job only when every asset has this policy)
        backfill_policy=dg.BackfillPolicy.single_run(),
        required_resource_keys={STORAGE_KEY, RUN_QUEUE_KEY}, check_specs=check_specs(key, "the exported dataset"),
        kinds={recipe.resolved_export_type}, op_tags={"dj/stage": "export"},
        description=f"Recipe `{bundle.name}`'s result in Data-Juicer's output format: {recipe.export_path}",
        metadata={"export_path": dg.MetadataValue.path(recipe.export_path)},
    )
    def export(context: dg.AssetExecutionContext, upstream: dict[str, Shard]) -> dg.MaterializeResult:
        # partitions still waiting for their run (several inbox files landed at once) join later
        pending = [k for k, s in upstream.items() if not UPath(s.path).exists()]
        if pending:
            context.log.warning(f"{len(pending)} partition(s) not materialized yet, not in this export: {pending[:10]}")
        ready = {k: s for k, s in upstream.items() if k not in pending}
        if not ready:
            raise dg.Failure(f"nothing to export: no partition of {last_key.to_user_string()} is materialized")
        storage = getattr(context.resources, STORAGE_KEY)
        with storage.local_files(list(ready.values())) as files:
            result = export_dataset(recipe, files)
        rows_in = sum_latest_metadata(context.instance, bundle.key(bundle.stages[0].name), list(ready), "rows_in")
        funnel = [("input", rows_in)] + [
            (st.name, sum(storage.row_count(str(storage.partition_path(bundle.key(st.name), k))) or 0 for k in ready))
            for st in bundle.stages]
        ratio = result.rows / rows_in if rows_in else 1.0
        text_key = recipe.text_key if any(st.uses_text for st in bundle.stages) else None
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
            check_results=export_checks(result.rows, result.schema, text_key, ratio,
                                        (recipe.min_keep_ratio, recipe.max_keep_ratio)),
        )

    return export


def sum_latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partitions: list[str], label: str) -> int:
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
