"""Materializing recipe partitions: rows, metadata, asset checks, partition order, equality with
the local executor."""

from __future__ import annotations

import shutil

import dagster as dg
import pyarrow.parquet as pq
import pytest

from dj_assets.checks import schema_problems
from dj_assets.partitions import sync_partitions
from dj_assets.shards import discover_shards
from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import recipe_from_dict

from .conftest import Log, demo_recipe_dict, make_defs, read_jsonl, run_all, write_jsonl

DEMO_KEYS = ["articles.jsonl", "forum.jsonl", "reviews_electronics.jsonl@0-100",
             "reviews_electronics.jsonl@100-130", "reviews_home.jsonl"]


def local_output(recipe_data: dict, tmp_path) -> list[dict]:
    recipe = recipe_from_dict({**recipe_data, "export_path": str(tmp_path / "local" / "out.jsonl")})
    LocalExecutor(recipe, progress=False).run()
    return read_jsonl(tmp_path / "local" / "out.jsonl")


def materialize(defs, instance, selection, **kw):
    return dg.materialize(list(defs.assets), selection=selection, instance=instance, resources=dict(defs.resources),
                          raise_on_error=False, **kw)


def stage_events(instance, run_id, name):
    return [e.asset_materialization for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.asset_materialization.asset_key.path[-1] == name]


def test_demo_job_every_partition_matches_local_run(instance, demo_data, tmp_path):
    data = demo_recipe_dict(demo_data, tmp_path)
    bundle, defs = make_defs(data, tmp_path)
    result, summary = run_all(defs, bundle, instance)
    assert result.success and result.dagster_run.job_name == "demo_job"
    assert result.dagster_run.tags["dj/recipe"] == "demo"
    assert summary["failed_checks"] == [] and summary["success"]

    # partitions: one per file, the 130-row file split at partition_rows=100, in file order
    assert instance.get_dynamic_partitions("demo_shards") == DEMO_KEYS

    # the export is exactly what the local executor writes, stats file included
    out = read_jsonl(tmp_path / "out" / "demo.jsonl")
    assert out == local_output(data, tmp_path)
    assert read_jsonl(tmp_path / "out" / "demo_stats.jsonl") == read_jsonl(tmp_path / "local" / "out_stats.jsonl")
    assert summary["export"]["rows"] == len(out) and summary["export"]["rows_in"] == 331

    run_id = summary["run_id"]
    for name in ("cleaned", "filtered", "deduped", "language"):
        mats = stage_events(instance, run_id, name)
        assert sorted(m.partition for m in mats) == sorted(DEMO_KEYS)
        for m in mats:
            md = m.metadata
            assert md["rows_out"].value <= md["rows_in"].value
            assert md["keep_ratio"].value == pytest.approx(md["rows_out"].value / md["rows_in"].value, abs=1e-4)
            assert pq.ParquetFile(md["path"].value).metadata.num_rows == md["rows_out"].value
            assert "fused" in md["execution_plan"].value or "global stage" in md["execution_plan"].value
    forum = {m.partition: m for m in stage_events(instance, run_id, "cleaned")}["forum.jsonl"]
    assert forum.metadata["bad_rows"].value == 1  # the record with "text": null
    assert [r.data["op"] for r in forum.metadata["ops"].records][:2] == ["fix_unicode_mapper", "clean_html_mapper"]
    filtered = stage_events(instance, run_id, "filtered")[0].metadata
    stats = {r.data["stat"] for r in filtered["stats_summary"].records}
    # image stats only where the partition has images (the product reviews)
    text_stats = {"text_len", "char_rep_ratio", "special_char_ratio"}
    assert text_stats <= stats <= text_stats | {"image_width", "image_height"}
    assert filtered["histograms"].value.count("data:image/png;base64,") == len(stats)
    lang = stage_events(instance, run_id, "language")[0].metadata
    assert "lang" in {r.data["stat"] for r in lang["stats_summary"].records}

    checks = [e.asset_check_evaluation for e in
              instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    assert len(checks) == 5 * 3 and all(c.passed for c in checks)


def test_single_partitions_and_global_dedup_context(instance, demo_data, tmp_path):
    data = demo_recipe_dict(demo_data, tmp_path)
    bundle, defs = make_defs(data, tmp_path)
    sync_partitions(instance, bundle, Log())
    storage = tmp_path / "storage" / "demo"

    res = materialize(defs, instance, [bundle.key("cleaned"), bundle.key("filtered")], partition_key="forum.jsonl")
    assert res.success
    assert [p.name for p in (storage / "filtered").iterdir()] == ["forum.jsonl.parquet"]
    mat = res.asset_materializations_for_node("demo__cleaned")[0]
    assert (mat.partition, mat.metadata["rows_in"].value, mat.metadata["rows_out"].value) == ("forum.jsonl", 61, 60)
    assert all(c.passed for c in res.get_asset_check_evaluations())
    # stage files in the recipe's stage codec (lz4 by default), the export in its own (snappy)
    codec = pq.ParquetFile(storage / "filtered" / "forum.jsonl.parquet").metadata.row_group(0).column(0).compression
    assert codec == "LZ4"

    # a range running backwards names nothing to do
    res = materialize(defs, instance, [bundle.key("cleaned")],
                      tags={"dagster/asset_partition_range_start": "reviews_home.jsonl",
                            "dagster/asset_partition_range_end": "forum.jsonl"})
    assert not res.success
    assert "comes before" in next(e for e in res.all_events if e.is_step_failure).step_failure_data.error.message

    # the global stage of the last partition needs every earlier partition of its upstream
    res = materialize(defs, instance, [bundle.key("deduped")], partition_key="reviews_home.jsonl")
    assert not res.success
    failure = next(e for e in res.all_events if e.is_step_failure)
    assert "not materialized yet" in failure.step_failure_data.error.message

    res = materialize(defs, instance, [bundle.key("cleaned"), bundle.key("filtered")],
                      tags={"dagster/asset_partition_range_start": DEMO_KEYS[0],
                            "dagster/asset_partition_range_end": DEMO_KEYS[-1]})
    assert res.success and len(res.asset_materializations_for_node("demo__filtered")) == 5
    # the per-row stage before the deduplicator stored each partition's keys, computed in its
    # workers, for the files it wrote
    keys_dir = storage / "deduped" / "_dedup_keys"
    assert sorted(p.name for p in keys_dir.iterdir()) == [f"{k}.parquet" for k in sorted(DEMO_KEYS)]
    res = materialize(defs, instance, [bundle.key("deduped")], partition_key="reviews_home.jsonl")
    assert res.success
    mat = res.asset_materializations_for_node("demo__deduped")[0]
    assert (mat.metadata["dedup_keys_read"].value, mat.metadata["dedup_keys_computed"].value) == (DEMO_KEYS, [])
    assert [p.name for p in (storage / "deduped").glob("*.parquet")] == ["reviews_home.jsonl.parquet"]
    incremental = pq.read_table(storage / "deduped" / "reviews_home.jsonl.parquet").column("text").to_pylist()

    # without stored keys (e.g. written by an older version): keyed once here (and stored), same rows
    shutil.rmtree(keys_dir)
    res = materialize(defs, instance, [bundle.key("deduped")], partition_key="reviews_home.jsonl")
    mat = res.asset_materializations_for_node("demo__deduped")[0]
    assert (mat.metadata["dedup_keys_read"].value, mat.metadata["dedup_keys_computed"].value) == ([], DEMO_KEYS)
    assert sorted(p.name for p in keys_dir.iterdir()) == [f"{k}.parquet" for k in sorted(DEMO_KEYS)]
    assert pq.read_table(storage / "deduped" / "reviews_home.jsonl.parquet").column("text").to_pylist() == incremental

    # a partition written again upstream gets new keys with it; stale keys are never read
    (keys_dir / f"{DEMO_KEYS[0]}.parquet").unlink()
    res = materialize(defs, instance, [bundle.key("cleaned"), bundle.key("filtered")], partition_key=DEMO_KEYS[0])
    assert res.success and (keys_dir / f"{DEMO_KEYS[0]}.parquet").is_file()
    res = materialize(defs, instance, [bundle.key("deduped")], partition_key="reviews_home.jsonl")
    mat = res.asset_materializations_for_node("demo__deduped")[0]
    assert (mat.metadata["dedup_keys_read"].value, mat.metadata["dedup_keys_computed"].value) == (DEMO_KEYS, [])
    assert pq.read_table(storage / "deduped" / "reviews_home.jsonl.parquet").column("text").to_pylist() == incremental

    # same rows as deduplicating everything at once
    res = materialize(defs, instance, [bundle.key("deduped")],
                      tags={"dagster/asset_partition_range_start": DEMO_KEYS[0],
                            "dagster/asset_partition_range_end": DEMO_KEYS[-1]})
    assert res.success
    assert pq.read_table(storage / "deduped" / "reviews_home.jsonl.parquet").column("text").to_pylist() == incremental


def test_dedup_first_occurrence_in_partition_order_and_split_files(instance, tmp_path):
    data_dir = tmp_path / "in"
    write_jsonl(data_dir / "a.jsonl", [{"text": f"doc {i}"} for i in range(10)])
    write_jsonl(data_dir / "b.jsonl", [{"text": f"doc {i}", "src": "b"} for i in range(5, 25)])
    recipe = {"dataset_path": str(data_dir), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "partition_rows": 8, "process": [{"test_upper_mapper": None}, {"test_exact_dedup": None},
                                               {"test_len_filter": {"min_len": 5}}]}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    assert [s.name for s in bundle.stages] == ["stage1", "stage2_test_exact_dedup", "stage3"]
    result, _ = run_all(defs, bundle, instance)
    assert result.success
    assert instance.get_dynamic_partitions("r_shards") == [
        "a.jsonl@0-8", "a.jsonl@8-10", "b.jsonl@0-8", "b.jsonl@8-16", "b.jsonl@16-20"]
    out = read_jsonl(tmp_path / "out" / "r.jsonl")
    assert [r["text"] for r in out] == [f"DOC {i}" for i in range(25)]
    assert out[4].get("src") is None and out[10]["src"] == "b"  # DOC 5..9 kept from a.jsonl, the first
    assert out == local_output(recipe, tmp_path)


def test_global_first_stage_over_split_raw_files(instance, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": f"doc {i % 7}"} for i in range(20)])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "partition_rows": 6, "process": [{"test_exact_dedup": None}, {"test_upper_mapper": None}]}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    assert bundle.stages[0].is_global
    assert run_all(defs, bundle, instance)[0].success
    out = read_jsonl(tmp_path / "out" / "r.jsonl")
    assert [r["text"] for r in out] == [f"DOC {i}" for i in range(7)]
    assert out == local_output(recipe, tmp_path)


def test_keep_ratio_check_fails_outside_bounds(instance, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": "x" * n} for n in range(1, 11)])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "min_keep_ratio": 0.9, "stages": [{"name": "only", "ops": 1, "max_keep_ratio": 0.4}],
              "process": [{"test_len_filter": {"min_len": 6}}]}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    result, summary = run_all(defs, bundle, instance)
    assert result.success  # keep-ratio checks report, they do not block
    assert summary["failed_checks"] == ["r/only:keep_ratio", "r/export:keep_ratio"]


def test_schema_problems():
    import pyarrow as pa

    good = pa.schema([("text", pa.string()), ("meta", pa.string()),
                      ("__dj__stats__", pa.struct([("text_len", pa.int64())]))])
    assert schema_problems(good, "text", ["text", "meta"], ("text_len",)) == []
    bad = pa.schema([("text", pa.int64())])
    assert schema_problems(bad, "text", ["text", "meta"], ("text_len",)) == [
        "text column 'text' is int64, not a string", "input columns lost: ['meta']", "stats missing: ['text_len']"]


def test_discover_shards_orders_dataset_then_inbox(tmp_path):
    write_jsonl(tmp_path / "d" / "sub" / "x.jsonl", [{"text": "a"}])
    write_jsonl(tmp_path / "d" / "w.jsonl", [{"text": "a"}] * 3)
    write_jsonl(tmp_path / "inbox" / "new.jsonl", [{"text": "a"}])
    (tmp_path / "inbox" / ".new2.jsonl.part").write_text("{}\n")
    recipe = recipe_from_dict({"dataset_path": str(tmp_path / "d"), "partition_rows": 2})
    shards = discover_shards(recipe, tmp_path / "inbox")
    assert [(s.key, s.row_range) for s in shards] == [
        ("sub__x.jsonl", None), ("w.jsonl@0-2", (0, 2)), ("w.jsonl@2-3", (2, 3)), ("new.jsonl", None)]


def test_global_first_stage_over_whole_raw_files(instance, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": "x"}, {"text": "y"}])
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"text": "y"}, {"text": "z"}, {"other": 1}])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "process": [{"test_exact_dedup": None}]}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    result, summary = run_all(defs, bundle, instance)
    assert result.success
    stage = summary["stages"][0]
    assert sorted((p["partition"], p["rows_in"], p["rows_out"]) for p in stage["partitions"]) == [
        ("a.jsonl", 2, 2), ("b.jsonl", 3, 1)]
    assert stage["bad_rows"] == 1  # the record without text
    assert read_jsonl(tmp_path / "out" / "r.jsonl") == local_output(recipe, tmp_path)


def test_recipe_without_ops_converts_format(instance, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": 1, "body": "no text field"}, {"id": 2, "body": "x"}])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.parquet"), "np": 1}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    result, summary = run_all(defs, bundle, instance)
    assert result.success and summary["failed_checks"] == []
    assert pq.read_table(tmp_path / "out" / "r.parquet").to_pylist() == [{"id": 1, "body": "no text field"},
                                                                         {"id": 2, "body": "x"}]


def test_export_sums_each_partitions_latest_metadata(instance):
    from dj_assets.export_asset import sum_latest_metadata

    parts = dg.StaticPartitionsDefinition(["a", "b", "c"])

    @dg.asset(partitions_def=parts, config_schema={"a": int, "b": int, "c": int})
    def counted(context):
        return dg.MaterializeResult(metadata={"rows_in": context.op_config[context.partition_key]})

    for values in ({"a": 1, "b": 10, "c": 0}, {"a": 2, "b": 10, "c": 0}, {"a": 3, "b": 10, "c": 0}):
        for key in ("a", "b"):
            assert dg.materialize([counted], instance=instance, partition_key=key,
                                  run_config={"ops": {"counted": {"config": values}}}).success
    assert sum_latest_metadata(instance, counted.key, ["a", "b", "c"], "rows_in") == 3 + 10
    assert sum_latest_metadata(instance, counted.key, ["a"], "rows_in") == 3
