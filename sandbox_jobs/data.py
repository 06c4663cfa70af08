"""Reading datasets for training and evaluation, and preparing a sandbox's data once."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any, Iterator

import orjson

from dj_ops.io.readers import iter_chunks, parse_chunk, resolve_inputs

from .config import ImageFolder, PrepareData, SandboxConfig


def field_value(row: dict, dotted: str) -> Any:
    """``row["meta"]["label"]`` for ``meta.label`` (a literal dotted key wins); None when absent."""
    if dotted in row:
        return row[dotted]
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def read_rows(dataset_path: str, fields: list[str], text_key: str = "text") -> list[dict[str, Any]]:
    """``{field: value}`` for each row of a dataset (jsonl, json, parquet, a folder of them) whose
    ``text_key`` holds a string; other rows are skipped as the engine would set them aside."""
    out: list[dict[str, Any]] = []
    for chunk in iter_chunks(resolve_inputs(dataset_path)):
        batch = parse_chunk(chunk, text_key).batch
        out.extend({f: field_value(r, f) for f in fields} for r in batch.rows())
    return out


def sample_rows(rows: list, n: int | None, seed: int) -> list:
    """``n`` rows drawn without replacement (seeded), in their original order; all when n is None."""
    if n is None or n >= len(rows):
        return list(rows)
    keep = sorted(random.Random(seed).sample(range(len(rows)), n))
    return [rows[i] for i in keep]


# ---------------------------------------------------------------------------------------------
# preparation


def _settings_hash(prep: PrepareData) -> str:
    src = Path(prep.source)
    stat = src.stat()
    files = sorted(p.name for p in src.iterdir()) if src.is_dir() else []
    blob = json.dumps([prep.model_dump(), stat.st_size, int(stat.st_mtime), files], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _jsonl_records(src: Path) -> Iterator[tuple[dict, bytes]]:
    opener = gzip.open if src.name.endswith(".gz") else open
    with opener(src, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line), line.rstrip(b"\n") + b"\n"


def image_folder_records(src: Path, folder: ImageFolder, text_key: str,
                         log=print) -> Iterator[tuple[dict, bytes]]:
    """One record per image file of ``src`` whose name matches, in a seeded shuffled order."""
    pattern = re.compile(folder.name_pattern)
    files = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in folder.extensions)
    random.Random(folder.seed).shuffle(files)
    unmatched = []
    for path in files:
        match = pattern.fullmatch(path.stem)
        if match is None:
            unmatched.append(path.name)
            continue
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        meta: dict[str, Any] = {"file": path.name, **groups}
        if folder.label is not None:
            meta["label"] = folder.label.label(groups[folder.label.field])
        record = {text_key: folder.text.format(**groups), "images": [str(path.resolve())], "meta": meta}
        yield record, orjson.dumps(record) + b"\n"
    if unmatched:
        log(f"prepare_data: {len(unmatched)} image files of {src} do not match name_pattern, e.g. {unmatched[0]}")


def prepare_data(sandbox: SandboxConfig, log=print) -> dict[str, Any]:
    """Write each split of ``prepare_data`` to ``<work_dir>/data/<split>.jsonl`` (idempotent).

    Records are taken in file order: a record goes to the first split whose ``where`` it matches
    and that still needs rows, so splits never share a record.  Returns the split paths and
    row counts.
    """
    prep = sandbox.prepare_data
    if prep is None:
        return {}
    out_dir = sandbox.prepared_dir
    marker = out_dir / "prepared.json"
    src = Path(prep.source)
    if prep.image_folder is not None and not src.is_dir():
        raise FileNotFoundError(f"prepare_data.source: {src} is not a folder (image_folder is set)")
    if prep.image_folder is None and not src.is_file():
        raise FileNotFoundError(f"prepare_data.source: {src} does not exist")
    digest = _settings_hash(prep)
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("settings") == digest and all(Path(p).is_file() for p in done["paths"].values()):
            return done
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = {name: split.rows for name, split in prep.splits.items()}
    rows: dict[str, list[bytes]] = {name: [] for name in prep.splits}
    records = (_jsonl_records(src) if prep.image_folder is None
               else image_folder_records(src, prep.image_folder, prep.text_key, log))
    for record, line in records:
        if not isinstance(field_value(record, prep.text_key), str):
            continue
        for name, split in prep.splits.items():
            if len(rows[name]) < wanted[name] and all(field_value(record, k) == v for k, v in split.where.items()):
                rows[name].append(line)
                break
        if all(len(rows[n]) >= wanted[n] for n in rows):
            break
    paths = {}
    for name, lines in rows.items():
        if len(lines) < wanted[name]:
            log(f"prepare_data: split {name!r}: only {len(lines)} of {wanted[name]} matching records in {src}")
        path = out_dir / f"{name}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_bytes(b"".join(lines))
        tmp.replace(path)
        paths[name] = str(path)
    done = {"settings": digest, "source": str(src), "paths": paths, "rows": {n: len(v) for n, v in rows.items()}}
    marker.write_text(json.dumps(done, indent=1))
    log(f"prepare_data: {', '.join(f'{n}={len(v)}' for n, v in rows.items())} rows from {src} -> {out_dir}")
    return done
