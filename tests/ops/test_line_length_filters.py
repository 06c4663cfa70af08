"""maximum_line_length_filter and average_line_length_filter (they share the lines intermediate)."""

import sys

import pytest

from dj_ops.core.batch import Batch
from dj_ops.core.constants import InterVars
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case

# every line boundary str.splitlines() knows, a trailing one, and none at all
TEXTS = [
    "",
    "\n",
    "no newline",
    "a\nbb\r\nccc\rdddd\x0beeeee\x0cf\x1cg\x1dh\x1ei\x85j\u2028k\u2029l",
    "trailing\n",
    "\n\nlast line is long enough",
    "中文\n😊😸\n",
]


@pytest.mark.parametrize("op_name", ["maximum_line_length_filter", "average_line_length_filter"])
def test_dj_cases_and_defaults(op_name):
    for case in dj_cases_for(op_name):
        assert_dj_case(case)
    op = make_op(op_name)
    assert (op.min_len, op.max_len) == (10, sys.maxsize)
    assert op.intermediates == ("lines",)


def test_formulas_on_every_line_boundary(imdb_texts):
    texts = TEXTS + imdb_texts[:300]
    samples = [{"text": t} for t in texts]
    _, batch = run_op(make_op("maximum_line_length_filter"), samples)
    assert batch.stats["max_line_length"] == [max(map(len, t.splitlines()), default=0) for t in texts]
    _, batch = run_op(make_op("average_line_length_filter"), samples)
    assert batch.stats["avg_line_length"] == [len(t) / len(t.splitlines()) if t.splitlines() else 0.0 for t in texts]
    assert batch.stats["avg_line_length"][:3] == [0.0, 1.0, 10.0]


def test_lines_are_computed_once_per_batch_and_shared():
    batch = Batch({"text": ["one\ntwo", "three"], "content": ["x\ny\nz", ""]})
    make_op("maximum_line_length_filter").compute_stats(batch)
    key = f"{InterVars.lines}-text"
    assert batch.cache[key] == [["one", "two"], ["three"]]
    batch.cache[key] = [["1234567"], ["12", "34"]]  # what the second filter reads must be the cached value
    make_op("average_line_length_filter").compute_stats(batch)
    assert batch.stats["avg_line_length"] == [7 / 1, 5 / 2]
    # another text key has its own entry
    other = make_op("maximum_line_length_filter", text_key="content")
    batch.stats.clear()
    other.compute_stats(batch)
    assert batch.stats["max_line_length"] == [1, 0]
    assert batch.cache[f"{InterVars.lines}-content"] == [["x", "y", "z"], []]
