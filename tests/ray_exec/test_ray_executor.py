"""The Ray executor gives the local executor's output (rows, order, stats, bad rows), including
exact and near-duplicate deduplication, on a local 2-CPU Ray cluster."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

ray = pytest.importorskip("ray")

from dj_ops.engine import LocalExecutor  # noqa: E402
from dj_ops.core.faults import WorkerCrashed  # noqa: E402
from dj_ops.engine import RayExecutor
from dj_ops.engine.ray_backend import gpu_fraction  # noqa: E402
from dj_ops.core.recipe import load_recipe  # noqa: E402
from tests.faults import fault_ops  # noqa: E402,F401  (registers the test OPs)
from tests.faults.helpers import write_dataset, write_recipe  # noqa: E402

pytestmark = pytest.mark.ray

CHAIN = [
    {"whitespace_normalization_mapper": None},
    {"test_poisoned_mapper": None},
    {"text_length_filter": {"min_len": 20}},
    {"document_deduplicator": None},
    {"words_num_filter": {"min_num": 4}},
    {"document_minhash_deduplicator": {"tokenization": "space", "jaccard_threshold": 0.6}},
    {"alphanumeric_filter": {"min_ratio": 0.5}},
]


@pytest.fixture(scope="session")
def ray_cluster():
    repo = str(Path(__file__).resolve().parents[2])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": repo},
                          "worker_process_setup_hook": "tests.faults.fault_ops.setup_worker"})
    yield
    ray.shutdown()


def outputs(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out_dir.iterdir()) if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("export", ["out.jsonl", "out.parquet"])
def test_ray_matches_local(tmp_path, ray_cluster, export):
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=4)
    results = {}
    for name, cls in (("local", LocalExecutor), ("ray", RayExecutor)):
        out = tmp_path / name
        # the local reference runs in-process (np=1; output is the same for any np): forking
        # worker processes from a process that runs a Ray driver is unsafe
        recipe = load_recipe(write_recipe(tmp_path / f"{name}.yaml", dataset, out, CHAIN,
                                          executor_type="ray" if name == "ray" else "default"),
                             {"export_path": str(out / export), "np": 2 if name == "ray" else 1})
        report = cls(recipe, progress=False, log=lambda m: None).run()
        results[name] = (outputs(out), [(o["name"], o["rows_out"]) for o in report.ops], report.rows_out)
    assert results["ray"] == results["local"]
    ops = dict(results["local"][1])
    assert ops["document_deduplicator"] < ops["text_length_filter"]  # exact duplicates were removed
    assert ops["document_minhash_deduplicator"] < ops["words_num_filter"]  # and near duplicates


def test_ray_resumes_local_checkpoint(tmp_path, ray_cluster):
    """Checkpoints are executor-independent: a Ray re-run replays chunks the local run recorded."""
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=6)
    keys = {"use_checkpoint": True, "checkpoint_dir": str(tmp_path / "ckpt")}
    local = load_recipe(write_recipe(tmp_path / "l.yaml", dataset, tmp_path / "l", CHAIN[:5], **keys), {"np": 1})
    LocalExecutor(local, progress=False, log=lambda m: None).run()
    logs: list[str] = []
    remote = load_recipe(write_recipe(tmp_path / "r.yaml", dataset, tmp_path / "r", CHAIN[:5],
                                      executor_type="ray", **keys))
    RayExecutor(remote, progress=False, log=logs.append).run()
    assert any("replayed, not recomputed" in m for m in logs)
    assert outputs(tmp_path / "r") == outputs(tmp_path / "l")


def test_gpu_fraction_from_declared_memory():
    class Op:
        def __init__(self, gpu_required=None, mem_required=None):
            self.gpu_required, self.mem_required = gpu_required, mem_required

    assert gpu_fraction([Op(gpu_required=0.25, mem_required=None)]) == 0.25
    assert gpu_fraction([Op()]) == 1.0


def chain_actor_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any("_ChainActor" in part for part in (p.info["cmdline"] or []))]


@pytest.mark.slow
def test_kill_ray_worker_mid_run(tmp_path, ray_cluster):
    """kill -9 of a Ray actor while it holds chunks: the run (re-run if it stopped) ends with the
    uninterrupted run's output."""
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=8)
    chain = [{"test_slow_mapper": {"seconds": 0.1}}, *CHAIN]
    clean = tmp_path / "clean"
    LocalExecutor(load_recipe(write_recipe(tmp_path / "c.yaml", dataset, clean, chain), {"np": 1}),
                  progress=False, log=lambda m: None).run()
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", dataset, out, chain, executor_type="ray",
                                      use_checkpoint=True, checkpoint_dir=str(ckpt)))
    rng = random.Random(3)
    killed = []

    def killer():
        while not any(ckpt.rglob("chunk-*.pkl")):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))
        pids = chain_actor_pids()
        if pids:
            os.kill(rng.choice(pids), signal.SIGKILL)
            killed.append(True)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        RayExecutor(recipe, progress=False, log=lambda m: None).run()
    except WorkerCrashed:
        RayExecutor(recipe, progress=False, log=lambda m: None).run()
    thread.join(timeout=60)
    assert killed
    assert outputs(out) == outputs(clean)
