"""Resume after a crash: every finished chunk of a pass is recorded durably, and a re-run replays it.

With ``use_checkpoint: true`` a worker that finishes a chunk writes its whole result (the
serialised output rows, stats lines, bad rows, per-OP metrics, traces and the deduplication keys
it computed) to ``<checkpoint_dir>/<fingerprint>/chunk-<index>.pkl``: written under a temporary
name, fsynced, then renamed, so the final name is the chunk's completion marker and a file
under that name is always whole.  ``manifest.json`` beside the chunks says what the fingerprint
covers: the recipe (keys that cannot change a chunk's result, such as ``np`` or the export path,
are left out), every input file's path, size and modification time, the row range and skip
masks of the pass, and the size and modification time of the engine's source files.

A re-run with the same fingerprint feeds the recorded results to the coordinator in input order
instead of recomputing them, so the deduplication indexes see exactly the keys, in exactly the
order, of an uninterrupted run and decide identically; outputs are only renamed into place when
a run completes, so the re-run's output is byte-identical to an uninterrupted run's.  Recorded
chunks are kept after success (a re-run with unchanged recipe and inputs is then a replay);
delete the checkpoint folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np
import orjson

from dj_ops.core.faults import remove_stale_temporaries
from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import Chunk

from .source import ChunkSource

if TYPE_CHECKING:
    from .chain import ChunkResult

#: recipe keys that cannot change the result of a chunk: changing them keeps the checkpoint valid
NEUTRAL_KEYS = frozenset({
    "np", "use_checkpoint", "checkpoint_dir", "export_path", "export_shard_size", "export_compression", "stage_compression", "export_in_parallel",
    "executor_type", "ray_address", "open_monitor", "use_cache", "ds_cache_dir", "cache_compress", "temp_dir",
    "stages", "schedule", "inbox_path", "partition_rows", "min_keep_ratio", "max_keep_ratio", "project_name",
})
_ENGINE_ROOT = Path(__file__).resolve().parents[1]


class ChunkStore:
    """The recorded chunk results of one pass.  Picklable: workers record into it directly."""

    def __init__(self, directory: str | Path):
        self.directory = str(directory)

    def path(self, index: int) -> Path:
        return Path(self.directory) / f"chunk-{index:08d}.pkl"

    def __call__(self, result: "ChunkResult") -> None:
        """Record a finished chunk (called in the worker that computed it)."""
        final = self.path(result.index)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)

    def load(self, chunk: Chunk) -> "ChunkResult | None":
        """The recorded result of ``chunk``, or None when it has none (or an unreadable one)."""
        path = self.path(chunk.index)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            res = _SafeUnpickler(io.BytesIO(data)).load()
        except Exception:  # noqa: BLE001 - a damaged record is recomputed, never trusted
            return None
        if (res.index, res.source, res.n_records) != (chunk.index, chunk.source, chunk.n_records):
            return None
        return res

    def count(self) -> int:
        return sum(1 for _ in Path(self.directory).glob("chunk-*.pkl"))


def open_store(recipe: Recipe, source: ChunkSource, hold_back: int | None, output: str, outputs: list[Path],
               log: Callable[[str], None]) -> ChunkStore | None:
    """The store of the recorded chunk results (carrying ``output``: see
    :data:`dj_ops.engine.chain.OUTPUTS`) of the pass reading ``source`` (the backend
    replays those, see :func:`replay`, and records new ones into it); None without
    ``use_checkpoint``.  When chunks are replayed, temporaries a crashed run left beside
    ``outputs`` are removed."""
    if not recipe.use_checkpoint:
        return None
    manifest = _manifest(recipe, source, hold_back, output)
    key = hashlib.sha256(orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:20]
    root = checkpoint_root(recipe)
    directory = root / key
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        tmp = directory / f".manifest.json.tmp-{os.getpid()}"
        tmp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        os.replace(tmp, manifest_path)
        others = [p for p in root.iterdir() if p.is_dir() and p != directory and (p / "manifest.json").exists()]
        if others:
            log(f"checkpoint {root}: {len(others)} earlier checkpoint(s) were recorded for another recipe, input or "
                "engine version and are not used (delete them to reclaim the space)")
    store = ChunkStore(directory)
    done = store.count()
    if done:
        log(f"checkpoint {directory}: {done} finished chunks are replayed, not recomputed")
        for out in outputs:
            remove_stale_temporaries(out)
    return store


def checkpoint_root(recipe: Any) -> Path:
    return Path(recipe.checkpoint_dir) if recipe.checkpoint_dir else recipe.resolved_work_dir / ".checkpoint"


def replay(chunks: Iterable[Chunk], store: ChunkStore) -> Iterator["Chunk | ChunkResult"]:
    """``chunks`` with every recorded one replaced by its recorded result."""
    for chunk in chunks:
        res = store.load(chunk)
        yield chunk if res is None else res


def _manifest(recipe: Recipe, source: ChunkSource, hold_back: int | None, output: str) -> dict:
    recipe_keys = {k: v for k, v in recipe.model_dump(mode="json").items() if k not in NEUTRAL_KEYS}
    inputs = []
    for f in source.files:
        st = os.stat(f)
        inputs.append({"path": str(Path(f).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return {
        "recipe": recipe_keys,
        "inputs": inputs,
        "row_range": list(source.row_range) if source.row_range else None,
        "chunk_rows": source.chunk_rows,  # chunk indexes mean these rows
        "skip": {src: hashlib.sha256(np.packbits(np.asarray(m, dtype=bool)).tobytes()).hexdigest()
                 for src, m in sorted((source.skip or {}).items())},
        "hold_back": hold_back,
        "output": output,  # what a recorded result carries (rows, or keys only)
        "engine": _engine_signature(),
    }


def _engine_signature() -> str:
    """Size and mtime of every engine source file: editing an OP invalidates old checkpoints."""
    h = hashlib.sha256()
    for p in sorted(_ENGINE_ROOT.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(_ENGINE_ROOT)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


class _SafeUnpickler(pickle.Unpickler):
    """Loads only what a chunk result holds (containers, numpy arrays, Arrow tables, the result
    dataclasses): a planted file in the checkpoint folder cannot run code."""

    _BUILTINS = frozenset({"list", "dict", "tuple", "set", "frozenset", "bytes", "bytearray", "int", "float",
                           "str", "complex", "bool", "slice"})
    _ALLOWED = {
        "numpy": {"dtype", "ndarray"},
        "numpy._core.numeric": {"_frombuffer"},
        "numpy.core.numeric": {"_frombuffer"},
        "numpy._core.multiarray": {"_reconstruct", "scalar"},
        "numpy.core.multiarray": {"_reconstruct", "scalar"},
        "collections": {"OrderedDict"},
        "dj_ops.engine.chain": {"ChunkResult"},
        "dj_ops.engine.report": {"OpMetrics"},
        # Arrow's table/array reconstructors and data type factories (never its file classes)
        "pyarrow.lib": {
            "_reconstruct_table", "_reconstruct_record_batch", "_restore_array", "py_buffer", "chunked_array",
            "schema", "field", "type_for_alias", "list_", "large_list", "fixed_size_list", "struct", "map_",
            "dictionary", "timestamp", "time32", "time64", "date32", "date64", "duration", "decimal128",
            "decimal256", "binary", "large_binary", "string", "large_string", "null", "bool_", "int8", "int16",
            "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64",
        },
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module == "builtins" and name in self._BUILTINS) or name in self._ALLOWED.get(module, ()):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"checkpoint holds a forbidden object {module}.{name}")
