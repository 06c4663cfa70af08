"""The Dagster run config option ``executor_type``: a stage step runs on Ray when its run config
asks for it, and writes the same partition file as with the recipe's executor."""

from __future__ import annotations

import dagster as dg
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from dj_assets.partitions import sync_partitions  # noqa: E402
from tests.dagster.conftest import demo_data, demo_recipe_dict, instance, make_defs  # noqa: E402,F401

pytestmark = pytest.mark.ray


class _Log:
    def info(self, msg):
        pass


def test_stage_run_config_selects_the_ray_executor(instance, demo_data, tmp_path):  # noqa: F811
    bundle, defs = make_defs(demo_recipe_dict(demo_data, tmp_path), tmp_path)
    sync_partitions(instance, bundle, _Log())
    written = tmp_path / "storage" / "demo" / "cleaned" / "forum.jsonl.parquet"
    tables = {}
    was_running = ray.is_initialized()
    for executor in ("local", "ray"):
        config = {"ops": {"demo__cleaned": {"config": {"executor_type": executor, "ray_address": "local"}}}}
        res = dg.materialize(list(defs.assets), selection=[bundle.key("cleaned")], instance=instance,
                             resources=dict(defs.resources), partition_key="forum.jsonl", run_config=config)
        assert res.success
        tables[executor] = pq.read_table(written)
        assert ray.is_initialized() == (was_running or executor == "ray")
    assert tables["ray"].equals(tables["local"]) and tables["ray"].num_rows == 60
    if not was_running:
        ray.shutdown()
