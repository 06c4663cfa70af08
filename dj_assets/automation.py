"""Schedules and inbox sensors of recipes.

- ``<name>_schedule`` (recipe key ``schedule: "<cron>"``): syncs the partitions with the input
  files, then requests one run of the recipe's job over every partition (first..last).
- ``<name>_inbox_sensor``: each new file in the recipe's inbox folder becomes partitions (one, or
  one per row range of a large file) and one run of just those partitions.  The cursor is the
  change time of the newest file handled; files are taken oldest first and files with the same
  change time as the cursor are looked at again, so several files landing between two ticks, or
  within one clock tick, are all handled; a file whose partition already exists is never run
  twice (and ``run_key`` guards that too).  Files still being written (changed in the last few
  seconds, or named like temporary files) wait for a later tick.  Inbox files stay part of the
  dataset: leave them there (a full run drops the partitions of files that are gone).
"""

from __future__ import annotations

import json
import os
import time

import dagster as dg

from dj_ops.io.readers import DatasetFormatError

from .bundle import TRIGGER_TAG, RecipeBundle
from .partitions import range_tags, sync_partitions
from .shards import dataset_files, inbox_files, shards_of_file

#: a file must be unchanged this long before the sensor takes it (its producer is done)
SETTLE_SECONDS = float(os.environ.get("DJ_INBOX_SETTLE_SECONDS", "2"))


def recipe_schedule(bundle: RecipeBundle, job) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"{bundle.name}_schedule", cron_schedule=bundle.recipe.schedule, job=job,
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"Re-runs recipe `{bundle.name}` on every partition at `{bundle.recipe.schedule}` (UTC).")
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        keys = sync_partitions(context.instance, bundle, context.log)
        if not keys:
            return dg.SkipReason(f"no input files under {bundle.recipe.dataset_path!r} or {str(bundle.inbox)!r}")
        return dg.RunRequest(run_key=f"{context.scheduled_execution_time:%Y%m%d-%H%M}",
                             tags={**range_tags(keys), TRIGGER_TAG: "schedule"})

    return _schedule


def inbox_sensor(bundle: RecipeBundle, job) -> dg.SensorDefinition:
    status = dg.DefaultSensorStatus.RUNNING if bundle.inbox_explicit else dg.DefaultSensorStatus.STOPPED

    @dg.sensor(name=f"{bundle.name}_inbox_sensor", job=job,
               minimum_interval_seconds=30, default_status=status,
               description=f"One run per new file in `{bundle.inbox}`: adds its partition(s), runs just those.")
    def _sensor(context: dg.SensorEvaluationContext):
        return evaluate_inbox(context, bundle)

    return _sensor


def evaluate_inbox(context: dg.SensorEvaluationContext, bundle: RecipeBundle) -> dg.SensorResult:
    cursor = json.loads(context.cursor)["ctime_ns"] if context.cursor else 0
    files = inbox_files(bundle.inbox)
    if not files:
        return dg.SensorResult(skip_reason=f"no input files in {bundle.inbox}", cursor=context.cursor)
    settled_before = time.time_ns() - int(SETTLE_SECONDS * 1e9)
    registered = set(context.instance.get_dynamic_partitions(bundle.partitions.name))
    try:
        dataset_keys = {k for k, _ in dataset_files(bundle.recipe)}
    except DatasetFormatError:  # the recipe's own dataset may be absent: it only feeds from the inbox
        dataset_keys = set()
    newest, adds, requests, waiting = cursor, [], [], 0
    for key, path, ctime in files:
        if ctime < cursor:
            continue
        if ctime > settled_before:
            waiting += 1
            break  # oldest first: every later file is fresher still
        newest = max(newest, ctime)
        if key in dataset_keys:
            context.log.warning(f"inbox file {path} has the partition key of a dataset file ({key}); rename it")
            continue
        shards = shards_of_file(key, path, bundle.recipe.partition_rows)
        if any(s.key in registered for s in shards):
            continue
        keys = [s.key for s in shards]
        adds.extend(keys)
        tags = {TRIGGER_TAG: "inbox", "dj/inbox_file": str(path)}
        if len(keys) == 1:
            requests.append(dg.RunRequest(run_key=f"inbox:{keys[0]}", partition_key=keys[0], tags=tags))
        else:
            requests.append(dg.RunRequest(run_key=f"inbox:{key}", tags={**tags, **range_tags(keys)}))
    new_cursor = json.dumps({"ctime_ns": newest})
    if not requests:
        why = f"{waiting} file(s) still being written" if waiting else "no new files"
        return dg.SensorResult(skip_reason=f"{why} in {bundle.inbox}", cursor=new_cursor)
    return dg.SensorResult(run_requests=requests, cursor=new_cursor,
                           dynamic_partitions_requests=[bundle.partitions.build_add_request(adds)])
