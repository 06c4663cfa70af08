"""The sandbox as Dagster assets: one partition per trial, lineage, metadata, sensors."""

from __future__ import annotations


import dagster as dg
import pytest

from tests.dagster_fixtures import instance, quiet_previews  # noqa: F401  (fixtures)

from sandbox_jobs.context import list_trials
from sandbox_jobs.definitions import bundle_for, load_definitions, sandbox_definitions
from sandbox_jobs.loader import sandbox_from_dict

from .conftest import needs_torch, tiny_sandbox

pytestmark = needs_torch

NAME = "tiny"


def make(tmp_path, **over):
    bundle = bundle_for(sandbox_from_dict(tiny_sandbox(tmp_path, **over), tmp_path), NAME)
    return bundle, sandbox_definitions(bundle)


def key(asset: str) -> dg.AssetKey:
    return dg.AssetKey([NAME, asset])


def test_asset_graph_is_the_trial_lineage(tmp_path):
    _, defs = make(tmp_path)
    graph = defs.resolve_asset_graph()
    chain = ["prepared_data", "probe_report", "refined_recipe", "processed_dataset", "trained_model",
             "evaluation_report", "best_recipe"]
    for up, down in zip(chain, chain[1:]):
        assert key(up) in graph.get(key(down)).parent_keys
    assert graph.get(key("probe_report")).partitions_def.name == "tiny_trials"
    names = {j.name for j in defs.resolve_all_job_defs()}
    assert {"tiny_trial_job", "tiny_probe_job", "tiny_evaluate_job", "tiny_best_recipe_job"} <= names
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["tiny_start_trials"].default_status == dg.DefaultSensorStatus.STOPPED
    assert sensors["tiny_probe_to_refine"].default_status == dg.DefaultSensorStatus.RUNNING


def test_trial_job_lineage_metadata_and_chain_sensors(tmp_path, instance):
    bundle, defs = make(tmp_path)
    # a whole trial as one job (execute_in_process checks the key exists; `dagster job execute`
    # does not, and the first step then registers it: see test_cli.py)
    instance.add_dynamic_partitions("tiny_trials", ["t1"])
    result = defs.resolve_job_def("tiny_trial_job").execute_in_process(instance=instance, partition_key="t1")
    assert result.success
    mats = {m.asset_key: m for m in result.get_asset_materialization_events()}
    evaluation = mats[key("evaluation_report")].materialization
    md = evaluation.metadata
    assert evaluation.partition == "t1"
    assert md["eval_model.perplexity"].value > 1 and "data:image/png;base64," in md["trials_plot"].value
    assert "| trial |" in md["trials_table"].value
    refine_md = mats[key("refined_recipe")].materialization.metadata
    assert "text_length_filter" in refine_md["bound_changes"].value and "```yaml" in refine_md["refined_recipe"].value
    assert "analysis_ori_data_stats" in mats[key("probe_report")].materialization.metadata

    # sensors are called directly: evaluate_tick needs a partition-loading context for partitioned requests
    ctx = dg.build_sensor_context(instance=instance, definitions=defs)
    sensors = {s.name: s for s in defs.sensors}
    # the trial job covered every step: the chain sensors start nothing ...
    assert not sensors["tiny_probe_to_refine"](ctx).run_requests
    # ... except the study summary, which no trial run covers
    (best,) = sensors["tiny_evaluate_to_best_recipe"](ctx).run_requests
    assert best.partition_key is None

    # a single step run: its sensor requests the next step for the same partition, once
    probe = defs.resolve_job_def("tiny_probe_job").execute_in_process(instance=instance, partition_key="t1")
    assert probe.success
    ctx = dg.build_sensor_context(instance=instance, definitions=defs,
                                  cursor=str(_last_storage_id(instance, key("probe_report")) - 1))
    tick = sensors["tiny_probe_to_refine"](ctx)
    (req,) = tick.run_requests
    assert req.partition_key == "t1" and req.tags["sandbox/trial"] == "t1"
    ctx = dg.build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor)
    assert "no new" in sensors["tiny_probe_to_refine"](ctx).skip_message

    # the best recipe asset: every trial's scores and the best recipe
    best_run = defs.resolve_job_def("tiny_best_recipe_job").execute_in_process(instance=instance)
    best_md = best_run.get_asset_materialization_events()[0].materialization.metadata
    assert best_md["best_trial"].value == "t1" and "```yaml" in best_md["recipe"].value


def _last_storage_id(instance, asset_key) -> int:
    return instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset_key), limit=1).records[0].storage_id


def test_start_sensor_drives_an_hpo_study(tmp_path, instance):
    hpo = {"sweep_max_count": 2, "method": "random", "metric": {"name": "eval_data.distinct_2", "goal": "maximize"},
           "parameters": {"analysis_ori_data.extra_configs.k": {"min": 1.0, "max": 3.0}}}
    bundle, defs = make(tmp_path, hpo_config=hpo)
    start = next(s for s in defs.sensors if s.name == "tiny_start_trials")
    ctx = dg.build_sensor_context(instance=instance, definitions=defs)
    result = start(ctx)  # called directly: it adds the partition it requests
    (req,) = result.run_requests
    assert req.partition_key == "trial_0000"
    assert result.dynamic_partitions_requests[0].partition_keys == ["trial_0000"]
    (record,) = list_trials(bundle.sandbox)
    assert set(record.params) == {"analysis_ori_data.extra_configs.k"}
    assert "in progress" in start(ctx).skip_message  # one trial at a time
    instance.add_dynamic_partitions("tiny_trials", ["trial_0000"])
    run = defs.resolve_job_def("tiny_trial_job").execute_in_process(instance=instance, partition_key="trial_0000")
    md = {m.asset_key: m.materialization.metadata for m in run.get_asset_materialization_events()}
    assert md[key("evaluation_report")]["objective"].value == md[key("evaluation_report")]["eval_data.distinct_2"].value
    assert start(ctx).run_requests[0].partition_key == "trial_0001"  # the study told: next trial
    # every tick reopens the study: the proposals must still differ
    first, second = list_trials(bundle.sandbox)
    assert first.params != second.params


def test_repository_definitions_load_without_data():
    defs = load_definitions()
    names = {s.name for s in defs.sensors}
    assert {"imdb_sandbox_start_trials", "imdb_hpo_sandbox_start_trials"} <= names
    assert defs.resolve_job_def("imdb_sandbox_trial_job") is not None


def test_prepared_data_and_the_failure_sensor(tmp_path, instance):
    hpo = {"sweep_max_count": 1, "method": "random", "metric": {"name": "eval_data.rows", "goal": "maximize"},
           "parameters": {"text_length_filter.min_len": {"values": [100000]}}}  # no row survives: training fails
    bundle, defs = make(tmp_path, hpo_config=hpo)
    prepared = next(a for a in defs.assets if a.key == key("prepared_data"))
    result = dg.materialize([prepared], instance=instance)
    assert result.asset_materializations_for_node("tiny__prepared_data")[0].metadata["rows"].value == {
        "train": 60, "heldout": 20}
    record = bundle.runner(log=lambda m: None).next_trial()
    instance.add_dynamic_partitions("tiny_trials", [record.key])
    run = defs.resolve_job_def("tiny_trial_job").execute_in_process(instance=instance, partition_key=record.key,
                                                                   raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "PIPELINE_FAILURE")
    sensor = next(s for s in defs.sensors if s.name == "tiny_trial_failures")
    ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure, dagster_instance=instance,
                                             dagster_run=run.dagster_run).for_run_failure()
    sensor(ctx)
    study = bundle.runner(log=lambda m: None).study
    assert [t.state.name for t in study.get_trials()] == ["FAIL"]
    start = next(s for s in defs.sensors if s.name == "tiny_start_trials")
    assert "every trial has finished" in start(dg.build_sensor_context(instance=instance, definitions=defs)).skip_message


@pytest.mark.slow
def test_sensors_alone_drive_a_trial_from_start_to_best_recipe(tmp_path, instance):
    """What the daemon does under ``dagster dev``: tick every sensor, launch what it requests, repeat.
    Only the start sensor is switched on by hand; every later step is started by a chain sensor
    when its input materializes."""
    bundle, defs = make(tmp_path)
    sensors = [s for s in defs.sensors if isinstance(s, dg.SensorDefinition) and not isinstance(s, dg.RunStatusSensorDefinition)]
    cursors: dict[str, str | None] = {}
    seen_keys: set[str] = set()
    launched: list[tuple[str, str | None, str]] = []
    for _ in range(10):  # ticks
        requests = []
        for sensor in sensors:
            ctx = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursors.get(sensor.name))
            result = sensor(ctx)
            if isinstance(result, dg.SkipReason):
                continue
            cursors[sensor.name] = result.cursor or cursors.get(sensor.name)
            for add in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
            requests += [(sensor, r) for r in result.run_requests if r.run_key not in seen_keys]
        if not requests:
            break
        for sensor, req in requests:  # the run launcher
            seen_keys.add(req.run_key)
            run = defs.resolve_job_def(sensor.job_name).execute_in_process(
                instance=instance, partition_key=req.partition_key, tags=req.tags)
            assert run.success
            launched.append((sensor.name, req.partition_key, sensor.job_name))
    assert launched == [
        ("tiny_start_trials", "trial_0000", "tiny_probe_job"),
        ("tiny_probe_to_refine", "trial_0000", "tiny_refine_job"),
        ("tiny_refine_to_process", "trial_0000", "tiny_process_job"),
        ("tiny_process_to_train", "trial_0000", "tiny_train_job"),
        ("tiny_train_to_evaluate", "trial_0000", "tiny_evaluate_job"),
        ("tiny_evaluate_to_best_recipe", None, "tiny_best_recipe_job"),
    ]
    for asset in ("probe_report", "refined_recipe", "processed_dataset", "trained_model", "evaluation_report"):
        (rec,) = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key(asset)), limit=5).records
        assert rec.partition_key == "trial_0000"
    runs = instance.get_runs()
    assert all(r.tags.get("sandbox/trial") == "trial_0000" for r in runs if r.job_name != "tiny_best_recipe_job")
    (best,) = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key("best_recipe")), limit=5).records
    md = best.asset_materialization.metadata
    assert md["best_trial"].value == "trial_0000" and "eval_model.perplexity" in md["trials_table"].value
    start = next(s for s in sensors if s.name == "tiny_start_trials")
    assert "every trial has finished" in start(dg.build_sensor_context(instance=instance, definitions=defs)).skip_message
