"""Inbox sensor and schedule, evaluated with Dagster's test contexts."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import dagster as dg
import pytest

from dj_assets import automation

from .conftest import demo_recipe_dict, make_defs, read_jsonl, write_jsonl


@pytest.fixture
def settled(monkeypatch):
    monkeypatch.setattr(automation, "SETTLE_SECONDS", 0.0)


def tick(defs, instance, name, cursor=None) -> dg.SensorResult:
    # called directly: evaluate_tick would validate the requested partitions before the add
    # requests of the same tick apply (as the daemon applies them)
    sensor = defs.resolve_sensor_def(name)
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))


def apply_adds(instance, result: dg.SensorResult) -> None:
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def test_inbox_sensor_one_run_per_file_none_missed(instance, tmp_path, settled):
    inbox = tmp_path / "inbox"
    data = {"dataset_path": "", "export_path": str(tmp_path / "out" / "r.jsonl"), "inbox_path": str(inbox),
            "np": 1, "process": [{"test_upper_mapper": None}, {"test_exact_dedup": None}]}
    bundle, defs = make_defs(data, tmp_path, name="r")
    assert defs.resolve_sensor_def("r_inbox_sensor").default_status == dg.DefaultSensorStatus.RUNNING

    first = tick(defs, instance, "r_inbox_sensor")
    assert first.skip_reason is not None and "no input files" in first.skip_reason.skip_message

    # three files land between two ticks (two within the same clock tick, like a batch copy)
    for name in ("b.jsonl", "a.jsonl", "c.jsonl"):
        write_jsonl(inbox / name, [{"text": f"{name} row {i}"} for i in range(3)] + [{"text": "shared row"}])
    (inbox / ".d.jsonl.part").write_text('{"text": "half written"}\n')  # a copy in progress
    result = tick(defs, instance, "r_inbox_sensor")
    keys = [r.partition_key for r in result.run_requests]
    assert sorted(keys) == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert len({r.run_key for r in result.run_requests}) == 3
    assert all(r.tags["dj/trigger"] == "inbox" for r in result.run_requests)
    assert defs.resolve_sensor_def("r_inbox_sensor").job_name == "r_job"  # runs tagged dj/recipe by the job
    assert list(result.dynamic_partitions_requests[0].partition_keys) == keys
    apply_adds(instance, result)

    # the next tick with the new cursor finds nothing new, even for files sharing the cursor's time
    again = tick(defs, instance, "r_inbox_sensor", cursor=result.cursor)
    assert not again.run_requests and "no new files" in again.skip_reason.skip_message

    time.sleep(0.05)
    write_jsonl(inbox / "e.jsonl", [{"text": "late row"}, {"text": "shared row"}])
    later = tick(defs, instance, "r_inbox_sensor", cursor=again.cursor)
    assert [r.partition_key for r in later.run_requests] == ["e.jsonl"]
    assert json.loads(later.cursor)["ctime_ns"] >= json.loads(result.cursor)["ctime_ns"]
    apply_adds(instance, later)

    # each request runs just its partition; the dedup of the later file sees the earlier ones
    job = defs.resolve_job_def("r_job")
    for req in [*result.run_requests, *later.run_requests]:
        run = job.execute_in_process(instance=instance, partition_key=req.partition_key, tags=req.tags)
        assert run.success and run.dagster_run.tags["dj/recipe"] == "r"
    out = [r["text"] for r in read_jsonl(tmp_path / "out" / "r.jsonl")]
    assert out.count("SHARED ROW") == 1 and len(out) == 3 * 3 + 1 + 1


def test_inbox_sensor_waits_for_files_being_written(instance, tmp_path, monkeypatch):
    monkeypatch.setattr(automation, "SETTLE_SECONDS", 3600.0)
    inbox = tmp_path / "inbox"
    bundle, defs = make_defs({"inbox_path": str(inbox), "process": [{"test_upper_mapper": None}]}, tmp_path, name="r")
    write_jsonl(inbox / "a.jsonl", [{"text": "x"}])
    result = tick(defs, instance, "r_inbox_sensor")
    assert not result.run_requests and "still being written" in result.skip_reason.skip_message
    assert result.cursor is None or json.loads(result.cursor)["ctime_ns"] == 0

    monkeypatch.setattr(automation, "SETTLE_SECONDS", 0.0)
    assert [r.partition_key for r in tick(defs, instance, "r_inbox_sensor", result.cursor).run_requests] == ["a.jsonl"]


def test_inbox_sensor_large_file_is_one_run_over_its_ranges(instance, tmp_path, settled):
    inbox = tmp_path / "inbox"
    bundle, defs = make_defs({"inbox_path": str(inbox), "partition_rows": 4, "np": 1,
                              "export_path": str(tmp_path / "out" / "r.jsonl"),
                              "process": [{"test_upper_mapper": None}]}, tmp_path, name="r")
    write_jsonl(inbox / "big.jsonl", [{"text": f"row {i}"} for i in range(10)])
    result = tick(defs, instance, "r_inbox_sensor")
    (req,) = result.run_requests
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["big.jsonl@0-4", "big.jsonl@4-8", "big.jsonl@8-10"]
    assert (req.tags["dagster/asset_partition_range_start"], req.tags["dagster/asset_partition_range_end"]) == (
        "big.jsonl@0-4", "big.jsonl@8-10")
    apply_adds(instance, result)
    assert defs.resolve_job_def("r_job").execute_in_process(instance=instance, tags=req.tags).success
    assert [r["text"] for r in read_jsonl(tmp_path / "out" / "r.jsonl")] == [f"ROW {i}" for i in range(10)]


def test_schedule_syncs_partitions_and_runs_all_of_them(instance, demo_data, tmp_path):
    bundle, defs = make_defs(demo_recipe_dict(demo_data, tmp_path), tmp_path)
    schedule = defs.resolve_schedule_def("demo_schedule")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "demo_job"
    instance.add_dynamic_partitions("demo_shards", ["gone.jsonl"])  # its file was deleted since
    ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 1, 2, 3, 0))
    (req,) = schedule.evaluate_tick(ctx).run_requests
    keys = instance.get_dynamic_partitions("demo_shards")
    assert keys[0] == "articles.jsonl" and len(keys) == 5 and "gone.jsonl" not in keys
    assert req.tags["dj/trigger"] == "schedule"
    assert (req.tags["dagster/asset_partition_range_start"], req.tags["dagster/asset_partition_range_end"]) == (
        keys[0], keys[-1])
    assert req.run_key == "20260102-0300"
    # the request runs every partition in one run
    run = defs.resolve_job_def("demo_job").execute_in_process(instance=instance, tags=req.tags)
    assert run.success and run.dagster_run.tags["dj/recipe"] == "demo"
    assert len(read_jsonl(tmp_path / "out" / "demo.jsonl")) == 275

    # a recipe fed by its inbox only, before any file landed: the tick skips
    _, inbox_only = make_defs({"inbox_path": str(tmp_path / "inbox_only"), "schedule": "0 3 * * *",
                               "process": [{"test_upper_mapper": None}]}, tmp_path, name="r")
    assert "no input files" in inbox_only.resolve_schedule_def("r_schedule").evaluate_tick(ctx).skip_message


def test_recipe_without_schedule_or_inbox(tmp_path):
    bundle, defs = make_defs({"process": [{"test_upper_mapper": None}]}, tmp_path, name="plain")
    assert [s.name for s in defs.schedules] == []
    sensor = defs.resolve_sensor_def("plain_inbox_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert bundle.inbox == (tmp_path / "inbox" / "plain").resolve()
    assert os.fspath(bundle.inbox).endswith("inbox/plain")
