"""Side-by-side benchmark: upstream Data-Juicer (py-data-juicer 1.6.1) vs this project on one recipe.

Both `dj-process` commands run as subprocesses on the same input file with the same recipe and np.
For each we record wall time and the peak memory of the whole process tree (the command plus all its
descendants, sampled every ~0.2 s: summed RSS, plus summed PSS/USS, which do not double-count pages
shared between forked workers). Then the outputs are compared as multisets of `text` values and a
section is written to bench/RESULTS.md (one section per benchmark name + np; others are kept).

Data-Juicer settings (everything else stays at DJ's defaults, like the README reference figures):
- `ds_cache_dir` points at a fresh, empty directory per run, deleted afterwards. DJ's default
  `use_cache: true` stays on (as in the reference runs), but a run can never reuse HuggingFace cache
  files from an earlier run, which would make repeated runs look faster than a first run.
- `work_dir` is a per-run directory beside the export file, so the log can be parsed for per-OP times.
- `skip_op_error: true` (DJ's default) drops rows silently when an OP raises, so row counts are always
  compared with ours, and the per-OP "Left N samples" lines of DJ's log are reported.

Usage:
    .venv/bin/python bench/run_text_bench.py --recipe bench/recipes/imdb_text_15ops.yaml --np 2 --limit 5000
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gzip
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / "work"
DEFAULT_DATA = PROJECT_DIR.parent / "shared" / "data" / "text" / "imdb_reviews_100k.jsonl.gz"
DJ_PROCESS = BENCH_DIR / ".venv-dj" / "bin" / "dj-process"
OURS_PROCESS = PROJECT_DIR / ".venv" / "bin" / "dj-process"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
FULL_SAMPLE_EVERY = 5  # PSS/USS samples: one in five
SAMPLE_INTERVAL_S = 0.2
EXAMPLES_SHOWN = 3

DJ_OP_DONE = re.compile(r"\[(\d+)/(\d+)\] OP \[([\w.]+)\] Done in ([\d.]+)s\. Left (\d+) samples\.")


@dataclass
class TreeMemoryPeak:
    """Peaks over time of memory summed across a process tree (bytes)."""

    rss: int = 0
    pss: int = 0
    uss: int = 0
    max_processes: int = 0
    samples: int = 0
    load_sum: float = 0.0  # 1-min load averages summed over samples: other jobs on the machine show here

    @property
    def mean_load(self) -> float:
        return self.load_sum / self.samples if self.samples else 0.0


@dataclass
class OpTiming:
    name: str
    seconds: float
    rows_left: int
    errors: int | None = None  # rows an OP failed on (ours reports it; DJ only logs them)


@dataclass
class RunResult:
    name: str
    command: list[str]
    returncode: int
    wall_s: float
    memory: TreeMemoryPeak
    output_path: Path
    log_path: Path
    rows_out: int | None = None
    op_times: list[OpTiming] = field(default_factory=list)
    bad_rows: int = 0  # rows ours set aside (unreadable or an OP raised), from its run_report.json
    first_bad_reason: str = ""


def sample_tree_memory(root: psutil.Process, peak: TreeMemoryPeak, full: bool = True) -> None:
    """Adds one sample of the tree's summed RSS (and, when `full`, PSS/USS) to `peak` (processes may
    vanish meanwhile)."""
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    rss = pss = uss = 0
    alive = 0
    for process in processes:
        try:
            # smaps_rollup (memory_full_info) walks every mapped page: ~5 ms per GB mapped, a few %
            # of a core at this rate with model weights loaded, so it is read on every 5th sample
            info = process.memory_full_info() if full else process.memory_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            info = process.memory_info()
        alive += 1
        rss += info.rss
        pss += getattr(info, "pss", 0)
        uss += getattr(info, "uss", 0)
    peak.rss = max(peak.rss, rss)
    if full:
        peak.pss = max(peak.pss, pss)
        peak.uss = max(peak.uss, uss)
    peak.max_processes = max(peak.max_processes, alive)
    peak.samples += 1
    peak.load_sum += os.getloadavg()[0]


def run_measured(name: str, command: list[str], output_path: Path, log_path: Path, timeout_s: float,
                 env: dict[str, str] | None = None) -> RunResult:
    """Runs `command`, sampling its process tree's memory until it exits; stdout+stderr go to log_path."""
    print(f"[{name}] {shlex.join(command)}", flush=True)
    peak = TreeMemoryPeak()
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_DIR,
                                env=env, start_new_session=True)
        root = psutil.Process(proc.pid)
        stop = threading.Event()

        def sampler() -> None:
            n = 0
            while not stop.is_set():
                sample_tree_memory(root, peak, full=n % FULL_SAMPLE_EVERY == 0)
                n += 1
                stop.wait(SAMPLE_INTERVAL_S)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session started above: only this run's processes
            returncode = proc.wait()
            print(f"[{name}] killed after {timeout_s:.0f} s timeout", flush=True)
        wall_s = time.perf_counter() - start
        stop.set()
        thread.join()
    print(f"[{name}] exit {returncode}, {wall_s:.1f} s, peak tree RSS {peak.rss / 2**20:.0f} MiB", flush=True)
    return RunResult(name, command, returncode, wall_s, peak, output_path, log_path)


def prepare_input(data: Path, limit: int | None) -> tuple[Path, int]:
    """Returns a plain jsonl file with the first `limit` rows (all when None) of `data`, and its row count.

    Gzip input and limited inputs are written once under bench/work/ and reused afterwards.
    """
    is_gzip = data.suffix == ".gz"
    if not is_gzip and limit is None:
        return data, count_lines(data)
    stem = data.name.removesuffix(".gz").removesuffix(".jsonl")
    target = WORK_DIR / "inputs" / (f"{stem}.first{limit}.jsonl" if limit else f"{stem}.jsonl")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        opener = gzip.open if is_gzip else open
        with opener(data, "rb") as src, open(partial, "wb") as dst:
            for index, line in enumerate(src):
                if limit is not None and index >= limit:
                    break
                dst.write(line)
        partial.rename(target)
    return target, count_lines(target)


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def read_rows(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return [json.loads(line) for line in f if line.strip()]


def find_dj_output(export_path: Path) -> Path:
    """DJ writes `export_path` itself, or shards `<stem>-XX-of-YY.jsonl` when export_shard_size > 0."""
    if export_path.exists():
        return export_path
    shards = sorted(export_path.parent.glob(f"{export_path.stem}-*-of-*{export_path.suffix}"))
    if shards:
        merged = export_path.with_name(export_path.stem + ".merged" + export_path.suffix)
        with open(merged, "wb") as dst:
            for shard in shards:
                dst.write(shard.read_bytes())
        return merged
    return export_path


def parse_dj_op_times(log_text: str) -> list[OpTiming]:
    """Wall seconds and rows left per OP from DJ's "[i/n] OP [name] Done in Xs. Left N samples." lines."""
    return [OpTiming(m.group(3), float(m.group(4)), int(m.group(5))) for m in DJ_OP_DONE.finditer(log_text)]


@dataclass
class Comparison:
    """Outcome of comparing DJ's kept rows with ours.

    The headline is the multiset of `text` values. To explain differences, rows are also paired by
    their other fields (e.g. IMDB's `meta.file`) when those identify rows uniquely on both sides:
    a pair with different texts points at a mapper, a row kept by one side only at a filter/dedup.
    """

    texts_equal: bool
    rows_equal: bool
    same_order: bool
    only_dj_count: int
    only_ours_count: int
    paired: bool = False
    text_differs_count: int = 0
    text_differs: list[tuple[str, str]] = field(default_factory=list)
    dropped_by_ours: list[str] = field(default_factory=list)
    dropped_by_dj: list[str] = field(default_factory=list)
    dropped_by_ours_count: int = 0
    dropped_by_dj_count: int = 0


def canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def other_fields_key(row: dict) -> str:
    return canonical({k: v for k, v in row.items() if k != "text"})


def difference_snippets(a: str, b: str, context: int = 50) -> tuple[str, str]:
    """The two texts around their first differing character."""
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    lo = max(0, i - context)
    return f"@{i}: ...{a[lo:i + context]}...", f"...{b[lo:i + context]}..."


def compare_outputs(dj_rows: list[dict], our_rows: list[dict]) -> Comparison:
    dj_texts = collections.Counter(row.get("text") for row in dj_rows)
    our_texts = collections.Counter(row.get("text") for row in our_rows)
    only_dj = dj_texts - our_texts
    only_ours = our_texts - dj_texts
    result = Comparison(
        texts_equal=not only_dj and not only_ours,
        rows_equal=collections.Counter(map(canonical, dj_rows)) == collections.Counter(map(canonical, our_rows)),
        same_order=[r.get("text") for r in dj_rows] == [r.get("text") for r in our_rows],
        only_dj_count=sum(only_dj.values()),
        only_ours_count=sum(only_ours.values()),
    )
    if result.texts_equal:
        return result
    dj_by_key = {other_fields_key(row): str(row.get("text")) for row in dj_rows}
    our_by_key = {other_fields_key(row): str(row.get("text")) for row in our_rows}
    if len(dj_by_key) < len(dj_rows) or len(our_by_key) < len(our_rows):
        # Other fields do not identify rows: show unpaired texts.
        result.dropped_by_ours = [str(t) for t in list(only_dj)[:EXAMPLES_SHOWN]]
        result.dropped_by_dj = [str(t) for t in list(only_ours)[:EXAMPLES_SHOWN]]
        result.dropped_by_ours_count, result.dropped_by_dj_count = result.only_dj_count, result.only_ours_count
        return result
    result.paired = True
    differing = [(dj_by_key[k], our_by_key[k]) for k in dj_by_key.keys() & our_by_key.keys()
                 if dj_by_key[k] != our_by_key[k]]
    result.text_differs_count = len(differing)
    result.text_differs = [difference_snippets(a, b) for a, b in differing[:EXAMPLES_SHOWN]]
    dropped_by_ours = [dj_by_key[k] for k in dj_by_key.keys() - our_by_key.keys()]
    dropped_by_dj = [our_by_key[k] for k in our_by_key.keys() - dj_by_key.keys()]
    result.dropped_by_ours_count, result.dropped_by_dj_count = len(dropped_by_ours), len(dropped_by_dj)
    result.dropped_by_ours = dropped_by_ours[:EXAMPLES_SHOWN]
    result.dropped_by_dj = dropped_by_dj[:EXAMPLES_SHOWN]
    return result


def machine_description() -> str:
    cpu_model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total_gib = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu_model}), {total_gib:.0f} GiB RAM, Linux {platform.release()}"


def gib(n_bytes: int) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x" if denominator else "n/a"


def shorten(text: str, width: int = 120) -> str:
    flat = text.replace("\n", "\\n").replace("|", "\\|")
    return flat if len(flat) <= width else flat[:width] + "..."


def render_section(title: str, command: str, input_path: Path, rows_in: int, np_: int,
                   load_before: tuple[float, float, float], runs: list[RunResult], comparison: Comparison | None) -> str:
    lines = [f"## {title}", ""]
    lines.append(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    lines.append(f"- machine: {machine_description()}; load average before the run: "
                 f"{', '.join(f'{x:.2f}' for x in load_before)} (1/5/15 min)")
    lines.append(f"- command: `{command}`")
    lines.append(f"- input: `{input_path}` ({rows_in} rows), np={np_}")
    for run in runs:
        lines.append(f"- {run.name} command: `{shlex.join(str(c) for c in run.command)}`")
    lines.append("")
    lines.append("| | wall s | docs/s (input rows / wall) | peak tree RSS | peak tree PSS | peak tree USS "
                 "| max processes | mean 1-min load | exit | rows out |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        lines.append(f"| {run.name} | {run.wall_s:.1f} | {rows_in / run.wall_s:.0f} | {gib(run.memory.rss)} "
                     f"| {gib(run.memory.pss)} | {gib(run.memory.uss)} | {run.memory.max_processes} "
                     f"| {run.memory.mean_load:.1f} "
                     f"| {run.returncode} | {run.rows_out if run.rows_out is not None else 'missing'} |")
    by_name = {run.name: run for run in runs}
    for run in runs:
        if run.bad_rows:
            lines.append("")
            lines.append(f"- **{run.name} set {run.bad_rows} rows aside as bad** (first reason: "
                         f"`{shorten(run.first_bad_reason, 200)}`)")
    if "DJ" in by_name and "ours" in by_name:
        dj, ours = by_name["DJ"], by_name["ours"]
        lines.append("")
        lines.append(f"- throughput ours / DJ: **{ratio(dj.wall_s, ours.wall_s)}**")
        lines.append(f"- peak memory DJ / ours: RSS {ratio(dj.memory.rss, ours.memory.rss)}, "
                     f"PSS {ratio(dj.memory.pss, ours.memory.pss)}")
    if comparison is not None:
        lines.append(f"- rows out: DJ {by_name['DJ'].rows_out}, ours {by_name['ours'].rows_out}")
        lines.append(f"- rows equal (same multiset of `text`): **{'yes' if comparison.texts_equal else 'NO'}**; "
                     f"whole rows (all fields) equal: {'yes' if comparison.rows_equal else 'no'}; "
                     f"same order: {'yes' if comparison.same_order else 'no'}")
        if not comparison.texts_equal:
            lines.append(f"- texts kept only by DJ: {comparison.only_dj_count}; "
                         f"texts kept only by ours: {comparison.only_ours_count}")
            if comparison.paired:
                lines.append(f"- rows paired by their other fields: {comparison.text_differs_count} kept by both "
                             "with different text (mapper difference):")
                for dj_text, our_text in comparison.text_differs:
                    lines.append(f"  - DJ `{shorten(dj_text, 160)}`")
                    lines.append(f"    ours `{shorten(our_text, 160)}`")
            lines.append(f"- rows kept by DJ, dropped by ours: {comparison.dropped_by_ours_count}")
            lines.extend(f"  - `{shorten(t)}`" for t in comparison.dropped_by_ours)
            lines.append(f"- rows kept by ours, dropped by DJ: {comparison.dropped_by_dj_count}")
            lines.extend(f"  - `{shorten(t)}`" for t in comparison.dropped_by_dj)
    op_table = per_op_table(by_name.get("DJ"), by_name.get("ours"))
    if op_table:
        lines.append("")
        lines.extend(op_table)
    lines.append("")
    return "\n".join(lines)


def per_op_table(dj: RunResult | None, ours: RunResult | None) -> list[str]:
    """Per-OP rows left on both sides (where known), with DJ's wall seconds and our CPU seconds."""
    dj_ops = dj.op_times if dj else []
    our_ops = ours.op_times if ours else []
    if not dj_ops and not our_ops:
        return []
    our_by_name = collections.defaultdict(list)
    for op in our_ops:
        our_by_name[op.name].append(op)
    lines = ["Per OP (DJ: wall s and rows left from its log; ours: CPU s summed over workers, rows left and "
             "rows that raised, from its run_report.json):", "",
             "| OP | DJ s | DJ rows left | ours CPU s | ours rows left | ours errors |", "|---|---|---|---|---|---|"]
    for op in dj_ops or our_ops:
        dj_op = op if dj_ops else None
        our_op = our_by_name[op.name].pop(0) if our_by_name[op.name] else None
        dj_cells = f"{dj_op.seconds:.1f} | {dj_op.rows_left}" if dj_op else " | "
        our_cells = f"{our_op.seconds:.2f} | {our_op.rows_left} | {our_op.errors}" if our_op else " |  | "
        lines.append(f"| {op.name} | {dj_cells} | {our_cells} |")
    return lines


def read_our_report(run: RunResult, path: Path) -> None:
    """Fills per-OP timings and bad-row counts from our dj-process's run_report.json, if it wrote one."""
    try:
        report = json.loads(path.read_text())
        run.op_times = [OpTiming(op["name"], float(op["cpu_seconds"]), int(op["rows_out"]), int(op["errors"]))
                        for op in report["ops"]]
        run.bad_rows = int(report.get("bad_rows") or 0)
        if run.bad_rows and report.get("bad_rows_file"):
            with open(report["bad_rows_file"]) as f:
                run.first_bad_reason = str(json.loads(f.readline()).get("reason", ""))
    except (OSError, ValueError, KeyError, TypeError):
        pass


def update_results(section: str, title: str, path: Path = RESULTS_MD) -> None:
    """Replaces the `## title` section of the results file (or appends it), keeping every other section."""
    header = ("# Benchmark results\n\nWritten by `bench/run_text_bench.py`; one section per benchmark "
              "(recipe, input, np). See bench/README.md.\n")
    text = path.read_text() if path.exists() else header
    parts = re.split(r"(?m)^(?=## )", text)
    preamble, sections = parts[0], parts[1:]
    replaced = False
    for i, existing in enumerate(sections):
        if existing.splitlines()[0].strip() == f"## {title}":
            sections[i] = section
            replaced = True
    if not replaced:
        sections.append(section)
    body = preamble.rstrip("\n") + "\n\n" + "\n".join(s.rstrip("\n") + "\n" for s in sections)
    path.write_text(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--np", type=int, default=2, dest="np_")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="jsonl or jsonl.gz input")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N rows")
    parser.add_argument("--skip-dj", action="store_true", help="run only ours (no comparison)")
    parser.add_argument("--skip-ours", action="store_true", help="run only DJ (no comparison)")
    parser.add_argument("--ours-cmd", default=str(OURS_PROCESS),
                        help="our dj-process executable (or a stand-in accepting the same arguments)")
    parser.add_argument("--ours-executor", choices=("local", "dagster"), default="local",
                        help="local (default): the engine alone; dagster: our dj-process's default path, "
                             "through Dagster, in a fresh instance (memory and time of the whole process tree)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run before it is killed")
    parser.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    parser.add_argument("--title", default=None, help="RESULTS.md section title (default from recipe/input/np)")
    args = parser.parse_args(argv)

    recipe = args.recipe.resolve()
    input_path, rows_in = prepare_input(args.data.resolve(), args.limit)
    bench_name = f"{recipe.stem} on {input_path.stem}"
    only = " (DJ only)" if args.skip_ours else " (ours only)" if args.skip_dj else ""
    title = args.title or f"{bench_name}, np={args.np_}{only}"
    run_dir = WORK_DIR / "runs" / f"{recipe.stem}.{input_path.stem}.np{args.np_}"
    print(f"input {input_path} ({rows_in} rows); run dir {run_dir}", flush=True)

    load_before = os.getloadavg()
    runs: list[RunResult] = []
    if not args.skip_dj:
        if not DJ_PROCESS.exists():
            sys.exit(f"{DJ_PROCESS} missing: run bench/setup_dj_venv.sh first")
        dj_dir = run_dir / "dj"
        shutil.rmtree(dj_dir, ignore_errors=True)
        dj_dir.mkdir(parents=True)
        cache_dir = dj_dir / "hf_cache"
        export = dj_dir / "out.jsonl"
        command = [str(DJ_PROCESS), "--config", str(recipe), "--dataset_path", str(input_path),
                   "--export_path", str(export), "--np", str(args.np_),
                   "--work_dir", str(dj_dir / "work"), "--ds_cache_dir", str(cache_dir)]
        env = dict(os.environ, HF_DATASETS_CACHE=str(cache_dir), HF_HUB_OFFLINE="1")
        dj = run_measured("DJ", command, export, dj_dir / "dj-process.log", args.timeout, env)
        shutil.rmtree(cache_dir, ignore_errors=True)
        dj.output_path = find_dj_output(export)
        dj.op_times = parse_dj_op_times(dj.log_path.read_text(errors="replace"))
        runs.append(dj)
    if not args.skip_ours:
        ours_dir = run_dir / "ours"
        shutil.rmtree(ours_dir, ignore_errors=True)
        ours_dir.mkdir(parents=True)
        export = ours_dir / "out.jsonl"
        command = [*shlex.split(args.ours_cmd), "--config", str(recipe), "--dataset_path", str(input_path),
                   "--export_path", str(export), "--np", str(args.np_),
                   # the engine alone by default (Dagster's overhead is measured by
                   # bench/dagster_overhead.py), with DJ's lossy stats round trip reproduced so that
                   # both keep exactly the same rows
                   "--executor", args.ours_executor, "--data_juicer_stats_compat", "true"]
        env = None
        if args.ours_executor == "dagster":
            env = dict(os.environ, DAGSTER_HOME=str(ours_dir / "dagster_home"),
                       DJ_STORAGE_ROOT=str(ours_dir / "dagster_storage"))
            (ours_dir / "dagster_home").mkdir()
        ours = run_measured("ours", command, export, ours_dir / "dj-process.log", args.timeout, env)
        read_our_report(ours, ours_dir / "run_report.json")
        runs.append(ours)

    rows = {}
    for run in runs:
        if run.returncode == 0 and run.output_path.exists():
            rows[run.name] = read_rows(run.output_path)
            run.rows_out = len(rows[run.name])
        else:
            print(f"[{run.name}] no output; last log lines:\n"
                  + "\n".join(run.log_path.read_text(errors="replace").splitlines()[-15:]), flush=True)

    comparison = compare_outputs(rows["DJ"], rows["ours"]) if {"DJ", "ours"} <= rows.keys() else None
    command_line = shlex.join([".venv/bin/python", "bench/run_text_bench.py",
                               *(argv if argv is not None else sys.argv[1:])])
    section = render_section(title, command_line, input_path, rows_in, args.np_, load_before, runs, comparison)
    print(section)
    if not args.no_results:
        update_results(section, title)
        print(f"updated {RESULTS_MD}")
    failed = any(run.returncode != 0 or run.rows_out is None for run in runs)
    mismatch = comparison is not None and not comparison.texts_equal
    return 1 if failed or mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
