"""OPs for fault-injection tests: one raising on ~1% of rows, one slow enough to be killed mid-run."""

from __future__ import annotations

import os
import time
import zlib

from dj_ops.ops.base import TextMapper
from dj_ops.core.batch import Batch
from dj_ops.core.registry import OPERATORS, register


def is_poison(text: str, per_mille: int = 10) -> bool:
    """Deterministic ~1% of texts (by CRC32), so every run fails on the same rows."""
    return zlib.crc32(text.encode()) % 1000 < per_mille


if "test_poisoned_mapper" not in OPERATORS:

    @register("test_poisoned_mapper")
    class PoisonedMapper(TextMapper):
        """Appends a marker; raises on the rows chosen by :func:`is_poison`."""

        def process_text(self, text: str) -> str:
            if is_poison(text):
                raise ValueError("poisoned row")
            return text + " ."

    @register("test_slow_mapper")
    class SlowMapper(TextMapper):
        """Sleeps per batch and logs the first row id of every batch it processes."""

        def __init__(self, seconds: float = 0.05, log_path: str = "", **kwargs):
            super().__init__(**kwargs)
            self.seconds = seconds
            self.log_path = log_path

        def process_batched(self, batch: Batch) -> Batch:
            time.sleep(self.seconds)
            if self.log_path and len(batch):
                fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{int(batch.row_ids[0])}\n".encode())
                finally:
                    os.close(fd)
            return batch

        def process_text(self, text: str) -> str:
            return text


def setup_worker() -> None:
    """Ray ``worker_process_setup_hook``: importing this module registered the test OPs."""
