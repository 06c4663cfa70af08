"""What one pass reads: the input files cut into the chunks workers process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import Chunk, iter_chunks, resolve_inputs, with_skip


@dataclass
class ChunkSource:
    """Files, an optional row range and skip masks, cut into chunks of ``chunk_rows`` records.

    Iterating it gives the chunks in input order (as the local backend reads them on the
    coordinator); :meth:`read` reads some of the files from a known start, so the Ray backend can
    read each file on the cluster with the same chunk numbers, row ids and line numbers."""

    files: list[Path]
    chunk_rows: int
    max_record_bytes: int
    row_range: tuple[int, int] | None = None
    #: input file -> boolean mask over its records: masked records are left out
    skip: dict[str, np.ndarray] | None = None

    def __iter__(self) -> Iterator[Chunk]:
        return self.read(self.files, (0, 0))

    def read(self, files: list[Path], start: tuple[int, int]) -> Iterator[Chunk]:
        """Chunks of ``files``, numbered from ``start`` = (first chunk index, first row id)."""
        for chunk in iter_chunks(files, self.chunk_rows, self.row_range, start, self.max_record_bytes):
            yield with_skip(chunk, self.skip.get(chunk.source)) if self.skip else chunk

    def first(self) -> Chunk | None:
        return next(iter(self), None)


def input_files(recipe: Recipe) -> list[Path]:
    """The recipe's input files (``dataset_path``, ``suffixes``)."""
    return resolve_inputs(recipe.dataset_path, recipe.suffixes or None)
