"""Global near-duplicate removal across partitions: each partition's keys are stored beside its
output; materializing partitions one at a time gives the rows of one local run over every file."""

from __future__ import annotations

import json

import dagster as dg
import pyarrow.parquet as pq

from dj_assets.partitions import sync_partitions
from dj_assets.summary import run_summary
from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import recipe_from_dict

from ..test_dedup_store import MINHASH, near_duplicate_partitions
from .conftest import Log, make_defs, read_jsonl, write_jsonl


def _materialize(defs, instance, bundle, key):
    res = dg.materialize(list(defs.assets), selection=[bundle.key(bundle.stages[0].name)], instance=instance,
                         resources=dict(defs.resources), partition_key=key, raise_on_error=False)
    assert res.success
    mats = res.asset_materializations_for_node(f"r__{bundle.stages[0].name}")
    return mats[0].metadata, res


def _setup(tmp_path, instance, parts, extra=None):
    for i, rows in enumerate(parts):
        write_jsonl(tmp_path / "in" / f"p{i}.jsonl", rows)
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "process": [MINHASH], **(extra or {})}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    keys = sync_partitions(instance, bundle, Log())
    return recipe, bundle, defs, keys


def _stage_texts(tmp_path, bundle, keys) -> list[str]:
    folder = tmp_path / "storage" / "r" / bundle.stages[0].name
    tables = [pq.read_table(folder / f"{k}.parquet") for k in keys]
    return [t for table in tables if table.num_rows for t in table.column("text").to_pylist()]


def _local_texts(recipe, tmp_path) -> list[str]:
    r = recipe_from_dict({**recipe, "export_path": str(tmp_path / "local" / "out.jsonl"),
                          "work_dir": str(tmp_path / "local")})
    LocalExecutor(r, progress=False).run()
    return [row["text"] for row in read_jsonl(tmp_path / "local" / "out.jsonl")]


def test_partitions_one_at_a_time_equal_one_local_run(instance, tmp_path):
    recipe, bundle, defs, keys = _setup(tmp_path, instance, near_duplicate_partitions(),
                                        {"open_tracer": True, "trace_num": 12, "work_dir": str(tmp_path / "work")})
    assert keys == ["p0.jsonl", "p1.jsonl", "p2.jsonl"]
    for i, key in enumerate(keys):
        meta, res = _materialize(defs, instance, bundle, key)
        # earlier partitions' keys are read from the store, never recomputed
        assert meta["dedup_keys_read"].value == keys[:i]
        assert meta["dedup_keys_computed"].value == [key]
        assert meta["stale_partitions"].value == []
    assert _stage_texts(tmp_path, bundle, keys) == _local_texts(recipe, tmp_path)

    # the report of the last step: clusters, removed rows, sample pairs with their similarity
    summary = meta["dedup"].value["document_minhash_deduplicator"]
    kept = len(_stage_texts(tmp_path, bundle, keys))
    assert summary["rows"] == 120 and summary["removed_rows"] == 120 - kept == meta["dedup_removed_rows"].value
    assert summary["partitions"] == 3 and meta["dedup_clusters"].value == summary["clusters"] > 0
    pair = summary["sample_pairs"][0]
    assert 0 < pair["estimated_jaccard"] <= 1 and pair["survivor"]["partition"] in keys
    assert "Jaccard" in meta["dedup_sample_pairs"].value
    assert run_summary(bundle, res)["stages"][0]["dedup"] == meta["dedup"].value
    trace = [json.loads(line) for line in (tmp_path / "work" / "trace" / "duplicate-document_minhash_deduplicator.jsonl")
             .read_text().splitlines()]
    assert trace and {"dup1", "dup2", "estimated_jaccard", "where"} <= set(trace[0])
    assert len(trace) == min(12, summary["removed_rows"]) > 10  # as many pairs as traced, each with its similarity
    # texts of the rows of the step's own partition, a placeholder for the others
    for t in trace:
        for name, role in (("dup1", "survivor"), ("dup2", "removed")):
            where = t["where"][role]
            assert (t[name].startswith("<") if where["partition"] != "p2.jsonl" else t[name].startswith(("w", "W")))


def test_a_later_row_joining_two_clusters_marks_the_earlier_partition_stale(instance, tmp_path):
    a = " ".join(f"a{i}" for i in range(100))
    b = " ".join(f"b{i}" for i in range(100))
    recipe, bundle, defs, keys = _setup(tmp_path, instance, [[{"text": a}, {"text": b}], [{"text": a + " " + b}]])
    _materialize(defs, instance, bundle, "p0.jsonl")
    meta, _ = _materialize(defs, instance, bundle, "p1.jsonl")
    assert meta["stale_partitions"].value == ["p0.jsonl"]  # b is now in a's cluster
    assert _stage_texts(tmp_path, bundle, keys) == [a, b]
    # materialized again, p0 is decided with p1's stored keys: as one run over both files
    meta, _ = _materialize(defs, instance, bundle, "p0.jsonl")
    assert meta["dedup_keys_read"].value == ["p1.jsonl"] and meta["stale_partitions"].value == []
    assert _stage_texts(tmp_path, bundle, keys) == _local_texts(recipe, tmp_path) == [a]


def test_changed_input_invalidates_its_stored_keys(instance, tmp_path):
    recipe, bundle, defs, keys = _setup(tmp_path, instance, [[{"text": "x " * 20}], [{"text": "y " * 20}]])
    _materialize(defs, instance, bundle, "p0.jsonl")
    meta, _ = _materialize(defs, instance, bundle, "p1.jsonl")
    assert meta["dedup_keys_read"].value == ["p0.jsonl"]
    write_jsonl(tmp_path / "in" / "p0.jsonl", [{"text": "y " * 20}, {"text": "z " * 30}])
    meta, _ = _materialize(defs, instance, bundle, "p1.jsonl")
    assert meta["dedup_keys_computed"].value == ["p0.jsonl", "p1.jsonl"]
    assert _stage_texts(tmp_path, bundle, ["p1.jsonl"]) == []  # now a duplicate of p0's first row


def test_dedup_metadata_shows_each_kind_of_similarity():
    from dj_assets.metadata import dedup_metadata

    where = {"partition": "a.jsonl", "row": 3, "text": "some | text"}
    meta = dedup_metadata({
        "document_simhash_deduplicator": {"clusters": 2, "removed_rows": 5, "sample_pairs": [
            {"survivor": where, "removed": {"partition": "b.jsonl", "row": 0}, "hamming_distance": 3}]},
        "document_deduplicator": {"clusters": 1, "removed_rows": 1, "sample_pairs": [
            {"survivor": 0, "removed": 4, "similarity": 1.0}]},
    })
    assert meta["dedup_document_simhash_deduplicator_clusters"] == 2
    assert meta["dedup_document_deduplicator_removed_rows"] == 1
    table = meta["dedup_document_simhash_deduplicator_sample_pairs"].value
    assert "Hamming distance 3" in table and "`a.jsonl` row 3: some / text" in table
    assert "identical key" in meta["dedup_document_deduplicator_sample_pairs"].value


def test_the_stage_before_computes_the_keys_and_the_global_stage_reads_them(instance, tmp_path):
    """Per-row stage + MinHash: the per-row stage's workers key its output rows and store the keys
    for the global stage, which reads no text; same rows as one local run."""
    recipe, bundle, defs, keys = _setup(tmp_path, instance, near_duplicate_partitions(),
                                        {"process": [{"whitespace_normalization_mapper": {}}, MINHASH]})
    first, dedup = (s.name for s in bundle.stages)
    for i, key in enumerate(keys):
        res = dg.materialize(list(defs.assets), selection=[bundle.key(first), bundle.key(dedup)], instance=instance,
                             resources=dict(defs.resources), partition_key=key, raise_on_error=False)
        assert res.success
        stage1 = res.asset_materializations_for_node(f"r__{first}")[0].metadata
        assert [row["op"] for row in _op_rows(stage1)] == ["whitespace_normalization_mapper"]
        meta = res.asset_materializations_for_node(f"r__{dedup}")[0].metadata
        assert (meta["dedup_keys_read"].value, meta["dedup_keys_computed"].value) == (keys[:i + 1], [])
    folder = tmp_path / "storage" / "r" / dedup
    texts = [t for k in keys for t in pq.read_table(folder / f"{k}.parquet").column("text").to_pylist()]
    assert texts == _local_texts(recipe, tmp_path)


def _op_rows(meta) -> list[dict]:
    return [dict(r.data) for r in meta["ops"].records]


def test_keys_ahead_only_where_the_deduplicator_sees_exactly_the_stage_output():
    from dj_assets.stage_runner import keys_ahead
    from dj_ops.engine.stages import plan_stages

    def ahead(process, **extra):
        recipe = recipe_from_dict({"dataset_path": "in", "export_path": "out.jsonl", "process": process, **extra})
        stages = plan_stages(recipe)
        return keys_ahead(recipe, stages[0], stages[1] if len(stages) > 1 else None)

    text = {"whitespace_normalization_mapper": {}}
    combined = ahead([text, MINHASH])
    assert [s.name for s in combined.process] == ["whitespace_normalization_mapper", "document_minhash_deduplicator"]
    assert combined.export_type == "parquet" and combined.keep_stats_in_res_ds
    assert ahead([text, {"document_deduplicator": {}}]) is not None
    assert ahead([text]) is None  # no global stage after it
    assert ahead([{"image_shape_filter": {}}, MINHASH]) is None  # the stage lets rows without text through
    assert ahead([text, {"image_deduplicator": {}}]) is None  # keys from images, not the text
    assert ahead([text, MINHASH], executor_type="ray") is None  # the Ray executor computes no held keys
