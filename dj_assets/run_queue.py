"""The instance's run queue, for runs that the calling process executes itself.

Dagster's run queue (``concurrency: runs:`` in ``$DAGSTER_HOME/dagster.yaml``: ``max_concurrent_runs``
and ``tag_concurrency_limits``, e.g. one run per ``dj/recipe`` at a time) holds the runs submitted
to the instance (the UI, sensors, schedules) until the daemon launches them.  A run that a process
executes in place skips it: ``dj-process`` (an arbitrary recipe file is no code location a daemon
could load), ``dagster job execute``, ``dg launch``.  Such runs queue themselves: at the start of
the run, before its first step, the :class:`RunQueue` resource waits, with a log line, while the
limits that apply to the run's tags are reached by runs in progress created before it.  Runs are
ordered by creation, so two runs starting together never both go and no run waits for a later
one; a run the daemon launched finds its limits free and goes at once.

A run executed in place has no run monitoring: when its process dies, it stays "in progress".
Each run therefore records the process executing it (tag ``dj/process``), and a waiting run marks
an earlier run on the same host whose process is gone as failed instead of waiting for it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import psutil

PROCESS_TAG = "dj/process"
#: statuses in which a run counts against the queue's limits (as the daemon counts them)
ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass
class Blocked:
    limit: str  # which limit is reached, as in dagster.yaml
    runs: list[dg.DagsterRun]  # the earlier runs in progress that hold it


def this_process() -> str:
    proc = psutil.Process()
    return f"{socket.gethostname()}:{proc.pid}:{proc.create_time():.2f}"


def process_gone(run: dg.DagsterRun) -> bool:
    """Whether the process that executes ``run`` (its ``dj/process`` tag) has ended, as far as
    this host can tell (a run of another host never counts as gone)."""
    host, _, rest = run.tags.get(PROCESS_TAG, "").partition(":")
    if host != socket.gethostname():
        return False
    pid, _, started = rest.partition(":")
    try:
        return f"{psutil.Process(int(pid)).create_time():.2f}" != started  # a pid reused since
    except psutil.NoSuchProcess:
        return True


def blocked_by(instance: dg.DagsterInstance, run: dg.DagsterRun, storage_id: int) -> Blocked | None:
    """The first run-queue limit that ``run`` (created as ``storage_id``) may not pass now."""
    config = instance.get_concurrency_config().run_queue_config
    if config is None:  # an instance without a run queue
        return None
    earlier = [r.dagster_run for r in instance.get_run_records(filters=dg.RunsFilter(statuses=ACTIVE))
               if r.storage_id < storage_id]
    if 0 <= config.max_concurrent_runs <= len(earlier):
        return Blocked(f"max_concurrent_runs: {config.max_concurrent_runs}", earlier)
    for limit in config.tag_concurrency_limits:
        key, value = limit["key"], limit.get("value")
        if key not in run.tags:
            continue
        if isinstance(value, dict) and value.get("applyLimitPerUniqueValue"):
            value = run.tags[key]
        elif value is not None and run.tags[key] != value:
            continue
        holders = [r for r in earlier if key in r.tags and (value is None or r.tags[key] == value)]
        if len(holders) >= limit["limit"]:
            return Blocked(f"{key}{'=' + value if value else ''}: {limit['limit']}", holders)
    return None


def wait_for_turn(instance: dg.DagsterInstance, record: dg.RunRecord, log, poll_seconds: float) -> float:
    """Waits while the run-queue limits of the run of ``record`` are reached; returns the seconds waited."""
    start, announced = time.monotonic(), None
    while (blocked := blocked_by(instance, record.dagster_run, record.storage_id)) is not None:
        gone = [r for r in blocked.runs if process_gone(r)]
        for run in gone:
            log.warning(f"run queue: run {run.run_id} is marked failed: its process ({run.tags[PROCESS_TAG]}) is gone")
            instance.report_run_failed(run, f"its process ({run.tags[PROCESS_TAG]}) ended while the run was in progress")
        if gone:
            continue
        holders = sorted(r.run_id for r in blocked.runs)
        if announced != (blocked.limit, holders):
            announced = (blocked.limit, holders)
            log.warning(f"run queue: waiting, the instance's limit {blocked.limit} is reached by runs in progress "
                        f"{holders} (concurrency.runs in {os.environ.get('DAGSTER_HOME', '$DAGSTER_HOME')}/dagster.yaml)")
        time.sleep(poll_seconds)
    waited = time.monotonic() - start
    if announced is not None:
        log.warning(f"run queue: starting after {waited:.1f} s")
    return waited


class RunQueue(dg.ConfigurableResource):
    """Holds a run at its start while the instance's run-queue limits for its tags are reached."""

    poll_seconds: float = 2.0

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator[RunQueue]:
        instance, run = context.instance, context.dagster_run
        record = instance.get_run_record_by_id(run.run_id) if instance is not None and run is not None else None
        # resources are also built outside a run, or after it (to load outputs): nothing to queue then
        if record is not None and record.dagster_run.status in ACTIVE:
            instance.add_run_tags(run.run_id, {PROCESS_TAG: this_process()})
            wait_for_turn(instance, record, context.log, self.poll_seconds)
        with super().yield_for_execution(context) as resource:
            yield resource
