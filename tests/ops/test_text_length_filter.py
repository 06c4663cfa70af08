import sys

import pytest

from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case


def test_dj_cases():
    for case in dj_cases_for("text_length_filter"):
        assert_dj_case(case)


def test_counts_code_points_and_defaults():
    op = make_op("text_length_filter")
    assert (op.min_len, op.max_len) == (10, sys.maxsize)
    texts = ["", "a" * 9, "a" * 10, "😊" * 10, "中文\n\n", "e\u0301" * 5]
    kept, batch = run_op(op, [{"text": t} for t in texts])
    assert batch.stats["text_len"] == [0, 9, 10, 10, 4, 10]
    assert [s["text"] for s in kept] == ["a" * 10, "😊" * 10, "e\u0301" * 5]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, [5, 6, 7]),
        ({"min_closed_interval": False}, [6, 7]),
        ({"max_closed_interval": False}, [5, 6]),
        ({"reversed_range": True}, [4, 5, 7, 8]),  # the boundaries stay, as upstream
    ],
)
def test_keep_rule_at_boundaries(flags, expected):
    op = make_op("text_length_filter", min_len=5, max_len=7, **flags)
    kept, _ = run_op(op, [{"text": "x" * n} for n in (4, 5, 6, 7, 8)])
    assert [len(s["text"]) for s in kept] == expected
