"""Checks of an OP against one Data-Juicer unit-test case from dj_cases.json."""

from __future__ import annotations

import pytest

from tests.helpers_ops import make_op, run_op


def assert_dj_case(case: dict) -> None:
    """Kept (or output) samples equal Data-Juicer's; per-sample stats too where the case has them.

    ``computed_stats`` are rounded to 6 decimals in the case file.
    """
    op = make_op(case["op"], **case["params"])
    kept, batch = run_op(op, case["input_samples"])
    assert kept == case["expected_kept_samples"], case["source"]
    for i, expected in enumerate(case.get("computed_stats", [])):
        for key, value in expected.items():
            assert batch.stats[key][i] == pytest.approx(value, abs=5e-7), (case["source"], i, key)
