"""Shared intermediates: what OPs compute once per batch and share through ``batch.cache``.

The contract:

- **Keys**: an intermediate is stored in ``batch.cache[key]`` (one value per row) through
  ``batch.cached(key, compute)`` or a helper built on it.  The key names everything the value
  depends on (the text field, a tokenizer, an image processor's settings, a CLIP tower), so two
  OPs share an intermediate exactly when they ask for the same thing.  ``OP.intermediate_keys()``
  lists them for the fusion planner, which groups and orders filters by what they share.
- **Batch-lived** intermediates (words, lines, image headers, video stream info) are cheap to hold:
  they live as long as the batch and are carried into its slices.
- **Slice-lived** intermediates (decoded pixels, model input tensors, embeddings, sampled frames:
  keys made by :func:`slice_key`) are heavy: an OP with ``slice_rows()`` computes them on slices
  of that many rows (:func:`row_slices`, :func:`stats_by_slice`) and they die with the slice.
- **Fused groups**: the executor runs a fused group's sliced filters slice by slice and marks
  each slice ``batch.shared_slice = True``; an OP handed such a batch works on it directly (no
  slicing of its own), so every filter of the group finds the heavy intermediates the previous
  ones left in the slice's cache.  The executor drops them when the group is done.
- **Invalidation**: an OP that rewrites a column the intermediates derive from clears the cache
  (``batch.invalidate_cache()``, as :class:`~dj_ops.ops.base.text.TextMapper` does).
"""

from __future__ import annotations

from typing import Callable, Iterator

from dj_ops.core.batch import Batch

#: prefix of the keys of slice-lived intermediates
SLICE_PREFIX = "__dj__slice:"


def slice_key(name: str) -> str:
    """The cache key of a slice-lived intermediate called ``name``."""
    return SLICE_PREFIX + name


def is_slice_key(key: str) -> bool:
    return key.startswith(SLICE_PREFIX)


def drop_slice_lived(batch: Batch) -> None:
    """Forget the batch's slice-lived intermediates (a fused group is done with them)."""
    batch.cache = {k: v for k, v in batch.cache.items() if not is_slice_key(k)}


def row_slices(batch: Batch, rows: int) -> Iterator[tuple[int, Batch]]:
    """(offset, slice) pairs covering ``batch``: fresh batches of at most ``rows`` rows carrying
    the batch-lived intermediates, or the batch itself when it is already a shared slice."""
    if batch.shared_slice:
        yield 0, batch
        return
    n = len(batch)
    light = {k: v for k, v in batch.cache.items() if not is_slice_key(k)}
    for start in range(0, n, max(1, rows)):
        stop = min(n, start + rows)
        part = Batch({k: v[start:stop] for k, v in batch.columns.items()}, batch.row_ids[start:stop],
                     cache={k: v[start:stop] for k, v in light.items()})
        yield start, part


def stats_by_slice(batch: Batch, rows: int, stats_of: Callable[[Batch], dict[str, list]]) -> None:
    """Compute ``stats_of(slice)`` slice by slice and store the joined columns in ``batch.stats``;
    rows a slice marks bad are marked on ``batch``."""
    joined: dict[str, list] = {}
    for offset, part in row_slices(batch, rows):
        cols = stats_of(part)
        for key, vals in cols.items():
            joined.setdefault(key, []).extend(vals)
        if part is not batch:
            for pos, reason in part.bad.items():
                batch.mark_bad(offset + pos, reason)
    for key, vals in joined.items():
        batch.stats[key] = vals
