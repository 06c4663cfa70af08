"""specified_numeric_field_filter: keep a sample when the (dotted) field ``field_key`` is a number,
or a string that parses as one, within [min_value, max_value] (Data-Juicer's keep rule with
closedness flags and ``reversed_range``), as Data-Juicer.  Non-numeric values, and — a Data-Juicer
quirk kept on purpose — every falsy value (0, 0.0, "", None), are dropped whatever the range.  An
empty ``field_key`` keeps everything.  The field itself is the "stat": no stats column is written.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch, column_path
from dj_ops.core.registry import register


@register("specified_numeric_field_filter")
class SpecifiedNumericFieldFilter(Filter):
    has_stats = False
    uses_text = False

    def __init__(self, field_key: str = "", min_value: float = -sys.maxsize, max_value: float = sys.maxsize, **kwargs):
        super().__init__(**kwargs)
        self.field_key = field_key
        self.min_value = min_value
        self.max_value = max_value

    def compute_stats(self, batch: Batch) -> None:
        """Nothing to compute: the decision reads the field directly."""

    def keep(self, batch: Batch) -> np.ndarray:
        if not self.field_key:
            return np.ones(len(batch), dtype=bool)
        parsed = [_parse_number(v) for v in column_path(batch, self.field_key)]
        is_number = np.array([p is not None for p in parsed], dtype=bool)
        numbers = np.array([math.nan if p is None else p for p in parsed], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            lower = numbers >= self.min_value if self.min_closed_interval else numbers > self.min_value
            upper = numbers <= self.max_value if self.max_closed_interval else numbers < self.max_value
        in_range = lower & upper
        if self.reversed_range:
            in_range = ~in_range  # as upstream: a NaN fails the range, so reversed it passes
        return is_number & in_range


def _parse_number(value: Any) -> float | None:
    """``float(value)`` when Data-Juicer's ``is_number`` accepts it (truthy and parseable), else None."""
    if not value:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None
