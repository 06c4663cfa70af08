"""specified_field_filter: keep a sample when every value of the (dotted, e.g. ``meta.suffix``)
field ``field_key`` is in ``target_value`` — a scalar counts as a one-value list — as Data-Juicer.
An empty ``field_key`` or ``target_value`` keeps everything; ``reversed_range`` keeps the others.
The field itself is the "stat", so no stats column is written.  A missing field reads as None
(Data-Juicer fails on it, dropping the sample when ``skip_op_error`` is on).
"""

from __future__ import annotations

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch, column_path
from dj_ops.core.registry import register


@register("specified_field_filter")
class SpecifiedFieldFilter(Filter):
    has_stats = False
    uses_text = False

    def __init__(self, field_key: str = "", target_value: list = [], **kwargs):  # noqa: B006 - Data-Juicer's default
        super().__init__(**kwargs)
        self.field_key = field_key
        self.target_value = list(target_value)

    def compute_stats(self, batch: Batch) -> None:
        """Nothing to compute: the decision reads the field directly."""

    def keep(self, batch: Batch) -> np.ndarray:
        if not (self.field_key and self.target_value):
            return np.ones(len(batch), dtype=bool)
        target = self.target_value
        mask = np.fromiter(
            (
                all(v in target for v in (value if isinstance(value, (list, tuple)) else [value]))
                for value in column_path(batch, self.field_key)
            ),
            dtype=bool,
            count=len(batch),
        )
        return ~mask if self.reversed_range else mask
