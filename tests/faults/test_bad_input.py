"""Corrupt and malformed input, empty files and an OP raising on ~1% of rows: the run completes
and its output is the clean run's minus exactly the rows reported as bad."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import load_recipe
from tests.faults import fault_ops  # noqa: F401  (registers the test OPs)
from tests.faults.helpers import read_jsonl, write_dataset, write_recipe

# no deduplicator: removing a bad row must not change which duplicate survives
CHAIN = [
    {"whitespace_normalization_mapper": None},
    {"test_poisoned_mapper": None},
    {"text_length_filter": {"min_len": 20}},
]


def process(tmp_path: Path, dataset: Path, name: str, **keys) -> tuple[list[dict], list[dict]]:
    out = tmp_path / name
    recipe = load_recipe(write_recipe(tmp_path / f"{name}.yaml", dataset, out, CHAIN, **keys))
    LocalExecutor(recipe, progress=False, log=lambda m: None).run()
    bad = out / "bad_rows.jsonl"
    return read_jsonl(out / "out.jsonl"), read_jsonl(bad) if bad.exists() else []


def lost_ids(bad: list[dict], files: dict[str, list[dict]]) -> set[str]:
    """Input ids of the rows the bad-row report accounts for (a file error: every later record)."""
    ids = set()
    for b in bad:
        name = Path(b["file"]).name
        if b["reason"].startswith("file unreadable"):
            ids.update(r["id"] for r in files[name][b["line"] - 1:])
        else:
            ids.add(f"{name}:{b['line']}")
    return ids


def check(tmp_path: Path, dataset: Path, files: dict, clean: tuple[list[dict], list[dict]], **keys) -> list[dict]:
    rows, bad = process(tmp_path, dataset, "faulty", **keys)
    clean_rows, clean_bad = clean
    lost = lost_ids(bad, files)
    assert rows == [r for r in clean_rows if r["id"] not in lost]
    # the clean run's bad rows are reported again, unless their record could not be read at all
    reported = {(Path(b["file"]).name, b["line"], b["reason"]) for b in bad}
    for b in clean_bad:
        key = (Path(b["file"]).name, b["line"], b["reason"])
        assert key in reported or f"{key[0]}:{key[1]}" in lost, b
    return bad


@pytest.fixture
def data(tmp_path):
    dataset = tmp_path / "data"
    files = write_dataset(dataset, seed=5)
    clean = process(tmp_path, dataset, "clean")
    return dataset, files, clean


def test_op_raising_on_one_percent_of_rows(data):
    _, files, (rows, bad) = data
    poisoned = [b for b in bad if "poisoned row" in b["reason"]]
    assert poisoned and len(poisoned) < 0.05 * sum(len(v) for v in files.values())
    assert all(b["reason"] == "test_poisoned_mapper raised ValueError: poisoned row" for b in poisoned)
    kept = {r["id"] for r in rows}
    assert not kept & lost_ids(poisoned, files)


def test_truncated_gzip(tmp_path, data):
    dataset, files, clean = data
    gz = dataset / "b.jsonl.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    bad = check(tmp_path, dataset, files, clean)
    errors = [b for b in bad if b["reason"].startswith("file unreadable")]
    assert len(errors) == 1 and errors[0]["file"].endswith("b.jsonl.gz") and errors[0]["line"] > 1


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_parquet(tmp_path, data, damage):
    dataset, files, clean = data
    pq_file = dataset / "c.parquet"
    raw = pq_file.read_bytes()
    pq_file.write_bytes(b"not a parquet file at all" if damage == "garbage" else raw[: len(raw) // 2])
    bad = check(tmp_path, dataset, files, clean)
    errors = [b for b in bad if b["reason"].startswith("file unreadable")]
    assert len(errors) == 1 and errors[0]["file"].endswith("c.parquet") and errors[0]["line"] == 1


def test_malformed_rows(tmp_path, data):
    dataset, files, clean = data
    path = dataset / "a.jsonl"
    lines = path.read_text().splitlines()
    lines[4] = '{"id": "a.jsonl:5", "text": "unterminated'
    lines[9] = json.dumps({"id": "a.jsonl:10", "text": None})
    lines[11] = "[1, 2, 3]"
    lines[13] = '{"id": "a.jsonl:14", "text": 42}'
    path.write_text("\n".join(lines) + "\n")
    bad = check(tmp_path, dataset, files, clean)
    reasons = {b["line"]: b["reason"] for b in bad if b["file"].endswith("a.jsonl")}
    assert reasons[5].startswith("malformed JSON") and "null" in reasons[10]
    assert reasons[12].startswith("not a JSON object") and "is int" in reasons[14]


def test_only_empty_files(tmp_path):
    dataset = tmp_path / "empty"
    dataset.mkdir()
    (dataset / "a.jsonl").write_bytes(b"")
    (dataset / "b.jsonl").write_bytes(b"\n\n")
    rows, bad = process(tmp_path, dataset, "out")
    assert rows == [] and bad == []


def test_checkpointed_run_with_bad_input_resumes_identically(tmp_path, data):
    dataset, files, clean = data
    gz = dataset / "b.jsonl.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    first = process(tmp_path, dataset, "first")
    keys = {"use_checkpoint": True, "checkpoint_dir": str(tmp_path / "ckpt")}
    assert process(tmp_path, dataset, "ck1", **keys) == first
    assert process(tmp_path, dataset, "ck2", **keys) == first  # a full replay from the checkpoint
