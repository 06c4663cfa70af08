"""Streaming readers: jsonl (.gz), json, parquet and HF ``save_to_disk`` folders.

The coordinator only slices input into chunks of raw bytes (JSON lines) or Arrow record batches;
parsing happens in the workers (:func:`parse_chunk`).  A chunk carries the file and line of its
first record so that every bad row can be reported with its exact location.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.batch import Batch
from ..core.constants import Fields

CHUNK_MAX_BYTES = 8 << 20
#: default of the recipe's ``max_record_bytes``
MAX_RECORD_BYTES = 64 << 20
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".ndjson")
SUPPORTED = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson", ".parquet", ".arrow")


@dataclass
class Chunk:
    """A slice of input records, as produced by the coordinator and parsed by a worker."""

    index: int
    source: str
    first_row: int  # global row id of the first record of this chunk
    first_line: int  # 1-based line number (jsonl) or record number (others) inside ``source``
    n_records: int
    lines: bytes | None = None  # raw JSON lines
    table: pa.RecordBatch | None = None
    base_dir: str = ""  # folder against which relative media paths are resolved
    nbytes: int = 0
    skip: Any = None  # offsets of records to leave out (decided by an earlier pass)
    file_error: str | None = None  # the file cannot be read on from ``first_line`` (corrupt, truncated)
    #: offset -> (size, first bytes) of records over ``max_record_bytes``, left out of ``lines``
    oversize: dict[int, tuple[int, bytes]] | None = None


@dataclass
class BadRow:
    source: str
    line: int
    reason: str
    raw: str = ""

    def to_dict(self) -> dict:
        return {"file": self.source, "line": self.line, "reason": self.reason, "raw": self.raw}


@dataclass
class ParsedChunk:
    batch: Batch
    bad: list[BadRow] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # source line of each batch row


class DatasetFormatError(ValueError):
    pass


def resolve_inputs(dataset_path: str, suffixes: list[str] | None = None) -> list[Path]:
    """Files named by ``dataset_path`` (a file, a folder of files, or a save_to_disk folder)."""
    if not dataset_path:
        raise DatasetFormatError("dataset_path is empty: set it in the recipe or pass --dataset_path")
    files: list[Path] = []
    for part in dataset_path.split():
        p = Path(part).expanduser()
        if not p.exists():
            raise DatasetFormatError(f"dataset_path: {p} does not exist")
        if p.is_dir():
            if (p / "state.json").exists() and (p / "dataset_info.json").exists():
                files.extend(_save_to_disk_files(p))
                continue
            found = sorted(f for f in p.rglob("*") if f.is_file() and _supported(f, suffixes))
            if not found:
                raise DatasetFormatError(f"dataset_path: no {'/'.join(suffixes or SUPPORTED)} files under {p}")
            files.extend(found)
        else:
            if not _supported(p, None):
                raise DatasetFormatError(f"dataset_path: unsupported file type {p.name!r}; supported: {', '.join(SUPPORTED)}")
            files.append(p)
    return files


def _supported(p: Path, suffixes: list[str] | None) -> bool:
    name = p.name.lower()
    allowed = tuple(s.lower() for s in suffixes) if suffixes else SUPPORTED
    return name.endswith(allowed)


def _save_to_disk_files(folder: Path) -> list[Path]:
    state = json.loads((folder / "state.json").read_text())
    return [folder / f["filename"] for f in state.get("_data_files", [])]


def _open_binary(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _is_json_array(path: Path) -> bool:
    with _open_binary(path) as f:
        head = f.read(4096).lstrip()
    return head[:1] == b"["


def iter_chunks(
    files: list[Path],
    batch_size: int = 1000,
    row_range: tuple[int, int] | None = None,
    start: tuple[int, int] = (0, 0),
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Iterator[Chunk]:
    """Chunks of at most ``batch_size`` records over ``files`` in order.

    ``row_range`` = (start, stop) restricts to those global record ordinals (used for partitions
    of one large file); records outside it are skipped without being parsed.  ``start`` is the
    (chunk index, global row id) of the first chunk, when ``files`` continue earlier files (see
    :func:`file_starts`).  A JSON-lines record over ``max_record_bytes`` is not loaded: the chunk
    lists it in ``oversize`` and the worker reports it as a bad row.
    """
    cursor = list(start)
    for path in files:
        yield from _file_chunks(path, batch_size, row_range, cursor, max_record_bytes)
        if row_range is not None and cursor[1] >= row_range[1]:
            return


def file_starts(files: list[Path], batch_size: int, row_range: tuple[int, int] | None = None,
                max_record_bytes: int = MAX_RECORD_BYTES) -> list[tuple[int, int]]:
    """(chunk index, global row id) at which each of ``files`` starts in :func:`iter_chunks`, so
    that each file can be read on its own (reads every file but the last once)."""
    cursor = [0, 0]
    starts = []
    for k, path in enumerate(files):
        starts.append((cursor[0], cursor[1]))
        if k + 1 < len(files):
            for _ in _file_chunks(path, batch_size, row_range, cursor, max_record_bytes):
                pass
    return starts


def _file_chunks(path: Path, batch_size: int, row_range: tuple[int, int] | None, cursor: list[int],
                 max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[Chunk]:
    """The chunks of one file; ``cursor`` = [next chunk index, next global row id] advances."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        gen = _parquet_chunks(path, batch_size)
    elif name.endswith(".arrow"):
        gen = _arrow_chunks(path, batch_size)
    elif name.endswith((".json", ".json.gz")) and _is_json_array(path):
        gen = _json_array_chunks(path, batch_size)
    else:
        gen = _jsonl_chunks(path, batch_size, max_record_bytes)
    for chunk in _stop_at_corruption(gen, path):
        chunk.index, chunk.first_row = cursor
        cursor[1] += chunk.n_records
        if row_range is not None:
            chunk = _clip(chunk, row_range)
            if chunk is None:
                if cursor[1] >= row_range[1]:
                    return
                continue
        cursor[0] += 1
        yield chunk


def with_skip(chunk: Chunk, mask: Any) -> Chunk:
    """``chunk`` with the records ``mask`` (a boolean mask over its file's records) marks left out."""
    if mask is not None:
        offset = chunk.first_line - 1
        chunk.skip = np.flatnonzero(mask[offset: offset + chunk.n_records])
    return chunk


def _stop_at_corruption(chunks: Iterator[Chunk], path: Path) -> Iterator[Chunk]:
    """The chunks of one file; if the file turns out corrupt or truncated, a last empty chunk
    carrying the reason, so the records read so far are processed and the run goes on."""
    next_line = 1
    try:
        for chunk in chunks:
            next_line = chunk.first_line + chunk.n_records
            yield chunk
    except (OSError, EOFError, zlib.error, pa.ArrowException, ValueError) as exc:
        reason = f"file unreadable from record {next_line} on ({type(exc).__name__}: {exc}); the records after it are lost"
        yield Chunk(0, str(path), 0, next_line, 0, base_dir=str(path.resolve().parent), file_error=reason)


def _clip(chunk: Chunk, row_range: tuple[int, int]) -> Chunk | None:
    start, stop = row_range
    lo = max(start - chunk.first_row, 0)
    hi = min(stop - chunk.first_row, chunk.n_records)
    if hi <= lo:
        return None
    if lo == 0 and hi == chunk.n_records:
        return chunk
    if chunk.lines is not None:
        parts = chunk.lines.split(b"\n")[lo:hi]
        lines = b"\n".join(parts)
        oversize = {i - lo: v for i, v in (chunk.oversize or {}).items() if lo <= i < hi}
        return Chunk(chunk.index, chunk.source, chunk.first_row + lo, chunk.first_line + lo, hi - lo,
                     lines=lines, base_dir=chunk.base_dir, nbytes=len(lines), oversize=oversize or None)
    table = chunk.table.slice(lo, hi - lo)
    return Chunk(chunk.index, chunk.source, chunk.first_row + lo, chunk.first_line + lo, hi - lo,
                 table=table, base_dir=chunk.base_dir, nbytes=table.nbytes)


def _jsonl_chunks(path: Path, batch_size: int, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[Chunk]:
    base = str(path.resolve().parent)
    line_no = 1
    with open(path, "rb") as raw:
        if path.name.lower().endswith(".gz"):
            lines = ((line, len(line)) for line in _gzip_lines(raw))
        else:
            lines = _bounded_lines(io.BufferedReader(raw, buffer_size=1 << 20), max_record_bytes)
        buf: list[bytes] = []
        oversize: dict[int, tuple[int, bytes]] = {}
        size = 0
        for line, n in lines:
            if n - line.endswith(b"\n") > max_record_bytes:
                oversize[len(buf)] = (n, line[:2000])
                line = b"\n"
            buf.append(line)
            size += len(line)
            if len(buf) >= batch_size or size >= CHUNK_MAX_BYTES:
                yield Chunk(0, str(path), 0, line_no, len(buf), lines=_join(buf), base_dir=base, nbytes=size,
                            oversize=oversize or None)
                line_no += len(buf)
                buf, size, oversize = [], 0, {}
        if buf:
            yield Chunk(0, str(path), 0, line_no, len(buf), lines=_join(buf), base_dir=base, nbytes=size,
                        oversize=oversize or None)


def _bounded_lines(f, limit: int) -> Iterator[tuple[bytes, int]]:
    """(line, its size) for every line of ``f``; of a line longer than ``limit`` only the first
    ``limit + 1`` bytes are kept in memory (the rest is read past)."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n = len(line)
        if n > limit and not line.endswith(b"\n"):
            while True:
                rest = f.readline(1 << 20)
                n += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line, n


def _gzip_lines(raw, block: int = 1 << 20) -> Iterator[bytes]:
    """Lines of a gzip stream, decompressed block by block so that every complete line before
    a truncation or corruption is delivered before the error is raised."""
    d = zlib.decompressobj(wbits=31)
    tail = b""
    started = False
    while True:
        data = raw.read(block)
        if not data:
            break
        started = True
        while data:
            out = d.decompress(data)
            data = b""
            if d.eof and d.unused_data:  # a multi-member file: the next member starts here
                data = d.unused_data
                d = zlib.decompressobj(wbits=31)
            lines = (tail + out).split(b"\n")
            tail = lines.pop()
            for line in lines:
                yield line + b"\n"
    if started and not d.eof:  # an empty file is an empty stream, as for gzip.open
        raise EOFError("compressed file ended before the end-of-stream marker was reached")
    if tail:
        yield tail


def _join(lines: list[bytes]) -> bytes:
    # one record per line; strip the final newline so split(b"\n") gives exactly len(lines) parts
    data = b"".join(lines)
    return data[:-1] if data.endswith(b"\n") else data


def _json_array_chunks(path: Path, batch_size: int) -> Iterator[Chunk]:
    """A JSON file holding one array of records, streamed item by item (never loaded whole)."""
    import ijson

    base = str(path.resolve().parent)
    rec_no = 1
    buf: list[bytes] = []
    with _open_binary(path) as f:
        for item in ijson.items(f, "item", use_float=True):
            buf.append(orjson.dumps(item))
            if len(buf) >= batch_size:
                yield Chunk(0, str(path), 0, rec_no, len(buf), lines=b"\n".join(buf), base_dir=base,
                            nbytes=sum(map(len, buf)))
                rec_no += len(buf)
                buf = []
    if buf:
        yield Chunk(0, str(path), 0, rec_no, len(buf), lines=b"\n".join(buf), base_dir=base, nbytes=sum(map(len, buf)))


def _parquet_chunks(path: Path, batch_size: int) -> Iterator[Chunk]:
    base = str(path.resolve().parent)
    rec_no = 1
    pf = pq.ParquetFile(path)
    for rb in pf.iter_batches(batch_size=batch_size):
        yield Chunk(0, str(path), 0, rec_no, rb.num_rows, table=rb, base_dir=base, nbytes=rb.nbytes)
        rec_no += rb.num_rows


def _arrow_chunks(path: Path, batch_size: int) -> Iterator[Chunk]:
    """Arrow IPC stream files, as written by ``datasets.Dataset.save_to_disk``."""
    base = str(path.resolve().parent)
    rec_no = 1
    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            batches = iter(reader)
        for rb in batches:
            for off in range(0, rb.num_rows, batch_size):
                part = rb.slice(off, batch_size)
                yield Chunk(0, str(path), 0, rec_no, part.num_rows, table=part, base_dir=base, nbytes=part.nbytes)
                rec_no += part.num_rows


# ---------------------------------------------------------------------------------------------
# Worker side


def parse_chunk(chunk: Chunk, text_key: str | None = None) -> ParsedChunk:
    """Parse a chunk into a Batch; malformed records become BadRows with file, line and reason.

    With ``text_key``, a record whose text is missing, null or not a string is bad input too.
    """
    if chunk.table is not None:
        records = enumerate(chunk.table.to_pylist())
    else:
        records = _decode_lines(chunk)
    skip = set(chunk.skip.tolist()) if chunk.skip is not None and len(chunk.skip) else ()
    rows, ids, lines, bad = [], [], [], []
    if chunk.file_error:
        bad.append(BadRow(chunk.source, chunk.first_line, chunk.file_error))
    for i, obj in records:
        if i in skip:
            continue
        line_no = chunk.first_line + i
        if isinstance(obj, BadRow):
            bad.append(obj)
            continue
        if text_key is not None:
            reason = _text_problem(obj, text_key)
            if reason:
                bad.append(BadRow(chunk.source, line_no, reason, _preview(orjson.dumps(obj, default=str))))
                continue
        rows.append(obj)
        ids.append(chunk.first_row + i)
        lines.append(line_no)
    batch = Batch.from_rows(rows, row_ids=ids)
    _adopt_stats(batch)
    return ParsedChunk(batch, bad, lines)


def _adopt_stats(batch: Batch) -> None:
    """Stats already in the data (``__dj__stats__``) are reused, never recomputed (as upstream)."""
    col = batch.columns.get(Fields.stats)
    if col is None or not all(isinstance(v, dict) for v in col):
        return
    del batch.columns[Fields.stats]
    keys: dict[str, None] = {}
    for v in col:
        keys.update(dict.fromkeys(v))
    batch.stats = {k: [v.get(k) for v in col] for k in keys}


def _decode_lines(chunk: Chunk) -> Iterator[tuple[int, dict | BadRow]]:
    loads = orjson.loads
    oversize = chunk.oversize or {}
    for i, raw in enumerate(chunk.lines.split(b"\n") if chunk.lines else []):
        line_no = chunk.first_line + i
        if i in oversize:
            n, head = oversize[i]
            yield i, BadRow(chunk.source, line_no, f"record of {n} bytes is over max_record_bytes", _preview(head))
            continue
        if not raw.strip():
            continue  # blank lines carry no record (as in every JSON-lines reader)
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError as exc:
            yield i, BadRow(chunk.source, line_no, _json_reason(raw, exc), _preview(raw))
            continue
        if not isinstance(obj, dict):
            yield i, BadRow(chunk.source, line_no, f"not a JSON object ({type(obj).__name__})", _preview(raw))
            continue
        yield i, obj


def _text_problem(row: dict, text_key: str) -> str | None:
    if text_key not in row:
        return f"missing text field {text_key!r}"
    value = row[text_key]
    if isinstance(value, str):
        return None
    if value is None:
        return f"text field {text_key!r} is null"
    return f"text field {text_key!r} is {type(value).__name__}, expected a string"


def _json_reason(raw: bytes, exc: Exception) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return f"invalid UTF-8 at byte {uexc.start}"
    return f"malformed JSON: {exc}"


def _preview(raw: bytes, limit: int = 2000) -> str:
    text = raw[:limit].decode("utf-8", errors="backslashreplace")
    return text + ("..." if len(raw) > limit else "")
