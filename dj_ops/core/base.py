"""OP base classes: Mapper, Filter, Deduplicator.

Every OP works on a whole :class:`~dj_ops.core.batch.Batch` at a time.  Filters compute their
stats once (skipped when the stat column already exists) and decide from the stats alone, as
Data-Juicer does, so stats computed once can be exported, analysed and reused.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Hashable, Sequence

import numpy as np

from .batch import Batch

MAXSIZE = sys.maxsize
#: duplicate pairs listed in an index summary
SAMPLE_PAIRS = 10


class OP:
    """Base of every operator.  ``name`` is set by :func:`dj_ops.core.registry.register`."""

    name: ClassVar[str] = ""
    _accelerator: ClassVar[str] = "cpu"
    #: intermediates this OP reads (lines, words, loaded images ...): the planner groups by them
    intermediates: ClassVar[tuple[str, ...]] = ()
    #: the OP reads ``text_key``: rows whose text is missing or not a string are set aside as bad input
    uses_text: ClassVar[bool] = True

    def __init__(
        self,
        text_key: str = "text",
        image_key: str = "images",
        audio_key: str = "audios",
        video_key: str = "videos",
        image_bytes_key: str = "image_bytes",
        accelerator: str | None = None,
        num_proc: int | None = None,
        cpu_required: float | None = None,
        gpu_required: float | None = None,
        mem_required: str | float | int | None = None,
        batch_size: int = 1000,
        skip_op_error: bool = True,
        turbo: bool = False,
        index_key: str | None = None,
        work_dir: str | None = None,
        stats_export_path: str | None = None,
    ):
        self.text_key = text_key
        self.image_key = image_key
        self.audio_key = audio_key
        self.video_key = video_key
        self.image_bytes_key = image_bytes_key
        self.accelerator = accelerator or self._accelerator
        self.num_proc = num_proc
        self.cpu_required = cpu_required
        self.gpu_required = gpu_required
        self.mem_required = mem_required
        self.batch_size = batch_size
        self.skip_op_error = skip_op_error
        self.turbo = turbo
        self.index_key = index_key
        self.work_dir = work_dir
        self.stats_export_path = stats_export_path

    def texts(self, batch: Batch) -> list:
        return batch.columns.get(self.text_key) or [None] * len(batch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class Mapper(OP):
    """Edits samples.  Implement ``process_batched`` (may change the row count)."""

    def process_batched(self, batch: Batch) -> Batch:
        raise NotImplementedError


class TextMapper(Mapper):
    """A mapper that rewrites the text column one string at a time via ``process_text``."""

    def process_text(self, text: str) -> str:
        raise NotImplementedError

    def process_batched(self, batch: Batch) -> Batch:
        fn = self.process_text
        col = self.texts(batch)
        batch.set_column(self.text_key, [fn(t) if isinstance(t, str) else t for t in col])
        batch.invalidate_cache()
        return batch


class Filter(OP):
    """Keeps samples whose stats fall inside the configured range.

    ``stat_bounds`` maps each stat key the filter writes to the (min, max) parameter names that
    bound it.  The keep rule is Data-Juicer's ``get_keep_boolean``: closed interval by default,
    ``reversed_range`` keeps the outside (and flips the closedness flags, as upstream does).
    Per-item list stats (one value per image) are reduced with ``any_or_all``.
    """

    stat_bounds: ClassVar[dict[str, tuple[str | None, str | None]]] = {}
    #: filters with no stats column (suffix_filter) set this False
    has_stats: ClassVar[bool] = True
    #: with per-item stats (one value per image / video): True makes an item pass only when all its
    #: stats are in bounds before ``any_or_all`` reduces the items (width *and* height of one image);
    #: False reduces each stat on its own
    item_passes_all_stats: ClassVar[bool] = False

    def __init__(
        self,
        min_closed_interval: bool = True,
        max_closed_interval: bool = True,
        reversed_range: bool = False,
        any_or_all: str = "any",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if reversed_range:
            min_closed_interval, max_closed_interval = not min_closed_interval, not max_closed_interval
        self.min_closed_interval = min_closed_interval
        self.max_closed_interval = max_closed_interval
        self.reversed_range = reversed_range
        if any_or_all not in ("any", "all"):
            raise ValueError(f"any_or_all must be 'any' or 'all', got {any_or_all!r}")
        self.any_or_all = any_or_all

    @property
    def stats_keys(self) -> tuple[str, ...]:
        return tuple(self.stat_bounds)

    def compute_stats(self, batch: Batch) -> None:
        """Set ``batch.stats[key]`` for every key in ``stat_bounds``."""
        raise NotImplementedError

    def ensure_stats(self, batch: Batch) -> None:
        if not self.has_stats or all(k in batch.stats for k in self.stats_keys):
            return
        self.compute_stats(batch)

    def bounds_mask(self, values: np.ndarray, lo: Any, hi: Any) -> np.ndarray:
        """Vectorised ``get_keep_boolean`` over numeric values (NaN never passes)."""
        res = ~np.isnan(values)
        if lo is not None:
            res &= values >= lo if self.min_closed_interval else values > lo
        if hi is not None:
            res &= values <= hi if self.max_closed_interval else values < hi
        if self.reversed_range:
            res = ~res & ~np.isnan(values)
        return res

    def keep(self, batch: Batch) -> np.ndarray:
        """Boolean mask of rows to keep, from the stats alone."""
        n = len(batch)
        mask = np.ones(n, dtype=bool)
        item_cols = []
        for key, (lo_name, hi_name) in self.stat_bounds.items():
            lo = getattr(self, lo_name) if lo_name else None
            hi = getattr(self, hi_name) if hi_name else None
            col = batch.stats[key]
            if n and isinstance(col[0], list):
                item_cols.append((col, lo, hi))
            else:
                mask &= self.bounds_mask(_as_float(col), lo, hi)
        if item_cols:
            groups = [item_cols] if self.item_passes_all_stats else [[c] for c in item_cols]
            for group in groups:
                mask &= self._reduce_items(group)
        return mask

    def _reduce_items(self, cols: list[tuple[list, Any, Any]]) -> np.ndarray:
        """Per row: each item (image, video) passes when its values of every column in ``cols`` are
        in their bounds; the row is kept when any / all of its items pass."""
        first = cols[0][0]
        out = np.empty(len(first), dtype=bool)
        reduce = any if self.any_or_all == "any" else all
        for i, items in enumerate(first):
            if not items:
                out[i] = True  # samples without media are kept, as upstream
                continue
            ok = self.bounds_mask(_as_float(items), cols[0][1], cols[0][2])
            for col, lo, hi in cols[1:]:
                ok &= self.bounds_mask(_as_float(col[i]), lo, hi)
            out[i] = reduce(ok)
        return out


def _as_float(values: Sequence) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_to_float(v) for v in values], dtype=np.float64)


def _to_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


class DedupIndex:
    """Coordinator-side state of a deduplicator: sees every row's keys in input order.

    A *streaming* index (exact duplicates: clusters are equal keys) decides each row on arrival:
    ``check`` returns, per row, ``None`` when the row is the first of its cluster (kept) or the
    row id of an earlier row it duplicates.  Rows are fed strictly in input order, so "the first
    occurrence survives" holds across batches and worker processes.

    A non-streaming index (near duplicates: clusters are connected components, which a later row
    can join) collects every key with ``add`` and decides once with ``finalize``, which returns
    ``{removed row id: row id of the cluster's survivor}``; the survivor of each cluster is its
    first row in input order.  The executor holds the rows back (spilled to disk) until then.
    """

    streaming: ClassVar[bool] = True
    #: duplicate pairs (survivor, removed, similarity) the summary samples, the first removed rows
    sample_size: int = SAMPLE_PAIRS

    def check(self, row_ids: Sequence[int], keys: Sequence[Any]) -> list[int | None]:
        raise NotImplementedError

    def add(self, row_ids: Sequence[int], keys: Sequence[Any]) -> None:
        raise NotImplementedError

    def finalize(self) -> dict[int, int]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {}

    # Keys can be stored with a partition and fed to a later index (deduplication across
    # partitions without recomputing them): ``stored_keys`` returns the keys ``add`` received, in
    # order, as one Arrow array; ``keys_from_stored`` turns such an array back into keys for
    # ``add`` / ``check``.  An index without them is not storable.

    def stored_keys(self) -> Any:
        raise NotImplementedError

    def keys_from_stored(self, keys: Any) -> Sequence[Any]:
        raise NotImplementedError

    @classmethod
    def storable(cls) -> bool:
        return cls.stored_keys is not DedupIndex.stored_keys


class ExactDedupIndex(DedupIndex):
    """First occurrence of each hashable key wins; a ``None`` key is never a duplicate."""

    def __init__(self) -> None:
        self.first: dict[Hashable, int] = {}
        self.survivors: set[int] = set()  # first occurrences that have a duplicate (one per cluster)
        self.removed = 0
        self.sample_pairs: list[dict[str, Any]] = []
        self.held: list[Hashable] = []  # keys collected by ``add`` (to be stored)

    def check(self, row_ids: Sequence[int], keys: Sequence[Hashable]) -> list[int | None]:
        first = self.first
        out: list[int | None] = []
        for rid, key in zip(row_ids, keys):
            prev = rid if key is None else first.setdefault(key, rid)
            if prev == rid:
                out.append(None)
                continue
            out.append(prev)
            self.removed += 1
            self.survivors.add(prev)
            if len(self.sample_pairs) < self.sample_size:
                self.sample_pairs.append({"survivor": int(prev), "removed": int(rid), "similarity": 1.0})
        return out

    def add(self, row_ids: Sequence[int], keys: Sequence[Hashable]) -> None:
        self.held.extend(keys)

    def stored_keys(self) -> Any:
        """JSON bytes of each key (one encoding whatever the partition holds), null for None."""
        import orjson
        import pyarrow as pa

        dumps = orjson.dumps
        return pa.array([None if k is None else dumps(k) for k in self.held], type=pa.binary())

    def keys_from_stored(self, keys: Any) -> Sequence[Any]:
        return keys.to_pylist()

    def summary(self) -> dict[str, Any]:
        return {"distinct_keys": len(self.first), "clusters": len(self.survivors), "removed_rows": self.removed,
                "sample_pairs": self.sample_pairs}


class Deduplicator(OP):
    """Removes duplicate samples across the whole dataset.

    ``compute_hash`` runs in the workers (parallel, per batch) and returns one key per row; the
    coordinator feeds those keys in input order to the index made by ``new_index``.
    """

    #: ``compute_hash`` reads only the ``text_key`` column: a row with a string text always gets
    #: a key (so an earlier stage that reads the text can compute the keys of its output rows)
    text_keys: ClassVar[bool] = False
    #: ... and costs little per row (a digest, not MinHash): keys of rows already in a file can be
    #: computed in the coordinator
    light_text_keys: ClassVar[bool] = False

    def compute_hash(self, batch: Batch) -> list:
        raise NotImplementedError

    def new_index(self) -> DedupIndex:
        return ExactDedupIndex()
