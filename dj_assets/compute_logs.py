"""Dagster's local compute logs, captured without helper processes.

Dagster's ``LocalComputeLogManager`` points a step's stdout and stderr at files (what the UI shows)
and, to keep the console output, starts a ``tail -F`` and a Python watcher per stream for every
capture: four processes per run, started while the step's engine workers need the CPU and stopped
one after the other at the end (~20-30 ms of a run's wall time).  This manager writes the same
files, in the same place, with the same UI and config; a thread copies what lands in them to the
original streams.  Selected in the repository's dagster.yaml::

    compute_logs:
      module: dj_assets.compute_logs
      class: InProcessComputeLogManager
      config: {base_dir: {env: DJ_COMPUTE_LOGS_DIR}}   # optional; default $DAGSTER_HOME/storage
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator, Sequence
from contextlib import contextmanager

from dagster import Field, StringSource
from dagster._core.execution.compute_logs import _fileno, mirror_stream_to_file, redirect_to_file, \
    should_disable_io_stream_redirect
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._utils import ensure_file, touch_file

#: seconds between two looks at a captured file (the rest is copied when the capture ends)
POLL_SECONDS = 0.1
#: seconds the end of a capture waits for the console to take the rest
DRAIN_SECONDS = 10.0


class InProcessComputeLogManager(LocalComputeLogManager):
    """:class:`LocalComputeLogManager` whose console mirror is a thread, not processes."""

    def __init__(self, base_dir: str | None = None, polling_timeout: float | None = None, inst_data=None):
        if base_dir is None:  # Dagster's default place for compute logs
            base_dir = os.path.join(os.environ.get("DAGSTER_HOME", os.getcwd()), "storage")
        super().__init__(base_dir, polling_timeout, inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {**super().config_type(), "base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> InProcessComputeLogManager:
        return cls(inst_data=inst_data, **(config_value or {}))

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        outpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        errpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with _mirrored(sys.stdout, outpath), _mirrored(sys.stderr, errpath):
            yield CapturedLogContext(log_key)
        # as Dagster's: the artifact that tells readers the capture is complete
        touch_file(self.complete_artifact_path(log_key))


@contextmanager
def _mirrored(stream, path: str):
    """The process's ``stream`` (its file descriptor: child processes' output included) goes to
    ``path``; what is written there is copied to where the stream went before."""
    fd = _fileno(stream)
    if fd is None or should_disable_io_stream_redirect():
        with mirror_stream_to_file(stream, path):  # Dagster's way, which handles these cases
            yield
        return
    ensure_file(path)
    console = os.dup(fd)
    stop = threading.Event()
    copier = threading.Thread(target=_copy_appended, args=(path, os.path.getsize(path), console, stop),
                              name=f"compute-log-mirror-{fd}", daemon=True)
    copier.start()
    try:
        with redirect_to_file(stream, path):
            yield
    finally:
        stop.set()
        # the files have everything; a console nobody reads (a full pipe) must not hold the step
        copier.join(timeout=DRAIN_SECONDS)
        if not copier.is_alive():
            os.close(console)


def _copy_appended(path: str, start: int, console: int, stop: threading.Event) -> None:
    """Copies what is appended to ``path`` after ``start`` to the file descriptor ``console``
    until ``stop`` is set, then the rest."""
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        broken = False
        while True:
            stopping = stop.wait(POLL_SECONDS)
            while data := f.read(1 << 16):
                while data and not broken:
                    try:
                        data = data[os.write(console, data):]
                    except OSError:  # the console is gone (a closed pipe): the files still get everything
                        broken = True
            if stopping:
                return
