"""Global deduplication across Dagster partitions (issue 5): partitions materialized one at a time.

A recipe with one global stage (``document_minhash_deduplicator``, Data-Juicer's defaults, or
``document_deduplicator``) over a file of bench/dedup_scale.py's edited IMDB copies, split into
partitions of ``--partition-rows`` rows.  The partitions are materialized one at a time in
partition order, in-process (Dagster's ``materialize``): each step keys only its own partition and
reads the stored keys of the earlier ones.  Per step: wall time and peak RSS / PSS of the process tree.
The partitions the last step reports stale (a later row joined near-duplicate clusters of theirs)
are then materialized again.  One LocalExecutor run over the whole file gives the reference: the
concatenated partition outputs must equal it row for row.  Run it under the shared lock:

    flock /tmp/bench.lock .venv/bin/python bench/dedup_partitions.py --docs 500000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import psutil
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dedup_scale import SCALE_DIR, generate, prefix  # noqa: E402
from run_text_bench import DEFAULT_DATA, TreeMemoryPeak, sample_tree_memory  # noqa: E402

OPS = {"minhash": {"document_minhash_deduplicator": None}, "exact": {"document_deduplicator": None}}


class _Log:
    def info(self, msg):
        pass

    warning = info


def measured(fn):
    peak = TreeMemoryPeak()
    stop = threading.Event()
    me = psutil.Process()

    def sampler():
        while not stop.is_set():
            sample_tree_memory(me, peak)
            stop.wait(0.2)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        value = fn()
    finally:
        stop.set()
        thread.join()
    return value, time.perf_counter() - t0, peak


def main(argv: list[str] | None = None) -> int:
    import dagster as dg

    from dj_assets.bundle import bundle_from_recipe
    from dj_assets.partitions import sync_partitions
    from dj_assets.recipe_defs import definitions_for
    from dj_assets.resources import location_resources
    from dj_ops.engine import LocalExecutor
    from dj_ops.core.recipe import recipe_from_dict

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500_000)
    parser.add_argument("--partition-rows", type=int, default=100_000)
    parser.add_argument("--op", choices=list(OPS), default="minhash")
    parser.add_argument("--np", type=int, default=2, dest="np_")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    SCALE_DIR.mkdir(parents=True, exist_ok=True)
    full = SCALE_DIR / "docs_1000k.jsonl"
    generate(DEFAULT_DATA, 1_000_000, full)
    data_dir = SCALE_DIR / f"partitions_{args.docs // 1000}k"
    data_dir.mkdir(exist_ok=True)
    data = data_dir / "docs.jsonl"
    if not data.exists():
        shutil.copyfile(prefix(full, args.docs), data)
    work = Path(tempfile.mkdtemp(prefix="dedup-partitions-", dir=SCALE_DIR))
    try:
        recipe_dict = {"dataset_path": str(data_dir), "export_path": str(work / "out" / "r.jsonl"),
                       "np": args.np_, "partition_rows": args.partition_rows, "process": [OPS[args.op]]}
        bundle = bundle_from_recipe(recipe_from_dict(recipe_dict), "r", work)
        defs = definitions_for([bundle], location_resources(str(work / "storage"), gpu_lock_dir=str(work / "gpu")))
        stage = bundle.stages[0].name
        (work / "dagster").mkdir()
        with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
            keys = sync_partitions(instance, bundle, _Log())

            def step(key: str, label: str) -> list[str]:
                res, wall, peak = measured(lambda: dg.materialize(
                    list(defs.assets), selection=[bundle.key(stage)], instance=instance,
                    resources=dict(defs.resources), partition_key=key, raise_on_error=True,
                    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}))
                meta = res.asset_materializations_for_node(f"r__{stage}")[0].metadata
                print(json.dumps({label: key, "wall_s": round(wall, 1), "peak_rss_mib": round(peak.rss / 2**20),
                                  "peak_pss_mib": round(peak.pss / 2**20),
                                  "rows_in": meta["rows_in"].value, "rows_out": meta["rows_out"].value,
                                  "keys_read": len(meta["dedup_keys_read"].value),
                                  "keys_computed": len(meta["dedup_keys_computed"].value),
                                  "stale": len(meta["stale_partitions"].value),
                                  "removed_total": meta["dedup_removed_rows"].value}), flush=True)
                return meta["stale_partitions"].value

            for key in keys:
                stale = step(key, "partition")
            # a later row joined clusters of earlier partitions: those are materialized again,
            # each decided with every other partition's stored keys
            for key in stale:
                step(key, "again")
        folder = work / "storage" / "r" / stage
        partitioned = [t for k in keys for t in pq.read_table(folder / f"{k}.parquet").column("text").to_pylist()]
        local = recipe_from_dict({**recipe_dict, "export_path": str(work / "local" / "out.parquet")})
        _, wall, peak = measured(lambda: LocalExecutor(local, progress=False).run())
        whole = pq.read_table(work / "local" / "out.parquet").column("text").to_pylist()
        print(json.dumps({"whole_run_s": round(wall, 1), "whole_peak_rss_mib": round(peak.rss / 2**20),
                          "whole_peak_pss_mib": round(peak.pss / 2**20),
                          "rows_out": len(whole), "partitioned_rows_out": len(partitioned),
                          "equal": partitioned == whole}), flush=True)
        return 0 if partitioned == whole else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
