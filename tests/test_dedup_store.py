"""Deduplication over partitions from stored keys (dj_ops.engine.dedup_store): keying partitions
one at a time and deciding over their stored keys gives the rows of one run over every file."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dj_ops.engine import dedup_store
from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import recipe_from_dict

from .testing_ops import _register_test_ops

_register_test_ops()

# bands of 2 rows: documents sharing half their shingles are always candidates, disjoint ones never
MINHASH = {"document_minhash_deduplicator": {"num_bands": 128, "num_rows_per_band": 2}}
DEDUPLICATORS = [MINHASH, {"document_simhash_deduplicator": {}}, {"document_deduplicator": {"lowercase": True}}]


def near_duplicate_partitions(seed: int = 7, n_parts: int = 3, per_part: int = 40) -> list[list[dict]]:
    """Random 60-word documents; a third of them are copies (one word replaced, or upper-cased)
    of a document of the same or an earlier partition."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    seen: list[str] = []
    parts = []
    for _ in range(n_parts):
        rows = []
        for _ in range(per_part):
            if seen and rng.random() < 0.35:
                words = rng.choice(seen).split(" ")
                if rng.random() < 0.5:
                    words[rng.randrange(len(words))] = rng.choice(vocab)
                text = " ".join(words) if rng.random() < 0.7 else " ".join(words).upper()
            else:
                text = " ".join(rng.choice(vocab) for _ in range(60))
            seen.append(text)
            rows.append({"text": text})
        rows.append({"other": "no text"})  # bad input: set aside, not keyed
        parts.append(rows)
    return parts


def write_parts(folder, parts) -> list:
    import json

    files = []
    for i, rows in enumerate(parts):
        path = folder / f"p{i}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(path)
    return files


def whole_run(recipe, files, out_dir) -> list[list[str]]:
    outputs = {str(f): out_dir / f"{f.stem}.parquet" for f in files}
    LocalExecutor(recipe, progress=False, bad_rows_path=out_dir / "bad.jsonl").run(files=files, outputs=outputs)
    return [pq.read_table(outputs[str(f)]).column("text").to_pylist() for f in files]


@pytest.mark.parametrize("tail", [True, False], ids=["filter_after", "dedup_last"])
@pytest.mark.parametrize("dedup", DEDUPLICATORS, ids=lambda d: next(iter(d)))
def test_partitions_keyed_one_at_a_time_equal_one_run(tmp_path, dedup, tail):
    """Also with the deduplicator last, where step 3 only drops the removed rows from the rows
    file: the partition outputs equal a whole run's, column for column."""
    files = write_parts(tmp_path, near_duplicate_partitions())
    after = [{"test_len_filter": {"min_len": 5}}] if tail else []
    recipe = recipe_from_dict({"np": 1, "export_path": str(tmp_path / "out.parquet"),
                               "process": [{"test_upper_mapper": None}, dedup, *after]})
    expected = whole_run(recipe, files, tmp_path / "whole")

    cut = dedup_store.dedup_position(recipe)
    assert cut == 1
    fingerprint = dedup_store.keys_fingerprint(recipe, cut)
    op = recipe.build_ops()[cut]
    store = tmp_path / "keys"
    got = []
    for i, f in enumerate(files):  # partition i arrives after partitions 0..i-1 were stored
        head = dedup_store.partition_keys(recipe, cut, f, None, tmp_path / "rows" / f"{i}.parquet",
                                          tmp_path / "bad" / f"{i}.jsonl", print)
        stored = [dedup_store.read_keys(store / f"{j}.parquet", fingerprint, str(files[j])) for j in range(i)]
        decision = dedup_store.decide(op, [s.keys for s in stored] + [head.keys])
        for j, s in enumerate(stored):  # no later row joined earlier clusters here
            assert np.array_equal(s.removed, decision.removed[j])
        report = dedup_store.finish_partition(recipe, cut, head, decision.removed[i], tmp_path / "out" / f"{i}.parquet",
                                              tmp_path / "bad" / f"{i}.jsonl", print)
        dedup_store.write_keys(store / f"{i}.parquet", head.keys, fingerprint, str(f), decision.removed[i])
        got.append(pq.read_table(tmp_path / "out" / f"{i}.parquet").column("text").to_pylist())
        assert report.rows_in == 41 and report.bad_rows == 1 and report.rows_out == len(got[-1])
        assert [o["name"] for o in report.ops] == ["test_upper_mapper", next(iter(dedup))] + \
            (["test_len_filter"] if tail else [])
        if not tail:
            whole = pq.read_table(tmp_path / "whole" / f"{f.stem}.parquet")
            assert pq.read_table(tmp_path / "out" / f"{i}.parquet").equals(whole)
    assert got == expected
    assert sum(len(p) for p in got) < 3 * 40  # there were duplicates to remove
    assert decision.summary["removed_rows"] == 3 * 40 - sum(len(p) for p in got)
    assert decision.summary["clusters"] >= 1 and decision.summary["sample_pairs"]


def test_stored_keys_are_only_read_for_the_same_ops_and_input(tmp_path):
    files = write_parts(tmp_path, near_duplicate_partitions(n_parts=1))
    recipe = recipe_from_dict({"np": 1, "process": [MINHASH]})
    head = dedup_store.partition_keys(recipe, 0, files[0], None, tmp_path / "rows.parquet", tmp_path / "bad.jsonl",
                                      print, keep_rows=False)
    assert head.rows_file is None and not (tmp_path / "rows.parquet").exists()
    fp = dedup_store.keys_fingerprint(recipe, 0)
    path = tmp_path / "keys.parquet"
    dedup_store.write_keys(path, head.keys, fp, "input-v1", None)
    stored = dedup_store.read_keys(path, fp, "input-v1")
    assert stored.removed is None and stored.keys.equals(head.keys) and len(stored.keys) == 40
    assert dedup_store.read_keys(path, fp, "input-v2") is None
    other = recipe_from_dict({"np": 1, "process": [{"document_minhash_deduplicator": {"window_size": 4}}]})
    assert dedup_store.read_keys(path, dedup_store.keys_fingerprint(other, 0), "input-v1") is None
    assert dedup_store.read_keys(tmp_path / "missing.parquet", fp, "input-v1") is None
    path.write_bytes(b"not parquet")
    assert dedup_store.read_keys(path, fp, "input-v1") is None


def test_dedup_position_needs_one_storable_deduplicator():
    assert dedup_store.dedup_position(recipe_from_dict({"process": [{"test_upper_mapper": None}]})) is None
    assert dedup_store.dedup_position(recipe_from_dict({"process": [{"test_token_dedup": None}]})) is None
    two = recipe_from_dict({"process": [{"document_deduplicator": None}, MINHASH]})
    assert dedup_store.dedup_position(two) is None


def test_a_later_row_joining_two_clusters_removes_an_earlier_row(tmp_path):
    a = " ".join(f"a{i}" for i in range(100))
    b = " ".join(f"b{i}" for i in range(100))
    files = write_parts(tmp_path, [[{"text": a}, {"text": b}], [{"text": a + " " + b}]])
    recipe = recipe_from_dict({"np": 1, "process": [MINHASH]})
    op = recipe.build_ops()[0]
    keys = [dedup_store.partition_keys(recipe, 0, f, None, tmp_path / f"{f.stem}.parquet", tmp_path / "bad.jsonl",
                                       print).keys for f in files]
    assert dedup_store.decide(op, keys[:1]).removed[0].tolist() == [False, False]
    both = dedup_store.decide(op, keys)
    assert [m.tolist() for m in both.removed] == [[False, True], [True]]
    assert both.locate(2) == (1, 0) and both.locate(1) == (0, 1)


def test_light_keys_of_a_parquet_partition_equal_the_engines(tmp_path):
    """document_deduplicator first on a Parquet partition (a Dagster stage input): its md5 keys are
    computed from the text column alone and the partition file is the rows file; keys, decision
    and output equal those of the engine pass over the same rows."""
    parts = near_duplicate_partitions(n_parts=1)
    rows = [dict(r, meta={"n": i, "tags": ["a"] if i % 3 else None}) for i, r in enumerate(parts[0]) if "text" in r]
    parquet = tmp_path / "part.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    jsonl = write_parts(tmp_path, [rows])[0]
    recipe = recipe_from_dict({"np": 1, "process": [{"document_deduplicator": {"lowercase": True}}]})
    light = dedup_store.partition_keys(recipe, 0, parquet, None, tmp_path / "light_rows.parquet", tmp_path / "b.jsonl", print)
    engine = dedup_store.partition_keys(recipe, 0, jsonl, None, tmp_path / "rows.parquet", tmp_path / "b.jsonl", print)
    assert light.rows_file == parquet and light.rows_file_is_input and not (tmp_path / "light_rows.parquet").exists()
    assert not engine.rows_file_is_input
    assert light.keys.equals(engine.keys)
    op = recipe.build_ops()[0]
    removed = dedup_store.decide(op, [light.keys]).removed[0]
    assert removed.any() and np.array_equal(removed, dedup_store.decide(op, [engine.keys]).removed[0])
    outs = []
    for name, head in (("light", light), ("engine", engine)):
        report = dedup_store.finish_partition(recipe, 0, head, removed, tmp_path / f"{name}.parquet",
                                              tmp_path / "b.jsonl", print)
        assert (report.rows_in, report.rows_out) == (len(rows), len(rows) - int(removed.sum()))
        outs.append(pq.read_table(tmp_path / f"{name}.parquet"))
        head.discard_rows()
    assert outs[0].equals(outs[1])
    assert parquet.exists() and not (tmp_path / "rows.parquet").exists()  # the input is never discarded


@pytest.mark.parametrize("dedup", [MINHASH, {"document_simhash_deduplicator": {}}], ids=lambda d: next(iter(d)))
def test_a_deduplicator_first_on_parquet_partitions_keys_them_in_place(tmp_path, dedup):
    """The workers send back keys, not rows: the partition file is the rows file, or a copy
    without the rows set aside (a null text); outputs equal one run over every file."""
    parts = near_duplicate_partitions(n_parts=2)
    files = []
    for i, rows in enumerate(parts):
        rows = [{"text": r.get("text"), "i": n} for n, r in enumerate(rows)]  # the last text is null
        path = tmp_path / f"p{i}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        files.append(path)
    recipe = recipe_from_dict({"np": 2, "batch_size": 16, "export_path": str(tmp_path / "out.parquet"),
                               "process": [dedup]})
    expected = whole_run(recipe, files, tmp_path / "whole")
    op = recipe.build_ops()[0]
    heads = [dedup_store.partition_keys(recipe, 0, f, None, tmp_path / "rows" / f"{i}.parquet",
                                        tmp_path / "bad" / f"{i}.jsonl", print) for i, f in enumerate(files)]
    assert [h.rows_file_is_input for h in heads] == [False, False]  # each partition has one bad row
    assert all(pq.ParquetFile(h.rows_file).metadata.num_rows == len(h.keys) == 40 for h in heads)
    decision = dedup_store.decide(op, [h.keys for h in heads])
    got = []
    for i, head in enumerate(heads):
        out = tmp_path / "out" / f"{i}.parquet"
        report = dedup_store.finish_partition(recipe, 0, head, decision.removed[i], out, tmp_path / "bad" / f"{i}.jsonl",
                                              print)
        assert report.rows_in == 41 and report.bad_rows == 1
        got.append(pq.read_table(out).column("text").to_pylist())
    assert got == expected and sum(map(len, got)) < 80

    clean = tmp_path / "clean.parquet"
    pq.write_table(pq.read_table(files[0]).slice(0, 40), clean)
    head = dedup_store.partition_keys(recipe, 0, clean, None, tmp_path / "rows" / "clean.parquet",
                                      tmp_path / "bad" / "clean.jsonl", print)
    assert head.rows_file == clean and head.rows_file_is_input and len(head.keys) == 40
