"""Orchestration overhead: one partition of N documents through Dagster vs the engine alone.

Same recipe (default: the 15-OP IMDB recipe, split by the Dagster layer into a per-row stage and a
deduplication stage), same input file (the first N IMDB reviews; one partition), same np.  Three
figures, each the median of ``--repeat`` runs, each run in a fresh process:

- ``engine``: ``LocalExecutor(recipe).run()`` (the local executor; what ``dj-process --executor
  local`` does), timed around the call, imports excluded;
- ``dagster``: the recipe's job over every partition against a persistent instance
  (``$DAGSTER_HOME``, the repository's dagster.yaml: Dagster's own SQLite storage), as
  ``dj-process`` runs it (``run_every_partition``: sync of the partitions, one run: both stages
  with Parquet partition files, metadata, stats histograms, asset checks, the export to jsonl +
  stats), timed around the call, imports excluded;
- ``cli``: whole commands, interpreter start and imports included: ``dj-process --executor local``
  vs ``dj-process`` (Dagster, default).

Usage:
    .venv/bin/python bench/dagster_overhead.py [--docs 10000] [--np 2] [--repeat 3]
Results are printed and written to bench/work/dagster_overhead.json (medians, and ratios of the
fastest runs, the least disturbed ones on a shared machine).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work" / "dagster_overhead"
IMDB = REPO.parent / "shared" / "data" / "text" / "imdb_reviews_100k.jsonl.gz"
DEMO = REPO / "recipes" / "demo" / "data"

ENGINE = """
import sys, time
from pathlib import Path
from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import load_recipe
recipe = load_recipe(sys.argv[1], {"dataset_path": sys.argv[2], "export_path": sys.argv[3], "np": int(sys.argv[4])})
t = time.perf_counter()
rep = LocalExecutor(recipe, progress=False).run()
print("SECONDS", time.perf_counter() - t, rep.rows_out)
"""

DAGSTER = """
import logging, sys, time
from pathlib import Path
import dagster as dg
from dj_assets.bundle import bundle_from_recipe
from dj_assets.process import run_every_partition
from dj_assets.recipe_defs import definitions_for
from dj_assets.resources import location_resources
from dj_assets.summary import run_summary
from dj_ops.core.recipe import load_recipe
recipe = load_recipe(sys.argv[1], {"dataset_path": sys.argv[2], "export_path": sys.argv[3], "np": int(sys.argv[4]),
                                   "partition_rows": 0})
bundle = bundle_from_recipe(recipe, "overhead", Path.cwd())
defs = definitions_for([bundle], location_resources(sys.argv[5]))
quiet = {"console": {"config": {"log_level": "WARNING"}}}
with dg.DagsterInstance.get() as instance:
    t = time.perf_counter()
    result = run_every_partition(instance, bundle, defs, logging.getLogger(), run_config={"loggers": quiet})
    seconds = time.perf_counter() - t
    summary = run_summary(bundle, result)
assert result.success
print("SECONDS", seconds, summary["export"]["rows"])
"""

# `dj-process`: what its console script runs (the script an older install left may name another module)
DJ_PROCESS = "import sys; from dj_assets.cli import process_main; sys.exit(process_main())"

CPU: list[float] = []


def make_input(n: int, folder: Path) -> Path:
    path = folder / f"docs_{n}.jsonl"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    if IMDB.exists():
        with gzip.open(IMDB, "rt", encoding="utf-8") as f:
            for line in f:
                rows.append(line)
                if len(rows) >= n:
                    break
    else:  # without ../shared: the demo texts, repeated with a counter so dedup keeps them
        demo = [json.loads(line) for p in sorted(DEMO.glob("*.jsonl")) for line in p.open()]
        demo = [r for r in demo if isinstance(r.get("text"), str)]
        rows = [json.dumps({"text": f"{demo[i % len(demo)]['text']} ({i})"}) + "\n" for i in range(n)]
    path.write_text("".join(rows))
    return path


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    """(seconds inside the script, wall seconds of the whole process, output); CPU seconds of the
    whole process tree go to ``CPU[cmd[0]]``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    inner = [line.split() for line in proc.stdout.splitlines() if line.startswith("SECONDS")]
    return (float(inner[-1][1]) if inner else wall), wall, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=10_000)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--recipe", default=str(BENCH / "recipes" / "imdb_text_15ops.yaml"))
    args = ap.parse_args()

    data = make_input(args.docs, WORK / "inputs")
    py = sys.executable
    results: dict[str, list] = {"engine": [], "dagster": [], "cli_local": [], "cli_dagster": []}
    cpu: dict[str, list] = {k: [] for k in results}
    rows: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="dj-overhead-") as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
        env = {**os.environ, "DAGSTER_HOME": str(home), "DJ_STORAGE_ROOT": str(tmp / "storage")}
        for i in range(args.repeat):
            out = tmp / f"run{i}"
            sec, _, o = timed([py, "-c", ENGINE, args.recipe, str(data), str(out / "engine.jsonl"), str(args.np)], env, tmp)
            results["engine"].append(sec)
            rows["engine"] = int(o.split("SECONDS")[-1].split()[1])
            sec, _, o = timed([py, "-c", DAGSTER, args.recipe, str(data), str(out / "dagster.jsonl"), str(args.np),
                               str(tmp / "storage")], env, tmp)
            results["dagster"].append(sec)
            rows["dagster"] = int(o.split("SECONDS")[-1].split()[1])
            common = ["--config", args.recipe, "--dataset_path", str(data), "--np", str(args.np), "--no-progress"]
            _, wall, _ = timed([py, "-c", DJ_PROCESS, *common, "--executor", "local",
                                "--export_path", str(out / "cli_local.jsonl")], env, tmp)
            results["cli_local"].append(wall)
            _, wall, _ = timed([py, "-c", DJ_PROCESS, *common, "--partition_rows", "0",
                                "--export_path", str(out / "cli_dagster.jsonl")], env, tmp)
            results["cli_dagster"].append(wall)
            for k, c in zip(results, CPU[-len(results):]):
                cpu[k].append(c)
            same = all(len({(out / f"{k}{suffix}").read_bytes() for k in ("engine", "dagster", "cli_dagster")}) == 1
                       for suffix in (".jsonl", "_stats.jsonl"))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items())
                  + f"; outputs and stats files identical: {same}", flush=True)
            if not same:
                print("error: the Dagster output differs from the engine's", file=sys.stderr)
                return 1
    med = {k: statistics.median(v) for k, v in results.items()}
    best = {k: min(v) for k, v in results.items()}
    report = {
        "docs": args.docs, "np": args.np, "repeat": args.repeat, "recipe": Path(args.recipe).name,
        "input": "IMDB reviews" if IMDB.exists() else "demo texts (no ../shared)", "rows_out": rows,
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "runs": {k: [round(x, 3) for x in v] for k, v in results.items()},
        "ratio_dagster_vs_engine": round(med["dagster"] / med["engine"], 3),
        "ratio_cli": round(med["cli_dagster"] / med["cli_local"], 3),
        # on a shared machine the fastest run of each is the least disturbed one
        "ratio_dagster_vs_engine_best": round(best["dagster"] / best["engine"], 3),
        "ratio_cli_best": round(best["cli_dagster"] / best["cli_local"], 3),
        # CPU seconds of each whole process tree (imports included): hardly moved by other load
        "cpu_seconds_median": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
        "ratio_cpu_cli": round(statistics.median(cpu["cli_dagster"]) / statistics.median(cpu["cli_local"]), 3),
    }
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK.parent / "dagster_overhead.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
