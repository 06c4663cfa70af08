"""Dagster's own cost for the shape of a two-stage recipe run, with no work in it: two
partitioned assets and the export in one asset run, 3 asset checks each, a little metadata,
in-process against the persistent SQLite instance of $DAGSTER_HOME (the floor under
bench/dagster_overhead.py's Dagster figure).

Usage (the repository's instance configuration; without a dagster.yaml, Dagster's defaults):
    H=$(mktemp -d); cp .dagster_home/dagster.yaml $H/; DAGSTER_HOME=$H .venv/bin/python bench/dagster_bare_run.py
"""

import time

import dagster as dg

parts = dg.DynamicPartitionsDefinition(name="p")
def checks(key):
    return [dg.AssetCheckSpec(n, asset=key) for n in ("non_empty", "schema", "keep_ratio")]

@dg.asset(partitions_def=parts, check_specs=checks(dg.AssetKey("s1")), key="s1")
def s1(context):
    yield dg.Output(1, metadata={"rows": 1})
    for n in ("non_empty", "schema", "keep_ratio"):
        yield dg.AssetCheckResult(check_name=n, passed=True)

@dg.asset(partitions_def=parts, check_specs=checks(dg.AssetKey("s2")), key="s2", deps=["s1"])
def s2(context):
    yield dg.Output(1, metadata={"rows": 1})
    for n in ("non_empty", "schema", "keep_ratio"):
        yield dg.AssetCheckResult(check_name=n, passed=True)

@dg.asset(check_specs=checks(dg.AssetKey("export")), key="export", deps=["s2"])
def export(context):
    yield dg.Output(1, metadata={"rows": 1})
    for n in ("non_empty", "schema", "keep_ratio"):
        yield dg.AssetCheckResult(check_name=n, passed=True)

defs = dg.Definitions(assets=[s1, s2, export])
with dg.DagsterInstance.get() as instance:
    instance.add_dynamic_partitions("p", ["a"])
    job = defs.resolve_implicit_global_asset_job_def()
    for i in range(4):
        t = time.perf_counter()
        r = job.execute_in_process(instance=instance, tags={"dagster/partition": "a"},
                                   run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        print("bare asset run", round(time.perf_counter() - t, 3), r.success)
