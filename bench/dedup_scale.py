"""Deduplication at scale (issue 5): time and peak memory of our dj-process at 100k ... 1M documents.

The documents are the 100k IMDB reviews repeated ten times in a seeded random order, every copy
with 0-3 small seeded edits (a swap of two neighbouring words, or a deleted word), so exact and
near duplicates exist at every size.  Each size is a prefix of the same 1M-document file
(generated once under bench/work/dedup_scale/, git-ignored).  For each size and each recipe
(document_minhash_deduplicator with Data-Juicer's defaults; document_deduplicator) one
``dj-process --executor local`` run is measured: wall time and peak summed RSS/PSS of its process
tree (bench/run_text_bench.py's sampler).  Run it under the shared lock:

    flock /tmp/bench.lock .venv/bin/python bench/dedup_scale.py --np 2
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import random
import shutil
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_text_bench import DEFAULT_DATA, OURS_PROCESS, WORK_DIR, machine_description, run_measured  # noqa: E402

SCALE_DIR = WORK_DIR / "dedup_scale"
SIZES = (100_000, 250_000, 500_000, 1_000_000)
SEED = 5
RECIPES = {
    "minhash": "process:\n  - document_minhash_deduplicator:\n",
    "exact": "process:\n  - document_deduplicator:\n",
}


def edited(words: list[str], rng: random.Random) -> list[str]:
    """0-3 edits: swap two neighbouring words, or delete one."""
    words = list(words)
    for _ in range(rng.randint(0, 3)):
        if len(words) < 3:
            break
        i = rng.randrange(len(words) - 1)
        if rng.random() < 0.5:
            words[i], words[i + 1] = words[i + 1], words[i]
        else:
            del words[i]
    return words


def generate(source: Path, total: int, out: Path) -> None:
    """``total`` documents: copies of the source texts in a seeded random order, each edited."""
    if out.exists():
        return
    with gzip.open(source, "rb") if source.suffix == ".gz" else open(source, "rb") as fh:
        texts = [orjson.loads(line)["text"] for line in fh if line.strip()]
    rng = random.Random(SEED)
    order = list(range(total))
    rng.shuffle(order)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        for i, j in enumerate(order):
            base = texts[j % len(texts)]
            doc_rng = random.Random(SEED * 1_000_003 + i)
            text = base if j < len(texts) else " ".join(edited(base.split(" "), doc_rng))
            fh.write(orjson.dumps({"text": text, "copy": j // len(texts), "source_row": j % len(texts)}) + b"\n")
    tmp.replace(out)


def prefix(full: Path, n: int) -> Path:
    path = full.with_name(f"docs_{n // 1000}k.jsonl")
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with open(full, "rb") as src, open(tmp, "wb") as dst:
            for _, line in zip(range(n), src):
                dst.write(line)
        tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--np", type=int, default=2, dest="np_")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"input {args.data} not found (the shared data is needed)", file=sys.stderr)
        return 2
    SCALE_DIR.mkdir(parents=True, exist_ok=True)
    full = SCALE_DIR / f"docs_{max(args.sizes) // 1000}k.jsonl"
    generate(args.data, max(args.sizes), full)
    print(f"{machine_description()}; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    results = []
    for name in args.recipes:
        recipe = SCALE_DIR / f"{name}.yaml"
        recipe.write_text(f"project_name: dedup_scale_{name}\ntext_keys: text\n{RECIPES[name]}")
        for n in sorted(args.sizes):
            data = prefix(full, n) if n < max(args.sizes) else full
            run_dir = SCALE_DIR / f"run_{name}_{n // 1000}k"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            out = run_dir / "out.jsonl"
            command = [str(OURS_PROCESS), "--config", str(recipe), "--dataset_path", str(data),
                       "--export_path", str(out), "--np", str(args.np_), "--executor", "local"]
            run = run_measured(f"{name} {n}", command, out, run_dir / "log.txt", args.timeout)
            report = json.loads((run_dir / "run_report.json").read_text()) if run.returncode == 0 else {}
            summary = next(iter(report.get("dedup", {}).values()), {})
            row = {"recipe": name, "docs": n, "exit": run.returncode, "wall_s": round(run.wall_s, 1),
                   "docs_per_s": round(n / run.wall_s), "peak_rss_mib": round(run.memory.rss / 2**20),
                   "peak_pss_mib": round(run.memory.pss / 2**20), "rows_out": report.get("rows_out"),
                   "clusters": summary.get("clusters"), "removed": summary.get("removed_rows"),
                   "mean_load": round(run.memory.mean_load, 2)}
            results.append(row)
            print(json.dumps(row), flush=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    print("| recipe | docs | wall s | docs/s | peak RSS MiB | peak PSS MiB | rows out | clusters | removed | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['recipe']} | {r['docs']:,} | {r['wall_s']} | {r['docs_per_s']:,} | {r['peak_rss_mib']} | "
              f"{r['peak_pss_mib']} | {r['rows_out']} | {r['clusters']} | {r['removed']} | {r['mean_load']} |")
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
