"""Ray executor vs local executor on this machine: throughput on the 100k IMDB reviews and peak
memory of the whole process tree (the Ray head, raylet, object store and workers included: a
local Ray cluster is started by the measured process itself) with 1M documents.

Both runs are ``dj-process --executor local`` (the engine without Dagster) on the same recipe,
input and np; ``--executor_type ray`` selects the Ray executor.  The outputs are compared byte
for byte.  The 1M-document input is the 100k reviews repeated ten times, written once under the
git-ignored bench/work/.  The section for bench/RESULTS.md is printed and written to
bench/work/ray_bench_section.md (RESULTS.md is shared: paste it under "## Ray executor (issue 7)").

Usage (the shared CPU lock keeps measurements from overlapping):
    flock /tmp/bench.lock .venv/bin/python bench/ray_bench.py [--skip-1m]
"""

from __future__ import annotations

import argparse
import datetime
import filecmp
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_text_bench import (DEFAULT_DATA, PROJECT_DIR, WORK_DIR, gib, machine_description,  # noqa: E402
                            prepare_input, run_measured)

RECIPE = PROJECT_DIR / "bench" / "recipes" / "imdb_text_15ops.yaml"
DJ_PROCESS = PROJECT_DIR / ".venv" / "bin" / "dj-process"


def repeated_input(source: Path, times: int) -> tuple[Path, int]:
    target = WORK_DIR / "inputs" / f"{source.stem}.x{times}.jsonl"
    if not target.exists():
        partial = target.with_suffix(".partial")
        data = source.read_bytes()
        with open(partial, "wb") as out:
            for _ in range(times):
                out.write(data)
        partial.rename(target)
    with open(target, "rb") as f:
        return target, sum(1 for _ in f)


def run(executor: str, input_path: Path, np_: int, tag: str):
    out_dir = WORK_DIR / "runs" / f"ray_bench.{tag}.{executor}"
    out = out_dir / "out.jsonl"
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [str(DJ_PROCESS), "--config", str(RECIPE), "--dataset_path", str(input_path), "--export_path", str(out),
           "--np", str(np_), "--executor", "local", "--no-progress"]
    if executor == "ray":
        # a new local cluster inside the measured process tree, never another job's cluster
        cmd += ["--executor_type", "ray", "--ray_address", "local"]
    res = run_measured(f"{tag} {executor}", cmd, out, out_dir / "log.txt", timeout_s=3600)
    report = json.loads((out_dir / "run_report.json").read_text()) if res.returncode == 0 else {}
    return res, report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--skip-1m", action="store_true", help="only the 100k throughput runs")
    ap.add_argument("--skip-100k", action="store_true", help="only the 1M memory runs")
    ap.add_argument("--executors", default="local,ray", help="comma-separated: local, ray")
    args = ap.parse_args(argv)
    base, n_base = prepare_input(DEFAULT_DATA, None)
    cases = [] if args.skip_100k else [("100k", base, n_base)]
    if not args.skip_1m:
        big, n_big = repeated_input(base, 10)
        cases.append(("1m", big, n_big))
    lines = ["## Ray executor (issue 7)", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
             f"- machine: {machine_description()}, no GPU; Ray {__import__('ray').__version__}, a local cluster "
             f"started by the run (`ray.init(num_cpus=np)`)",
             f"- command: `flock /tmp/bench.lock .venv/bin/python bench/ray_bench.py {shlex.join(sys.argv[1:])}`",
             f"- recipe: `{RECIPE.relative_to(PROJECT_DIR)}`, np={args.np}; each run is "
             "`dj-process --executor local [--executor_type ray]` (the engine without Dagster)",
             "- peak memory: summed over the run's whole process tree (for Ray: GCS, raylet, dashboard agent, "
             "the object store's shared memory as mapped, every worker), sampled every 0.2 s", "",
             "| input | rows | executor | wall s | docs/s | peak tree RSS | peak tree PSS | max processes | rows out | exit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for tag, path, n in cases:
        results = {}
        for executor in args.executors.split(","):
            res, report = run(executor, path, args.np, tag)
            results[executor] = res
            lines.append(f"| {path.name} | {n} | {executor} | {res.wall_s:.1f} | {n / res.wall_s:.0f} | "
                         f"{gib(res.memory.rss)} | {gib(res.memory.pss)} | {res.memory.max_processes} | "
                         f"{report.get('rows_out', 'n/a')} | {res.returncode} |")
        if len(results) == 2:
            same = all(r.returncode == 0 for r in results.values()) and filecmp.cmp(
                results["local"].output_path, results["ray"].output_path, shallow=False)
            ratio = results["local"].wall_s / results["ray"].wall_s
            notes.append(f"- {path.name}: Ray / local throughput **{ratio:.2f}x**; outputs byte-identical: "
                         f"**{'yes' if same else 'NO'}**")
        # written after every input, so a long 1M run that is stopped keeps the 100k figures
        section = "\n".join(lines + [""] + notes) + "\n"
        target = WORK_DIR / "ray_bench_section.md"
        target.write_text(section)
        print(section, flush=True)
        print(f"section written to {target} (command: {shlex.join(sys.argv)})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
