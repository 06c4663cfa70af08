"""Executor behaviour with small OPs defined here: order, np, dedup across chunks, bad input,
per-OP counts, tracing, sharding and formats."""

from __future__ import annotations

import contextlib
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import recipe_from_dict
from tests import testing_ops  # noqa: F401  (registers the test OPs)


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    data = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows).encode()
    if gz:
        path = path.with_suffix(path.suffix + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def make_recipe(tmp_path: Path, dataset: Path, process: list, **kw):
    data = {
        "project_name": "t",
        "dataset_path": str(dataset),
        "export_path": str(tmp_path / "out" / "result.jsonl"),
        "np": 1,
        "batch_size": 3,
        "process": process,
    }
    data.update(kw)
    return recipe_from_dict(data)


TEXTS = ["hello world", "a", "hello world", "  hello world  ", "another long text", "bb", "a",
         "short", "another long text", "zz top", "hello world", "x" * 30]
CHAIN = [
    {"test_len_filter": {"min_len": 2}},
    {"test_upper_mapper": None},
    {"test_exact_dedup": None},
    {"test_len_filter": {"max_len": 20}},
]


def expected_rows():
    out, seen = [], set()
    for t in TEXTS:
        if len(t) < 2:
            continue
        u = t.upper()
        key = u.strip()
        if key in seen:
            continue
        seen.add(key)
        if len(u) <= 20:
            out.append(u)
    return out


@pytest.mark.parametrize("np_", [1, 2])
def test_chain_matches_sequential_semantics(tmp_path, np_):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "meta": {"i": i}} for i, t in enumerate(TEXTS)])
    recipe = make_recipe(tmp_path, ds, CHAIN, np=np_)
    report = LocalExecutor(recipe, progress=False).run()
    rows = read_jsonl(report.outputs[0])
    assert [r["text"] for r in rows] == expected_rows()
    assert all("meta" in r for r in rows)
    # rows left after each OP, as a sequential application gives them
    assert [o["rows_out"] for o in report.ops] == [10, 10, 6, 5]
    assert report.ops[1]["changed"] == 10
    assert report.rows_out == 5 and report.bad_rows == 0
    stats = read_jsonl(report.stats_file)
    assert len(stats) == 5 and all("test_len" in s["__dj__stats__"] for s in stats)


def test_output_identical_for_np_1_and_2(tmp_path):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    rows = [{"text": " ".join(rng.choice(words, size=rng.integers(1, 6)))} for _ in range(500)]
    ds = write_jsonl(tmp_path / "in.jsonl", rows)
    outs = []
    for np_ in (1, 2):
        recipe = make_recipe(tmp_path / f"np{np_}", ds, CHAIN, np=np_, batch_size=7)
        report = LocalExecutor(recipe, progress=False).run()
        outs.append(Path(report.outputs[0]).read_bytes())
    assert outs[0] == outs[1] and outs[0]


def test_bad_input_is_set_aside_with_reason(tmp_path):
    lines = [
        json.dumps({"text": "good one"}),
        '{"text": "broken json',
        json.dumps({"text": None}),
        json.dumps({"other": 1}),
        json.dumps({"text": 42}),
        "[1, 2]",
        "",
        json.dumps({"text": "good two"}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n" + b'{"text": "bad \xff\xfe bytes"}\n' + json.dumps({"text": "good three"}).encode() + b"\n")
    recipe = make_recipe(tmp_path, path, [{"test_upper_mapper": None}])
    report = LocalExecutor(recipe, progress=False).run()
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == ["GOOD ONE", "GOOD TWO", "GOOD THREE"]
    bad = read_jsonl(report.bad_rows_file)
    assert report.bad_rows == 6
    reasons = {b["line"]: b["reason"] for b in bad}
    assert reasons[2].startswith("malformed JSON")
    assert reasons[3] == "text field 'text' is null"
    assert reasons[4] == "missing text field 'text'"
    assert "int" in reasons[5]
    assert "not a JSON object" in reasons[6]
    assert reasons[9].startswith("invalid UTF-8")
    assert all(b["file"] == str(path) for b in bad)


def test_op_raising_on_some_rows_sets_them_aside(tmp_path):
    texts = ["fine", "boom here", "also fine", "boom", "last"]
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    recipe = make_recipe(tmp_path, ds, [{"test_raising_mapper": None}, {"test_upper_mapper": None}])
    report = LocalExecutor(recipe, progress=False).run()
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == ["FINE", "ALSO FINE", "LAST"]
    bad = read_jsonl(report.bad_rows_file)
    assert [b["line"] for b in bad] == [2, 4]
    assert all("test_raising_mapper raised RuntimeError: cannot handle boom" in b["reason"] for b in bad)
    assert report.ops[0]["errors"] == 2


def test_op_error_is_fatal_without_skip_op_error(tmp_path):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": "boom"}])
    recipe = make_recipe(tmp_path, ds, [{"test_raising_mapper": None}], skip_op_error=False)
    with pytest.raises(RuntimeError, match="boom"):
        LocalExecutor(recipe, progress=False).run()
    assert not (tmp_path / "out" / "result.jsonl").exists()  # no partial output


def test_tracer_writes_first_records_per_op(tmp_path):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    recipe = make_recipe(tmp_path, ds, CHAIN, open_tracer=True, trace_num=2)
    report = LocalExecutor(recipe, progress=False).run()
    trace = Path(report.trace_dir)
    removed = read_jsonl(trace / "filter-test_len_filter-0.jsonl")
    assert [r["text"] for r in removed] == ["a", "a"]
    assert [r["text"] for r in read_jsonl(trace / "filter-test_len_filter-3.jsonl")] == ["X" * 30]
    assert removed[0]["__dj__stats__"]["test_len"] == 1
    mapped = read_jsonl(trace / "mapper-test_upper_mapper.jsonl")
    assert mapped[0] == {"original_text": "hello world", "processed_text": "HELLO WORLD"}
    dups = read_jsonl(trace / "duplicate-test_exact_dedup.jsonl")
    assert dups[0] == {"dup1": "HELLO WORLD", "dup2": "HELLO WORLD"}
    assert len(dups) == 2


def test_gz_input_parquet_output_and_sharding(tmp_path):
    rows = [{"text": f"row number {i} " + "x" * 50, "n": i} for i in range(40)]
    ds = write_jsonl(tmp_path / "in.jsonl", rows, gz=True)
    recipe = make_recipe(tmp_path, ds, [{"test_upper_mapper": None}],
                         export_path=str(tmp_path / "out" / "res.parquet"), export_shard_size=1000)
    report = LocalExecutor(recipe, progress=False).run()
    assert len(report.outputs) > 1
    names = [Path(p).name for p in report.outputs]
    n = len(names)
    width = len(str(n)) + 1
    assert names[0] == f"res-{0:0{width}d}-of-{n:0{width}d}.parquet"
    table = pa.concat_tables([pq.read_table(p) for p in report.outputs])
    assert table.column("n").to_pylist() == list(range(40))
    assert not list((tmp_path / "out").glob(".*tmp*"))
    assert {pq.ParquetFile(p).metadata.row_group(0).column(0).compression for p in report.outputs} == {"SNAPPY"}

    recipe = recipe.model_copy(update={"export_compression": "zstd", "export_shard_size": 0})
    (path,) = LocalExecutor(recipe, progress=False).run(export_path=tmp_path / "zstd" / "res.parquet").outputs
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_parquet_input_and_keep_stats(tmp_path):
    pq.write_table(pa.table({"text": ["aa", "bbbb", "c"], "k": [1, 2, 3]}), tmp_path / "in.parquet")
    recipe = make_recipe(tmp_path, tmp_path / "in.parquet", [{"test_len_filter": {"min_len": 2}}],
                         keep_stats_in_res_ds=True)
    report = LocalExecutor(recipe, progress=False).run()
    rows = read_jsonl(report.outputs[0])
    assert rows == [{"text": "aa", "k": 1, "__dj__stats__": {"test_len": 2}},
                    {"text": "bbbb", "k": 2, "__dj__stats__": {"test_len": 4}}]


def test_json_array_input(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps([{"text": "one"}, {"text": "two"}]))
    recipe = make_recipe(tmp_path, tmp_path / "in.json", [{"test_upper_mapper": None}])
    report = LocalExecutor(recipe, progress=False).run()
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == ["ONE", "TWO"]


def test_save_to_disk_folder_input(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["one", "two", "three"]}).save_to_disk(str(tmp_path / "hf"))
    recipe = make_recipe(tmp_path, tmp_path / "hf", [{"test_upper_mapper": None}])
    report = LocalExecutor(recipe, progress=False).run()
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == ["ONE", "TWO", "THREE"]


def test_relative_media_paths_resolved_against_dataset_folder(tmp_path):
    (tmp_path / "data").mkdir()
    ds = write_jsonl(tmp_path / "data" / "in.jsonl", [{"text": "t", "images": ["img/a.jpg", "/abs/b.jpg"]}])
    recipe = make_recipe(tmp_path, ds, [{"test_upper_mapper": None}])
    report = LocalExecutor(recipe, progress=False).run()
    row = read_jsonl(report.outputs[0])[0]
    assert row["images"] == [str((tmp_path / "data" / "img" / "a.jpg")), "/abs/b.jpg"]


def test_row_range_selects_records(tmp_path):
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(20)])
    recipe = make_recipe(tmp_path, ds, [{"test_upper_mapper": None}])
    report = LocalExecutor(recipe, progress=False).run(files=[ds], row_range=(5, 12))
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == [f"T{i}" for i in range(5, 12)]


@pytest.mark.parametrize("np_", [1, 2])
def test_near_duplicate_barrier_removes_whole_components(tmp_path, np_):
    # "b c" links "a b" (row 0) and "c d" (row 2) only through a later row: both later rows go
    texts = ["a b", "x y", "c d", "b c", "zz", "q", "y w", "tiny"]
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    chain = [{"test_len_filter": {"min_len": 2}}, {"test_token_dedup": None},
             {"test_upper_mapper": None}, {"test_len_filter": {"max_len": 3}}]
    recipe = make_recipe(tmp_path, ds, chain, np=np_, batch_size=2, open_tracer=True)
    report = LocalExecutor(recipe, progress=False).run()
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == ["A B", "X Y", "ZZ"]
    assert [o["rows_out"] for o in report.ops] == [7, 4, 4, 3]
    stats = read_jsonl(report.stats_file)
    assert [s["__dj__stats__"]["test_len"] for s in stats] == [3, 3, 2]
    pairs = read_jsonl(Path(report.trace_dir) / "duplicate-test_token_dedup.jsonl")
    assert pairs[0] == {"dup1": {"text": "a b", "__dj__stats__": {"test_len": 3}},
                        "dup2": {"text": "c d", "__dj__stats__": {"test_len": 3}}}
    assert not list(tmp_path.glob("out/.spill-*"))


def test_barrier_with_one_output_per_input_file(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{"text": "p q"}, {"text": "r s"}])
    b = write_jsonl(tmp_path / "b.jsonl", [{"text": "q t"}, {"text": "u v"}])
    recipe = make_recipe(tmp_path, a, [{"test_token_dedup": None}])
    outs = {str(a): tmp_path / "o" / "a.jsonl", str(b): tmp_path / "o" / "b.jsonl"}
    report = LocalExecutor(recipe, progress=False).run(files=[a, b], outputs=outs)
    assert [r["text"] for r in read_jsonl(outs[str(a)])] == ["p q", "r s"]
    assert [r["text"] for r in read_jsonl(outs[str(b)])] == ["u v"]
    assert report.rows_out == 3


@pytest.mark.parametrize("np_", [1, 2])
def test_chain_ending_at_near_duplicate_dedup_copies_the_spill(tmp_path, np_):
    """Deduplicator last, JSON lines out: the kept spilled lines are the output (no second pass);
    they equal what the full second pass writes (Parquet out, given as ``export_path`` of a
    JSON-lines recipe), row for row and in order."""
    texts = ["a b", "x y", "c d", "b c", "zz", "q", "y w", "tiny", "n m", "m o"] * 3
    # stats already in the input are not kept in the output (keep_stats_in_res_ds: false), either way
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "id": i, "meta": {"k": [i, None]},
                                              "__dj__stats__": {"text_len": len(t)}} for i, t in enumerate(texts)])
    chain = [{"test_upper_mapper": None}, {"test_token_dedup": None}]
    recipe = make_recipe(tmp_path, ds, chain, np=np_, batch_size=4, export_shard_size=64)
    copied = LocalExecutor(recipe, progress=False).run()
    assert len(copied.outputs) > 1  # shards still roll over
    rows = [r for p in copied.outputs for r in read_jsonl(p)]
    full = LocalExecutor(recipe, progress=False).run(export_path=tmp_path / "full" / "out.parquet")
    assert rows == [r for p in full.outputs for r in pq.read_table(p).to_pylist()]
    assert [r["text"] for r in rows] == ["A B", "X Y", "ZZ", "Q", "TINY", "N M"]
    assert all("__dj__stats__" not in r for r in rows)
    assert (copied.rows_in, copied.rows_out) == (30, 6) and copied.ops[-1]["rows_out"] == 6
    assert not list(tmp_path.glob("out/.spill-*"))


@pytest.mark.parametrize("shard_size", [0, 64])
def test_copy_spill_keeps_unremoved_lines_across_block_edges(tmp_path, shard_size):
    from dj_ops.engine.sinks import copy_kept_lines

    lines = [json.dumps({"text": "x" * n, "i": i}).encode() for i, n in enumerate([3, 120, 0, 40, 300, 7, 64, 1])]
    removed = np.array([False, True, False, False, True, False, True, False])
    spill = tmp_path / "spill.jsonl"
    spill.write_bytes(b"\n".join(lines))  # no newline after the last line
    report = copy_kept_lines("t", [spill], {str(spill): removed}, tmp_path / "out" / "o.jsonl", None, shard_size)
    got = [line for p in report.outputs for line in Path(p).read_bytes().splitlines()]
    assert got == [line for line, gone in zip(lines, removed) if not gone]
    assert (report.rows_in, report.rows_out) == (8, 5)
    assert (len(report.outputs) > 1) == bool(shard_size)


def test_near_duplicate_trace_has_each_pairs_similarity(tmp_path):
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    texts = [base, "something else entirely different here and now for sure", base + " again",
             base.replace("lazy", "sleepy"), base]
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    recipe = make_recipe(tmp_path, ds, [{"document_minhash_deduplicator": {"window_size": 2}}],
                         open_tracer=True, trace_num=2)
    report = LocalExecutor(recipe, progress=False).run()
    pairs = read_jsonl(Path(report.trace_dir) / "duplicate-document_minhash_deduplicator.jsonl")
    assert len(pairs) == 2 and all(p["dup1"]["text"] == base for p in pairs)
    assert [p["dup2"]["text"] for p in pairs] == [texts[2], texts[3]]
    assert all(0.7 <= p["similarity"] < 1.0 for p in pairs)
    summary = report.dedup["document_minhash_deduplicator"]
    assert [p["estimated_jaccard"] for p in summary["sample_pairs"][:2]] == [p["similarity"] for p in pairs]


def test_workers_can_start_from_a_fork_server(tmp_path):
    """Inside ``workers_from_fork_server`` (an orchestrator's step process holding much memory)
    workers fork from a server holding only the engine and the OP modules; an OP defined
    outside dj_ops registers in them when they import its module.  Same output, bad rows included.
    OP classes a fresh process cannot import by name (these tests' own) keep workers forked."""
    from dj_ops.engine import backend
    from tests.faults import fault_ops  # noqa: F401  (test_poisoned_mapper, defined at module level)

    rng = np.random.default_rng(1)
    rows = [{"text": " ".join(rng.choice(["ab", "cde", "f", "ghij"], size=rng.integers(1, 5)))} for _ in range(300)]
    ds = write_jsonl(tmp_path / "in.jsonl", rows)
    chain = [{"whitespace_normalization_mapper": None}, {"test_poisoned_mapper": None},
             {"text_length_filter": {"min_len": 4}}, {"document_deduplicator": None}]
    outs = []
    for server in (False, True):
        recipe = make_recipe(tmp_path / str(server), ds, chain, np=2, batch_size=16)
        executor = LocalExecutor(recipe, progress=False)
        with backend.workers_from_fork_server() if server else contextlib.nullcontext():
            assert backend.start_method(False, 2, executor.ops) == ("forkserver" if server else "fork")
            assert backend.start_method(False, 2, make_recipe(tmp_path, ds, CHAIN).build_ops()) == "fork"
            report = executor.run()
        outs.append((Path(report.outputs[0]).read_bytes(), Path(report.bad_rows_file).read_bytes()))
    assert outs[0] == outs[1] and outs[0][0] and b"poisoned row" in outs[0][1]


def test_workers_are_forked_only_where_openmp_allows(monkeypatch):
    """A forked worker running torch on several threads after the coordinator ran torch on several
    hangs (GNU OpenMP): then the pool spawns."""
    import sys

    from dj_ops.engine import backend

    class FakeTorch:
        threads = 2

        @classmethod
        def get_num_threads(cls):
            return cls.threads

    monkeypatch.setattr(backend.os, "cpu_count", lambda: 8)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert backend.fork_safe(2)  # torch never loaded here
    monkeypatch.setitem(sys.modules, "torch", FakeTorch)
    assert not backend.fork_safe(2)  # 4 threads per worker after a 2-thread probe
    assert backend.fork_safe(8)  # one thread per worker
    FakeTorch.threads = 1
    assert backend.fork_safe(2)  # the coordinator never ran a parallel region


def test_data_juicer_stats_compat_reproduces_its_float_round_trip(tmp_path):
    from dj_ops.engine.chain import ChainRunner

    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}])
    recipe = make_recipe(tmp_path, ds, [{"test_len_filter": None}], data_juicer_stats_compat=True)
    assert ChainRunner(recipe).stats_transform([451 / 550, 3, [0.3]]) == [0.8200000000000001, 3, [0.30000000000000004]]


@pytest.mark.parametrize("np_", [1, 2])
def test_rows_marked_bad_by_an_op_are_set_aside(tmp_path, np_):
    texts = ["ok 1", "corrupt a", "ok 2", "ok 3", "corrupt b", "ok 4"]
    ds = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts])
    recipe = make_recipe(tmp_path, ds, [{"test_picky_filter": None}, {"test_upper_mapper": None}], np=np_)
    report = LocalExecutor(recipe, progress=False).run()
    assert [r["text"] for r in read_jsonl(report.outputs[0])] == ["OK 1", "OK 2", "OK 3", "OK 4"]
    bad = read_jsonl(report.bad_rows_file)
    assert [(b["line"], b["reason"]) for b in bad] == [(2, "test_picky_filter: unreadable media"),
                                                       (5, "test_picky_filter: unreadable media")]
    assert report.ops[0]["errors"] == 2 and report.bad_rows == 2
