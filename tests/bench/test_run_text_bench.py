"""Pure parts of bench/run_text_bench.py: DJ log parsing, output comparison, RESULTS.md sections."""

import importlib.util
import sys
from pathlib import Path

BENCH_SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "run_text_bench.py"
_spec = importlib.util.spec_from_file_location("run_text_bench", BENCH_SCRIPT)
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # dataclasses look their module up there
_spec.loader.exec_module(bench)


def test_parse_dj_op_times():
    log = (
        "2026-11-22 03:55:40.1 | INFO | data_juicer.core.data.dj_dataset:311 - "
        "[1/2] OP [fix_unicode_mapper] Done in 2.214s. Left 2000 samples.\n"
        "noise\n"
        "x - [2/2] OP [document_deduplicator] Done in 0.5s. Left 1778 samples.\n"
    )
    assert bench.parse_dj_op_times(log) == [
        bench.OpTiming("fix_unicode_mapper", 2.214, 2000),
        bench.OpTiming("document_deduplicator", 0.5, 1778),
    ]


def row(text, file):
    return {"text": text, "meta": {"file": file}}


def test_compare_equal_multisets_in_other_order():
    dj = [row("a", 1), row("b", 2)]
    ours = [row("b", 2), row("a", 1)]
    result = bench.compare_outputs(dj, ours)
    assert result.texts_equal and result.rows_equal and not result.same_order


def test_compare_pairs_rows_by_other_fields():
    dj = [row("same", 1), row("cleaned text", 2), row("kept by dj", 3)]
    ours = [row("same", 1), row("cleaned <br />text", 2), row("kept by ours", 4)]
    result = bench.compare_outputs(dj, ours)
    assert not result.texts_equal
    assert result.paired
    assert result.text_differs_count == 1
    assert result.text_differs[0][0].startswith("@8:")
    assert result.dropped_by_ours == ["kept by dj"] and result.dropped_by_dj == ["kept by ours"]


def test_compare_unpaired_when_other_fields_do_not_identify_rows():
    result = bench.compare_outputs([{"text": "a"}, {"text": "b"}], [{"text": "a"}, {"text": "c"}])
    assert not result.paired
    assert result.dropped_by_ours == ["b"] and result.dropped_by_dj == ["c"]


def test_compare_counts_duplicates():
    result = bench.compare_outputs([row("a", 1), row("a", 1)], [row("a", 1)])
    assert not result.texts_equal and result.only_dj_count == 1


def test_update_results_replaces_only_the_same_section(tmp_path):
    path = tmp_path / "RESULTS.md"
    bench.update_results("## one\n\nfirst\n", "one", path)
    bench.update_results("## two\n\nsecond\n", "two", path)
    bench.update_results("## one\n\nfirst again\n", "one", path)
    text = path.read_text()
    assert text.startswith("# Benchmark results")
    assert "first again" in text and "first\n" not in text.replace("first again", "")
    assert text.index("## one") < text.index("## two")
    assert "second" in text
