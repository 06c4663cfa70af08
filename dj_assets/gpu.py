"""GPU claim for stages holding GPU OPs (``accelerator: cuda``).

The instance pool ``gpu`` (limit = GPU count) bounds *how many* GPU steps run at once across
all runs; this resource picks *which* GPU a step gets, with one lock file per GPU.  The claim is
lazy, inside the compute function: Dagster also builds resources in the parent of a CLI run
after it ends, where a claim would wait for a GPU for nothing.  While the claim is held,
``CUDA_VISIBLE_DEVICES`` names the GPU, so the engine's worker processes (started with
``spawn`` for CUDA OPs, after the claim) see exactly that one device.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

GPU_POOL = "gpu"


def detect_gpu_count() -> int:
    """GPUs on this host: ``$DJ_NUM_GPUS``, else ``nvidia-smi -L``, else 0."""
    env = os.environ.get("DJ_NUM_GPUS")
    if env is not None:
        return int(env)
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def ensure_gpu_pool(instance: dg.DagsterInstance, gpus: int | None = None) -> int:
    """Set the ``gpu`` pool limit to the GPU count (at least 1) unless someone already set it."""
    storage = instance.event_log_storage
    if GPU_POOL in storage.get_concurrency_keys():
        return storage.get_concurrency_info(GPU_POOL).slot_count
    limit = max(gpus if gpus is not None else detect_gpu_count(), 1)
    storage.set_concurrency_slots(GPU_POOL, limit)
    return limit


class GpuClaim(dg.ConfigurableResource):
    """Claims one GPU for the duration of a ``with gpu.claim(log):`` block."""

    num_gpus: int | None = None  # None: detect
    lock_dir: str = ""  # host-local folder shared by every step process; "" = system temp
    wait_timeout_s: float = 3600.0

    @contextmanager
    def claim(self, log=None) -> Iterator[str | None]:
        """Yields ``"cuda:0"`` (the claimed GPU, seen alone) or None on a host without GPUs."""
        n = self.num_gpus if self.num_gpus is not None else detect_gpu_count()
        if n <= 0:
            if log:
                log.warning("no GPU on this host: the stage's GPU OPs run on what they fall back to")
            yield None
            return
        lock_dir = Path(self.lock_dir or Path(tempfile.gettempdir()) / "dj_gpu_locks")
        lock_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_timeout_s
        handle, gpu_id = None, -1
        while handle is None:
            for i in range(n):
                fh = open(lock_dir / f"gpu{i}.lock", "w")
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.close()
                    continue
                handle, gpu_id = fh, i
                break
            else:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no GPU lock free in {lock_dir} after {self.wait_timeout_s:.0f} s")
                time.sleep(0.5)
        previous = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_id)
        if log:
            log.info(f"pid {os.getpid()} holds GPU {gpu_id} (CUDA_VISIBLE_DEVICES={gpu_id})")
        try:
            yield "cuda:0"
        finally:
            if previous is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = previous
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            if log:
                log.info(f"pid {os.getpid()} released GPU {gpu_id}")
