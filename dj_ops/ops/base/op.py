"""The OP contract: :class:`OP` and its two row-wise kinds, :class:`Mapper` and :class:`Filter`.

Every OP works on a whole :class:`~dj_ops.core.batch.Batch` at a time.  What the executor, the
fusion planner and GPU placement need from an OP is declared here, with defaults that fit a plain
CPU OP; a model OP overrides the model hooks (see :mod:`dj_ops.ops.base.model`):

=====================  ==========================================================================
hook                   used by / meaning
=====================  ==========================================================================
``uses_text``          executor: rows whose ``text_key`` is missing or not a string are set aside
``default_accelerator`` recipe: ``accelerator`` when the recipe does not set one (``cpu``/``cuda``)
``intermediates``      planner: names of the shared intermediates the OP reads (class level)
``intermediate_keys``  planner: the same per instance (e.g. which CLIP tower a model OP embeds with)
``placement``          executor, placement: where the OP's models run (None: no model)
``load_models``        planner, placement: load (once per process) every model the OP uses
``probe_rows``         planner: rows worth probing (None: any batch)
``slice_rows``         executor, planner: rows per slice of heavy intermediates (None: no slicing)
``sample_batch``       placement: an input batch to measure the OP's device memory on (None: none)
=====================  ==========================================================================

Filters compute their stats once (skipped when the stat columns already exist) and decide from
the stats alone, as Data-Juicer does, so stats computed once can be exported, analysed and reused.
Running an OP on a batch the way a run does (bad rows set aside, filters dropping rows) is
:func:`dj_ops.engine.apply.apply_op`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from dj_ops.core.batch import Batch

if TYPE_CHECKING:
    from dj_ops.models.runtime import Placement

MAXSIZE = sys.maxsize


class OP:
    """Base of every operator.  ``name`` is set by :func:`dj_ops.core.registry.register`."""

    name: ClassVar[str] = ""
    #: ``accelerator`` when the recipe gives none: ``cuda`` for OPs that run a model
    default_accelerator: ClassVar[str] = "cpu"
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
        self.accelerator = accelerator or self.default_accelerator
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

    # -- what the planner and placement ask (defaults: a CPU OP without models) ------------------

    def intermediate_keys(self) -> tuple[str, ...]:
        """The shared intermediates this instance reads; the class's ``intermediates`` by default."""
        return tuple(self.intermediates)

    def placement(self) -> Placement | None:
        """Device and dtype of this OP's models in this process; None for an OP without models."""
        return None

    def load_models(self) -> list:
        """Load, once per process, every model this OP uses (the runtime's LoadedModel records)."""
        return []

    def probe_rows(self) -> int | None:
        """Rows the fusion planner should probe this OP on (a model OP: one micro-batch)."""
        return None

    def slice_rows(self) -> int | None:
        """Rows per slice when the OP holds heavy intermediates (decoded media, tensors) that live
        for one slice only; None when it holds none."""
        return None

    def sample_batch(self, rows: int) -> Batch | None:
        """``rows`` synthetic input rows to measure the device memory of the OP's models on."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class Mapper(OP):
    """Edits samples.  Implement ``process_batched`` (may change the row count)."""

    def process_batched(self, batch: Batch) -> Batch:
        raise NotImplementedError


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
