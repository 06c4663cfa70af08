"""GPU stages: the `gpu` pool, the lazy GPU claim, CUDA_VISIBLE_DEVICES for the stage's workers."""

from __future__ import annotations

import os
import threading

import dagster as dg

from dj_assets.gpu import GPU_POOL, GpuClaim, ensure_gpu_pool
from dj_ops.ops.base import TextMapper
from dj_ops.core.registry import OPERATORS, register

from .conftest import make_defs, read_jsonl, run_all, write_jsonl

if "test_cuda_tag_mapper" not in OPERATORS:

    @register("test_cuda_tag_mapper")
    class CudaTagMapper(TextMapper):
        """Stands in for a GPU OP: appends the GPU it was given (it never touches CUDA)."""

        default_accelerator = "cuda"

        def process_text(self, text: str) -> str:
            return f"{text} gpu={os.environ.get('CUDA_VISIBLE_DEVICES', '-')}"


def test_claims_pick_distinct_gpus_and_restore_env(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu = GpuClaim(num_gpus=2, lock_dir=str(tmp_path))
    with gpu.claim() as first:
        assert first == "cuda:0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        seen = []
        t = threading.Thread(target=lambda: seen.append(_claim_in_thread(gpu)))
        t.start()
        t.join()
        assert seen == ["1"]  # GPU 0 is locked: the second claim gets GPU 1
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with GpuClaim(num_gpus=0).claim() as none:
        assert none is None


def _claim_in_thread(gpu: GpuClaim) -> str:
    # the lock file is what excludes, not the env var; read the id from the lock that was taken
    with gpu.claim():
        return os.environ["CUDA_VISIBLE_DEVICES"]


def test_pool_limit_set_once(instance):
    assert ensure_gpu_pool(instance, gpus=3) == 3
    assert ensure_gpu_pool(instance, gpus=8) == 3  # an operator's setting is kept
    assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 3


def test_gpu_stage_declares_pool_and_claims_lazily(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("DJ_NUM_GPUS", "1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"text": "x"}, {"text": "y"}])
    recipe = {"dataset_path": str(tmp_path / "in"), "export_path": str(tmp_path / "out" / "r.jsonl"), "np": 1,
              "process": [{"test_upper_mapper": None}, {"test_exact_dedup": None}, {"test_cuda_tag_mapper": None}]}
    bundle, defs = make_defs(recipe, tmp_path, name="g")
    graph = defs.resolve_asset_graph()
    gpu_node = graph.get(bundle.key("stage3"))
    assert gpu_node.pools == {GPU_POOL} and "gpu" in gpu_node.kinds
    assert graph.get(bundle.key("stage1")).pools in (set(), None, frozenset())
    ensure_gpu_pool(instance, gpus=1)
    result, summary = run_all(defs, bundle, instance)
    assert result.success
    assert [r["text"] for r in read_jsonl(tmp_path / "out" / "r.jsonl")] == ["X gpu=0", "Y gpu=0"]
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    run_id = summary["run_id"]
    logs = [e.user_message for e in instance.all_logs(run_id) if "holds GPU 0" in (e.user_message or "")]
    assert logs
    plan = [e.asset_materialization.metadata["execution_plan"].value
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.asset_materialization.asset_key == bundle.key("stage3")][0]
    assert "`test_cuda_tag_mapper` | cuda (CUDA_VISIBLE_DEVICES=0)" in plan
