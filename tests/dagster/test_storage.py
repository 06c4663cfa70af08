"""Partition storage: atomic commits, fsspec roots, nothing partial after a crash."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from dj_assets.storage import DJStorage

from .conftest import make_defs, read_jsonl, run_all, write_jsonl


def test_commit_is_a_rename_inside_the_root(tmp_path):
    storage = DJStorage(root=str(tmp_path / "root"))
    final = storage.partition_path(dg.AssetKey(["r", "stage1"]), "a.jsonl")
    with storage.staging() as staging:
        assert staging.parent == tmp_path / "root" / ".staging"  # same filesystem as the targets
        staged = staging / "a.parquet"
        pq.write_table(pa.table({"text": ["x"]}), staged)
        inode = staged.stat().st_ino
        storage.commit(staged, final)
    assert not staging.exists()
    assert (tmp_path / "root" / "r" / "stage1" / "a.jsonl.parquet").stat().st_ino == inode


def test_fsspec_root_runs_a_recipe(instance, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": "b"}, {"text": "a"}, {"text": "b"}])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "process": [{"test_upper_mapper": None}, {"test_exact_dedup": None}]}
    bundle, defs = make_defs(recipe, tmp_path, name="mem", storage_root="memory://dj-test-root")
    assert run_all(defs, bundle, instance)[0].success
    assert [r["text"] for r in read_jsonl(tmp_path / "out" / "r.jsonl")] == ["B", "A"]
    stored = UPath("memory://dj-test-root/mem/stage2_test_exact_dedup/a.jsonl.parquet")
    with stored.open("rb") as f:
        assert pq.read_table(f).column("text").to_pylist() == ["B", "A"]


def test_failed_step_leaves_no_partition_file(instance, tmp_path):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": "fine"}, {"text": "boom"}])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "skip_op_error": False,
              "stages": [{"name": "first", "ops": 1}, {"name": "second", "ops": 1}],
              "process": [{"test_len_filter": None}, {"test_raising_mapper": None}]}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    result, _ = run_all(defs, bundle, instance)
    assert not result.success
    root = tmp_path / "storage" / "r"
    assert (root / "first" / "a.jsonl.parquet").exists()
    assert not (root / "second").exists() or not any((root / "second").iterdir())
    assert not any((tmp_path / "storage" / ".staging").iterdir())
    assert not (tmp_path / "out" / "r.jsonl").exists()


def test_parquet_partition_with_late_columns_keeps_every_row(instance, tmp_path):
    # the last batch brings a new column and a wider type: the partition file is widened, not split
    rows = [{"text": "a", "n": 1}] * 3 + [{"text": "b", "images": ["x.png"], "n": 1.5}]
    write_jsonl(tmp_path / "in" / "a.jsonl", rows)
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "batch_size": 2, "process": [{"test_upper_mapper": None}]}
    bundle, defs = make_defs(recipe, tmp_path, name="r")
    assert run_all(defs, bundle, instance)[0].success
    table = pq.read_table(tmp_path / "storage" / "r" / "stage1" / "a.jsonl.parquet")
    assert table.num_rows == 4 and set(table.column_names) == {"text", "images", "n"}
    assert table.column("n").to_pylist() == [1.0, 1.0, 1.0, 1.5]
    assert len(read_jsonl(tmp_path / "out" / "r.jsonl")) == 4


def test_a_run_using_the_storage_keeps_the_heap_out_of_full_collections_and_of_the_workers(tmp_path):
    import gc

    from dj_ops.core.heap import thaw
    from dj_ops.core.registry import load_all_ops
    from dj_ops.engine.backend import start_method

    thaw()
    seen = []
    ops = [load_all_ops()["text_length_filter"]()]

    @dg.asset(required_resource_keys={"dj_storage"})
    def probe() -> None:
        seen.append((gc.get_freeze_count(), start_method(False, 2, ops)))

    assert gc.get_freeze_count() == 0 and start_method(False, 2, ops) == "fork"
    assert dg.materialize([probe], resources={"dj_storage": DJStorage(root=str(tmp_path))}).success
    assert seen[0][0] > 0  # frozen for the run, by the resource
    assert seen[0][1] == "forkserver"  # the engine's workers start from a small server, not from the step
    thaw()
    assert gc.get_freeze_count() == 0 and start_method(False, 2, ops) == "fork"


def test_row_counts_stop_early_when_asked(tmp_path):
    from dj_assets.shards import count_rows

    path = tmp_path / "in.jsonl"
    path.write_text("".join(f'{{"text": "{"x" * 100} {i}"}}\n' for i in range(30000)) + '{"text": "last"}')
    assert count_rows(path) == 30001  # the last line has no newline
    assert 10 < count_rows(path, at_most=10) < 30001  # counted in blocks, stops past the bound
    assert count_rows(path, at_most=40000) == 30001
