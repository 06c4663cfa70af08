"""Surviving crashes: a clear error when a worker dies, workers that die with their coordinator,
and removal of the temporary output files a killed run left behind."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path


class WorkerCrashed(RuntimeError):
    """A worker process died (killed, out of memory, segfault) while it held chunks of the input."""


def worker_crashed(where: str, checkpoint_dir: str | None) -> WorkerCrashed:
    resume = (f"finished chunks are recorded in {checkpoint_dir}: re-run the same command to resume"
              if checkpoint_dir else "set use_checkpoint: true in the recipe so that a re-run resumes "
              "instead of starting over")
    return WorkerCrashed(f"a worker process died (killed or out of memory) while processing {where}; "
                         f"nothing was written; {resume}")


def die_with_parent() -> None:
    """Ask Linux to kill this (worker) process when its parent dies, so that a ``kill -9`` of the
    coordinator never leaves orphan workers holding memory and models."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


_TMP_OF = re.compile(r"^\.(?P<name>.+)\.part\d+\.tmp-(?P<pid>\d+)w*$")


def remove_stale_temporaries(output: Path) -> list[Path]:
    """Delete temporary shards of ``output`` (see ``io.writers``) left by runs whose process is gone."""
    removed = []
    folder = output.parent
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP_OF.match(p.name)
        if m is None or m["name"] != output.name or _alive(int(m["pid"])):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
