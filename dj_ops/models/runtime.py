"""Model runtime shared by the model-based OPs: where a model comes from, where it runs, how it is
fed.

- **Resolution**: a local folder, ``$DATA_JUICER_EXTERNAL_MODELS_HOME/<id>`` (Data-Juicer's
  setting), the Hugging Face cache, then the hub.  Failing that, :class:`ModelLoadError` names the
  OP, the model and the settings that fix it.
- **Placement**: an OP whose accelerator is ``cuda`` runs on a GPU when one is visible (worker *r*
  of the pool on GPU ``r % n``) in bf16 (fp16 where bf16 is unsupported), otherwise on the CPU in
  fp32; ``$DJ_MODEL_DTYPE`` (fp32, bf16, fp16) overrides the dtype.
- **Caching**: a model is loaded once per process, keyed by (kind, resolved path, device, dtype).
- **Memory**: the bytes a model takes are measured when it is loaded (weights) and on its first
  batch (activation peak), see :func:`memory_report`; :mod:`dj_ops.engine.placement` turns them into
  a number of workers per GPU.
- **Inference**: :class:`BatchedInference` runs a forward function over fixed-size micro-batches
  (the last one padded, so that an image's result never depends on its batch neighbours: fused
  and unfused runs agree bit for bit), halves the batch and retries on CUDA out-of-memory, and
  prepares the next micro-batch on a background thread while the current one runs.

Nothing here imports torch until a model is needed, so text-only pipelines never pay for it.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from dj_ops.ops.common.models import ModelLoadError

EXTERNAL_MODELS_HOME_ENV = "DATA_JUICER_EXTERNAL_MODELS_HOME"
DTYPE_ENV = "DJ_MODEL_DTYPE"
BATCH_ENV = "DJ_MODEL_BATCH_SIZE"
#: images per forward pass.  CPU: one -- on one thread a ViT's matrix products are already large
#: at one image (batches of 4 were slower per image: bench/RESULTS.md), and the padded last
#: micro-batch of every slice (results must not depend on the grouping) is pure waste.
DEFAULT_BATCH = {"cpu": 1, "cuda": 128}
#: rows the fusion planner probes and rows per slice, at least: pass rates need a few rows
MIN_PROBE_ROWS, MIN_SLICE_ROWS = 4, 16
#: rows per unit of work of a worker when models run on the CPU (about a second per image): a
#: few seconds of work, so the workers finish together
CPU_MODEL_CHUNK_ROWS = 4

__all__ = [
    "BatchedInference", "LoadedModel", "ModelLoadError", "Placement", "default_batch_size", "fixed_size_map",
    "load_model", "memory_report", "model_cache", "placement", "prefetched", "release_models", "resolve_model",
    "worker_rank",
]


# ---------------------------------------------------------------------------------------------
# Resolution


def resolve_model(name_or_path: str, *, op_name: str, param: str, download: bool = True) -> str:
    """A local folder holding ``name_or_path``'s files; downloads from the hub only as a last resort."""
    if not name_or_path:
        raise ModelLoadError(f"{op_name}: no model given; set `{param}` to a local folder or a hub id")
    if os.path.isdir(name_or_path):
        return name_or_path
    home = os.environ.get(EXTERNAL_MODELS_HOME_ENV)
    if home:
        for base in home.split(os.pathsep):
            candidate = Path(base.strip()) / name_or_path
            if base.strip() and candidate.is_dir():
                return str(candidate)
    if looks_like_path(name_or_path):
        raise ModelLoadError(
            f"{op_name}: model folder {name_or_path!r} does not exist. Set `{param}` to a folder holding "
            "the model files (config.json, weights, preprocessor config), e.g. written by save_pretrained."
        )
    from huggingface_hub import constants, snapshot_download

    try:
        return snapshot_download(name_or_path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - not cached: try the hub below, or explain
        reason = _first_line(exc)
        if not download or constants.HF_HUB_OFFLINE:
            raise ModelLoadError(_offline_advice(op_name, name_or_path, param, reason)) from None
    try:
        return snapshot_download(name_or_path)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(_offline_advice(op_name, name_or_path, param, _first_line(exc))) from None


def _offline_advice(op_name: str, name: str, param: str, reason: str) -> str:
    return (
        f"{op_name}: cannot load the model {name!r} ({reason}). Without network access, fetch it where there "
        f"is (`huggingface-cli download {name} --local-dir DIR`) and set `{param}` to DIR, or put it under "
        f"${EXTERNAL_MODELS_HOME_ENV}/{name}, or pre-fill the Hugging Face cache ($HF_HOME)."
    )


def looks_like_path(name: str) -> bool:
    """A filesystem path rather than a hub id (``org/name``)."""
    return name.startswith((".", "~", os.sep)) or name.count("/") > 1 or Path(name).exists()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Placement


def worker_rank() -> int:
    """0-based index of this worker process in its pool (0 in the main process)."""
    identity = getattr(multiprocessing.current_process(), "_identity", ())
    return identity[0] - 1 if identity else 0


@dataclass(frozen=True)
class Placement:
    device: str  # "cpu" or "cuda:N"
    dtype: str  # "float32", "bfloat16", "float16"

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def dtype_kwargs(self) -> dict[str, Any]:
        """``from_pretrained`` keyword for this dtype (``dtype`` since transformers 4.56)."""
        import transformers

        major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
        return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": self.torch_dtype()}


def placement(accelerator: str) -> Placement:
    """Where an OP with ``accelerator`` runs in this process."""
    import torch

    if accelerator == "cuda" and torch.cuda.is_available():
        device = f"cuda:{worker_rank() % torch.cuda.device_count()}"
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    else:
        device, dtype = "cpu", "float32"
    override = os.environ.get(DTYPE_ENV, "").strip().lower()
    if override:
        names = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
                 "fp16": "float16", "float16": "float16"}
        if override not in names:
            raise ValueError(f"${DTYPE_ENV} must be one of fp32, bf16, fp16; got {override!r}")
        dtype = names[override]
    return Placement(device, dtype)


def default_batch_size(where: Placement) -> int:
    raw = os.environ.get(BATCH_ENV, "").strip()
    return max(1, int(raw)) if raw else DEFAULT_BATCH["cuda" if where.is_cuda else "cpu"]


_THREADS_SET = False


def configure_threads() -> None:
    """One process per worker shares the cores: give each worker its share of torch threads."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    _THREADS_SET = True
    workers = int(os.environ.get("DJ_OPS_WORKERS", "1") or 1)
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def configure_threads_after_fork() -> None:
    """In a worker forked from a process that set its own torch threads (the fusion probe):
    this worker's share, now if torch is loaded (never importing it), else at the first model load."""
    global _THREADS_SET
    _THREADS_SET = False
    if "torch" in sys.modules:
        configure_threads()


# ---------------------------------------------------------------------------------------------
# Loading, once per process


@dataclass
class LoadedModel:
    """A model (and its processor) resident in this process."""

    key: tuple
    model: Any
    processor: Any
    where: Placement
    name: str
    #: bytes of parameters and buffers
    weight_bytes: int = 0
    #: device (CUDA) or process (CPU) memory taken by loading
    load_bytes: int = 0
    load_seconds: float = 0.0
    #: largest extra memory seen during one forward pass, per batch size
    activation_bytes: dict[int, int] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


_MODELS: dict[tuple, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()
#: other per-process state built on the loaded models (e.g. CLIP towers shared between models),
#: dropped with them
_MODEL_CACHES: dict[str, dict] = {}


def model_cache(name: str) -> dict:
    """A per-process dict for state derived from loaded models, emptied by :func:`release_models`."""
    return _MODEL_CACHES.setdefault(name, {})


def load_model(kind: str, path: str, where: Placement, build: Callable[[str, Placement], tuple[Any, Any]],
               *, name: str = "") -> LoadedModel:
    """The model ``build(path, where)`` makes (``(model, processor)``), loaded once per process."""
    key = (kind, str(path), where.device, where.dtype)
    with _LOAD_LOCK:
        hit = _MODELS.get(key)
        if hit is not None:
            return hit
        configure_threads()
        import torch

        before = _memory_in_use(where)
        t0 = time.perf_counter()
        model, processor = build(path, where)
        model.eval()
        loaded = LoadedModel(key, model, processor, where, name or str(path))
        loaded.load_seconds = time.perf_counter() - t0
        loaded.weight_bytes = sum(t.numel() * t.element_size()
                                  for t in [*model.parameters(), *model.buffers()])
        loaded.load_bytes = max(0, _memory_in_use(where) - before)
        if where.is_cuda:
            torch.cuda.synchronize(where.device)
        _MODELS[key] = loaded
        return loaded


def _memory_in_use(where: Placement) -> int:
    if where.is_cuda:
        import torch

        return int(torch.cuda.memory_allocated(where.device))
    import psutil

    return int(psutil.Process().memory_info().rss)


def loaded_models() -> list[LoadedModel]:
    return list(_MODELS.values())


def memory_report() -> list[dict[str, Any]]:
    """What each model resident in this process takes: weights, load delta, activation peaks."""
    return [
        {"model": m.name, "kind": m.key[0], "device": m.where.device, "dtype": m.where.dtype,
         "weight_bytes": m.weight_bytes, "load_bytes": m.load_bytes, "load_seconds": round(m.load_seconds, 3),
         "activation_bytes": dict(m.activation_bytes)}
        for m in _MODELS.values()
    ]


def release_models() -> None:
    """Drop every model of this process (and give CUDA memory back); nothing to do, and torch
    never imported, when none was loaded."""
    with _LOAD_LOCK:
        if not _MODELS:
            return
        _MODELS.clear()
        for cache in _MODEL_CACHES.values():
            cache.clear()
    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# Batched inference


def prefetched(items: Iterable[Any], depth: int = 1) -> Iterator[Any]:
    """``items``, produced ``depth`` ahead on a background thread (decode and preprocessing release
    the GIL, so they overlap with the model running on the caller's thread).  An exception in the
    producer is re-raised in the caller."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((True, item))
            q.put((True, done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((False, exc))

    thread = threading.Thread(target=produce, name="dj-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


class BatchedInference:
    """Runs ``forward`` over fixed-size micro-batches of one model.

    ``forward(inputs)`` gets what ``collate`` makes of a micro-batch padded to exactly the batch
    size and returns a tensor with one row per input row.  With the shapes fixed, the arithmetic for one row does not depend
    on its neighbours (checked on CPU fp32), which makes results independent of how rows are
    grouped.  On CUDA out-of-memory the batch size is halved for the rest of the process (and the
    micro-batch retried).
    """

    def __init__(self, loaded: LoadedModel, batch_size: int | None = None):
        self.loaded = loaded
        self.batch_size = batch_size or default_batch_size(loaded.where)

    def run(self, batches: Iterable[Sequence[Any]], forward: Callable[[Any], Any],
            collate: Callable[[Sequence[Any], int], Any]) -> list[Any]:
        """Outputs (CPU tensors, one per input) for every input of ``batches`` (each batch a list of
        at most ``batch_size`` inputs; use :meth:`chunks`).  ``collate(inputs, size)`` stacks and
        pads inputs to ``size`` rows on the model's device."""
        import torch

        out: list[Any] = []
        for inputs in batches:
            out.extend(self._run_one(list(inputs), forward, collate, torch))
        return out

    def chunks(self, items: Sequence[Any]) -> list[Sequence[Any]]:
        b = self.batch_size
        return [items[i:i + b] for i in range(0, len(items), b)]

    def _run_one(self, inputs: list[Any], forward: Callable, collate: Callable, torch: Any) -> list[Any]:
        results: list[Any] = []
        start = 0
        while start < len(inputs):
            size = self.batch_size
            part = inputs[start:start + size]
            try:
                results.extend(self._forward(part, size, forward, collate, torch))
                start += len(part)
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_size = max(1, size // 2)
        return results

    def _forward(self, part: list[Any], size: int, forward: Callable, collate: Callable, torch: Any) -> list[Any]:
        where = self.loaded.where
        measure = size not in self.loaded.activation_bytes
        if measure and where.is_cuda:
            torch.cuda.reset_peak_memory_stats(where.device)
            base = torch.cuda.memory_allocated(where.device)
        with torch.inference_mode():
            res = forward(collate(part, size))
        if measure:
            if where.is_cuda:
                self.loaded.activation_bytes[size] = int(torch.cuda.max_memory_allocated(where.device) - base)
            else:
                self.loaded.activation_bytes[size] = 0
        return list(torch.unbind(res[: len(part)].float().cpu()))


def fixed_size_map(fn: Callable[[Any], Any], rows: Sequence[Any], size: int) -> list[Any]:
    """``fn`` over ``rows`` (CPU tensors) in chunks of exactly ``size`` rows (the last one padded),
    on the CPU in fp32: for small heads whose results must not depend on the grouping either."""
    import torch

    cpu = Placement("cpu", "float32")
    out: list[Any] = []
    with torch.inference_mode():
        for start in range(0, len(rows), size):
            part = rows[start:start + size]
            out.extend(torch.unbind(fn(pad_stack(part, size, cpu))[: len(part)]))
    return out


def pad_stack(tensors: Sequence[Any], size: int, where: Placement) -> Any:
    """``tensors`` stacked and padded to ``size`` rows (copies of the last row: always valid input,
    e.g. no all-masked text), moved to the model's device; floating tensors to the model's dtype."""
    import torch

    rows = list(tensors)
    rows.extend(rows[-1:] * (size - len(rows)))
    stacked = torch.stack(rows)
    target = where.torch_dtype() if stacked.is_floating_point() else stacked.dtype
    return stacked.to(where.device, dtype=target, non_blocking=True)
