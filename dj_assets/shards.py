"""Input shards of a recipe: one per input file, large files split into fixed-size row ranges.

A shard's partition key is its file's path relative to the folder it was found in (``/`` written
as ``__``), plus ``@<start>-<stop>`` for a row range of a split file: ``reviews.jsonl``,
``big.jsonl@0-100000``.  Keys come from the files alone, so every process (webserver, daemon,
run) resolves a key to the same file and rows without shared state.

A recipe's inputs are the files of ``dataset_path`` followed by those of its inbox folder (the
inbox sensor turns each new file there into partitions as it lands).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dj_ops.core.recipe import Recipe
from dj_ops.io.readers import SUPPORTED, DatasetFormatError, resolve_inputs

RANGE_SEP = "@"
DIR_SEP = "__"
#: files still being written by a producer are skipped by these name patterns
_TEMP_PREFIXES = (".", "~")
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass(frozen=True)
class Shard:
    """One partition's data: a file, or a row range of it (``row_range`` = (start, stop))."""

    key: str
    path: str
    row_range: tuple[int, int] | None = None


class ShardError(ValueError):
    """A partition key that names no input file, or two files with the same key."""


def split_key(key: str) -> tuple[str, tuple[int, int] | None]:
    base, sep, rng = key.rpartition(RANGE_SEP)
    if sep and rng.count("-") == 1:
        start, stop = rng.split("-")
        if start.isdigit() and stop.isdigit():
            return base, (int(start), int(stop))
    return key, None


def file_key(root: Path, path: Path) -> str:
    rel = path.relative_to(root) if path != root else Path(path.name)
    return DIR_SEP.join(rel.parts)


def is_input_file(path: Path) -> bool:
    name = path.name
    return (path.is_file() and name.lower().endswith(SUPPORTED)
            and not name.startswith(_TEMP_PREFIXES) and not name.lower().endswith(_TEMP_SUFFIXES))


def dataset_files(recipe: Recipe) -> list[tuple[str, Path]]:
    """(base key, path) of every file of ``dataset_path``, in the local executor's order."""
    if not recipe.dataset_path:
        return []
    out = []
    for part in recipe.dataset_path.split():
        root = Path(part)
        if not root.exists():
            raise DatasetFormatError(f"dataset_path: {root} does not exist")
        files = resolve_inputs(part, recipe.suffixes or None)
        base = root if root.is_dir() else root.parent
        out.extend((file_key(base, f), f) for f in files)
    return out


def inbox_files(inbox: Path) -> list[tuple[str, Path, int]]:
    """(base key, path, change time in ns) of the files in ``inbox``, oldest first."""
    if not inbox.is_dir():
        return []
    found = []
    for f in inbox.rglob("*"):
        if is_input_file(f):
            st = f.stat()
            # ctime also moves when a file is renamed or copied in with an old mtime preserved
            found.append((file_key(inbox, f), f, max(st.st_ctime_ns, st.st_mtime_ns)))
    found.sort(key=lambda t: (t[2], t[0]))
    return found


def count_rows(path: Path, at_most: int | None = None) -> int | None:
    """Records in a file, or None when it cannot be split by row (JSON arrays, Arrow).  With
    ``at_most``, JSON lines are counted only until there are more: a larger count is returned then,
    not necessarily the file's."""
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.ParquetFile(path).metadata.num_rows
        if name.endswith((".jsonl", ".ndjson", ".jsonl.gz")):
            # the readers number records by line, blank lines included
            opener = gzip.open if name.endswith(".gz") else open
            n, last = 0, b"\n"
            with opener(path, "rb") as f:
                while block := f.read(1 << 20):
                    n += block.count(b"\n")
                    last = block[-1:]
                    if at_most is not None and n > at_most:
                        return n
            return n + (last != b"\n")
    except (OSError, EOFError, pa.ArrowInvalid) as exc:
        raise DatasetFormatError(f"{path}: cannot be read ({exc})") from None
    return None


def shards_of_file(base_key: str, path: Path, partition_rows: int) -> list[Shard]:
    n = count_rows(path) if partition_rows > 0 else None
    if n is None or n <= partition_rows:
        return [Shard(base_key, str(path))]
    return [Shard(f"{base_key}{RANGE_SEP}{lo}-{min(lo + partition_rows, n)}", str(path), (lo, min(lo + partition_rows, n)))
            for lo in range(0, n, partition_rows)]


def _all_files(recipe: Recipe, inbox: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for key, path in [*dataset_files(recipe), *((k, p) for k, p, _ in inbox_files(inbox))]:
        if key in files and files[key] != path:
            raise ShardError(f"input files {files[key]} and {path} would share partition key {key!r}; rename one")
        files[key] = path
    return files


def discover_shards(recipe: Recipe, inbox: Path) -> list[Shard]:
    """Every shard of the recipe's inputs: dataset files in order, then inbox files oldest first."""
    return [s for key, path in _all_files(recipe, inbox).items()
            for s in shards_of_file(key, path, recipe.partition_rows)]


def resolve_shards(recipe: Recipe, inbox: Path, keys: list[str]) -> list[Shard]:
    """The shards named by partition keys, in the order given (no file is re-counted)."""
    files = _all_files(recipe, inbox)
    out = []
    for key in keys:
        base, rng = split_key(key)
        path = files.get(base) or files.get(key)
        if path is None:
            raise ShardError(f"partition {key!r}: no input file {base!r} under dataset_path "
                             f"{recipe.dataset_path!r} or inbox {str(inbox)!r} (was it moved or deleted?)")
        out.append(Shard(key, str(path), rng if files.get(key) is None else None))
    return out

