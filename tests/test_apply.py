"""apply_op: one OP on one batch, as the worker chain runs it."""

from __future__ import annotations

import numpy as np
import pytest

from dj_ops.core.batch import Batch
from dj_ops.engine import apply_op
from tests.helpers_ops import make_op
from tests.testing_ops import _register_test_ops

_register_test_ops()


def batch_of(*texts: str) -> Batch:
    return Batch.from_rows([{"text": t} for t in texts], row_ids=list(range(10, 10 + len(texts))))


def test_a_filter_scores_every_row_and_keeps_those_in_bounds():
    res = apply_op(make_op("test_len_filter", min_len=3), batch_of("ab", "abcd", "xyz"))
    assert res.batch.columns["text"] == ["abcd", "xyz"] and res.batch.row_ids.tolist() == [11, 12]
    assert res.scored.stats["test_len"] == [2, 4, 3] and res.mask.tolist() == [False, True, True]
    assert res.removed.columns["text"] == ["ab"] and res.removed.stats["test_len"] == [2]
    assert res.set_aside == [] and res.keys is None


def test_the_analyzer_scores_without_filtering():
    res = apply_op(make_op("test_len_filter", min_len=3), batch_of("ab", "abcd"), filter_rows=False)
    assert len(res.batch) == 2 and res.batch.stats["test_len"] == [2, 4] and res.removed is None


def test_rows_an_op_marks_bad_are_set_aside_with_the_reason():
    res = apply_op(make_op("test_picky_filter"), batch_of("fine", "corrupt one", "also fine"))
    assert res.batch.row_ids.tolist() == [10, 12]
    [row] = res.set_aside
    assert (row.row_id, row.reason) == (11, "test_picky_filter: unreadable media")
    assert '"corrupt one"' in row.preview


def test_an_op_raising_is_retried_row_by_row_and_only_the_failing_rows_go():
    op = make_op("test_raising_mapper")
    res = apply_op(op, batch_of("one", "boom here", "two"))
    assert res.batch.columns["text"] == ["one", "two"] and res.batch.row_ids.tolist() == [10, 12]
    assert [(r.row_id, r.reason) for r in res.set_aside] == [
        (11, "test_raising_mapper raised RuntimeError: cannot handle boom")]
    with pytest.raises(RuntimeError, match="cannot handle boom"):
        apply_op(op, batch_of("boom"), skip_errors=False)
    strict = make_op("test_raising_mapper", skip_op_error=False)
    with pytest.raises(RuntimeError):
        apply_op(strict, batch_of("boom"))


def test_a_mapper_counts_the_rows_it_changed():
    res = apply_op(make_op("test_upper_mapper"), batch_of("a", "B", "c"))
    assert res.batch.columns["text"] == ["A", "B", "C"] and res.changed == 2
    assert res.texts_before == ["a", "B", "c"]


def test_a_deduplicator_only_computes_keys():
    res = apply_op(make_op("test_exact_dedup"), batch_of(" a", "a ", "b"))
    assert len(res.batch) == 3 and res.keys == ["a", "a", "b"]


def test_stats_transform_applies_before_the_decision():
    op = make_op("test_len_filter", max_len=2)
    res = apply_op(op, batch_of("abc", "ab"), stats_transform=lambda values: [v - 1 for v in values])
    assert res.scored.stats["test_len"] == [2, 1] and np.all(res.mask)
