"""Datasets, recipes and a ``dj-process --executor local`` subprocess for the fault tests."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

REPO = Path(__file__).resolve().parents[2]
WORDS = ("data juicer ray dagster resume crash worker chunk parquet gzip filter mapper dedup row text "
         "review movie plot actor scene great terrible boring classic").split()

# the cli with the test OPs registered: exactly `dj-process` otherwise
CLI = ("import sys, tests.faults.fault_ops; from dj_assets.cli import process_main; "
       "sys.exit(process_main(sys.argv[1:]))")


def make_texts(n: int, seed: int) -> list[str]:
    """Texts with exact duplicates (also across files) and near duplicates (one word changed)."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(n):
        r = rng.random()
        if out and r < 0.1:
            out.append(rng.choice(out))
        elif out and r < 0.2:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            out.append(" ".join(words))
        else:
            out.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) + f" {i}")
    return out


def rows_for(name: str, texts: list[str]) -> list[dict]:
    return [{"id": f"{name}:{i + 1}", "text": t} for i, t in enumerate(texts)]


def write_dataset(folder: Path, seed: int = 0, n_per_file: int = 150) -> dict[str, list[dict]]:
    """Three jsonl files (one gzipped), one parquet and one empty file; returns rows per file."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = make_texts(4 * n_per_file, seed)
    files = {}
    for k, name in enumerate(["a.jsonl", "b.jsonl.gz", "c.parquet", "d.jsonl"]):
        rows = rows_for(name, texts[k * n_per_file:(k + 1) * n_per_file])
        write_rows(folder / name, rows)
        files[name] = rows
    write_rows(folder / "e_empty.jsonl", [])
    files["e_empty.jsonl"] = []
    return files


def write_rows(path: Path, rows: list[dict]) -> None:
    if path.name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("text", pa.string())])),
                       path, row_group_size=40)
        return
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


def write_recipe(path: Path, dataset: Path, out_dir: Path, process: list, **keys) -> Path:
    recipe = {"project_name": "faults", "dataset_path": str(dataset), "export_path": str(out_dir / "out.jsonl"),
              "np": 2, "batch_size": 20, "process": process, **keys}
    path.write_text(yaml.safe_dump(recipe))
    return path


def start(recipe: Path, *extra: str) -> subprocess.Popen:
    """``dj-process --executor local`` in its own process group (so a kill reaches its workers too)."""
    return subprocess.Popen([sys.executable, "-c", CLI, "--config", str(recipe), "--executor", "local",
                             "--no-progress", *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def run(recipe: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    p = start(recipe, *extra)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        raise
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(), err.decode())


def kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def kill_after(recipe: Path, delay: float, *extra: str, ready=lambda: True) -> int | None:
    """Start a run and ``kill -9`` it (coordinator only) ``delay`` s after ``ready()`` first holds
    (e.g. "a chunk was recorded": start-up time varies on a busy machine); its exit code if it
    ended first."""
    p = start(recipe, *extra)
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        if p.poll() is not None:
            p.communicate()
            return p.returncode
        if deadline is None and ready():
            deadline = time.monotonic() + delay
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()
    # workers die with their coordinator (PR_SET_PDEATHSIG); make sure nothing of the group is left
    time.sleep(0.2)
    kill_group(p)
    return None


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
