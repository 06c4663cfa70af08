"""Model runtime without models: placement, dtype and batch settings, worker planning for GPUs."""

from __future__ import annotations

import pytest

from dj_ops.engine import placement
from dj_ops.models import runtime


def test_worker_planning_from_measured_memory():
    gib = 1 << 30
    # 2.5 GiB per worker on two 80 GiB GPUs with 70 free each: 25 fit per GPU, capped by np
    assert placement.workers_for(int(2.5 * gib), [70 * gib, 70 * gib], requested=8) == 8
    assert placement.workers_for(int(2.5 * gib), [70 * gib, 70 * gib], requested=64) == 50
    # a model that does not fit still gets one worker per GPU (it may fit once others free memory)
    assert placement.workers_for(100 * gib, [70 * gib, 70 * gib], requested=8) == 2
    # more GPUs than np: one worker per GPU all the same
    assert placement.workers_for(gib, [10 * gib] * 4, requested=2) == 4


def test_mem_required_parsing():
    assert placement.parse_bytes(None) == 0 and placement.parse_bytes("") == 0
    assert placement.parse_bytes("1500MB") == 1500 << 20
    assert placement.parse_bytes("1GiB") == 1 << 30
    assert placement.parse_bytes(2) == 2 << 30  # a bare number is GB, as in Data-Juicer


def test_cpu_placement_is_fp32_and_dtype_can_be_overridden(monkeypatch):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("checks the CPU fallback")
    assert runtime.placement("cuda") == runtime.Placement("cpu", "float32")
    assert runtime.placement("cpu") == runtime.Placement("cpu", "float32")
    monkeypatch.setenv(runtime.DTYPE_ENV, "bf16")
    assert runtime.placement("cuda").dtype == "bfloat16"
    monkeypatch.setenv(runtime.DTYPE_ENV, "double")
    with pytest.raises(ValueError, match="DJ_MODEL_DTYPE"):
        runtime.placement("cuda")


def test_batch_size_defaults_and_override(monkeypatch):
    cpu, gpu = runtime.Placement("cpu", "float32"), runtime.Placement("cuda:0", "bfloat16")
    assert runtime.default_batch_size(cpu) == 1 and runtime.default_batch_size(gpu) == 128
    monkeypatch.setenv(runtime.BATCH_ENV, "32")
    assert runtime.default_batch_size(cpu) == 32


def test_worker_rank_in_the_main_process():
    assert runtime.worker_rank() == 0


@pytest.mark.gpu
def test_cuda_placement_spreads_workers_over_gpus():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    where = runtime.placement("cuda")
    assert where.device == "cuda:0" and where.dtype in ("bfloat16", "float16")
    assert runtime.placement("cpu").device == "cpu"
