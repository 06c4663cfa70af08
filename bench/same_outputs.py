"""Same outputs before and after a change: runs the benchmark recipes with two checkouts of this
repository and compares every file they write, byte for byte.

    .venv/bin/python bench/same_outputs.py --before /path/to/old/checkout [--after .] [--docs 20000]

Each case runs ``dj-process --executor local`` (the engine alone; ``--dagster`` adds the default
Dagster path of the *after* checkout, compared with the engine's own output) in a subprocess
with ``PYTHONPATH`` set to the checkout, on the same inputs:

- ``text15`` / ``text16``: the 15- and 16-OP IMDB recipes (bench/recipes; 16 adds MinHash), np 2;
- ``text15_fused``: the 15-OP recipe with ``op_fusion`` (the probe orders the filters);
- ``dedup_traced``: exact, SimHash and MinHash deduplication with the tracer on;
- ``image_fused``: three model filters (tiny random-weight CLIP, aesthetics predictor on its tower,
  ViT classifier) and two header filters over ImageNet photos, fused, np 2;
- ``video_fused``: two model filters and two header filters over Data-Juicer's test videos, fused;
- ``ray``: the 15-OP recipe on the Ray executor (skipped without ray).

Compared: the export, the stats file, bad rows and traces byte for byte; from ``run_report.json``
the row counts and each OP's rows in and out (times differ from run to run; a fused group's order
comes from the probe's timings, so per-OP rows are compared when both runs ran the same order).  Inputs come from
``../shared/data`` (IMDB reviews, ImageNet photos, Data-Juicer's test videos).  Exit status 1
when anything differs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DJ_SHARED_DIR", REPO.parent / "shared")) / "data"
WORK = REPO / "bench" / "work" / "same_outputs"

RUNNER = ("import sys\n"
          "try:\n    from dj_assets.cli import process_main\n"
          "except ImportError:\n    from dj_ops.cli import process_main\n"
          "sys.exit(process_main(sys.argv[1:]))\n")


def imdb_input(n: int) -> Path:
    path = WORK / "inputs" / f"imdb_{n}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(SHARED / "text" / "imdb_reviews_100k.jsonl.gz", "rb") as src, open(path, "wb") as out:
            for i, line in enumerate(src):
                if i >= n:
                    break
                out.write(line)
    return path


def image_input(n: int) -> Path:
    path = WORK / "inputs" / f"images_{n}.jsonl"
    photos = sorted((SHARED / "images" / "imagenet_sample").glob("*.JPEG"))[:n]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"<__dj__image> a photo of a {p.stem.split('_', 1)[1]}",
                                        "images": [str(p)]}) + "\n" for p in photos))
    return path


def video_input(copies: int) -> Path:
    path = WORK / "inputs" / f"videos_{copies}.jsonl"
    videos = sorted((SHARED / "dj_testdata" / "tests" / "ops" / "data").glob("*.mp4"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": f"<__dj__video> clip {i} of {v.stem}", "videos": [str(v)]}) + "\n"
                            for i in range(copies) for v in videos))
    return path


def tiny_models() -> dict[str, str]:
    base = WORK / "models"
    done = base / "models.json"
    if not done.exists():
        sys.path.insert(0, str(REPO))
        from tests.ops.tiny_vision_models import build_tiny_model_set

        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text(json.dumps(build_tiny_model_set(base)))
    return json.loads(done.read_text())


def text_recipe(name: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / "bench" / "recipes" / f"{name}.yaml").read_text())


def cases(docs: int) -> dict[str, tuple[dict, Path]]:
    text = imdb_input(docs)
    models = tiny_models()
    wide = {"min_score": -1e9, "max_score": 1e9}
    image_ops = [{"image_shape_filter": {"min_width": 300, "min_height": 300}},
                 {"image_aesthetics_filter": {"hf_scorer_model": models["aesthetics"], **wide}},
                 {"image_text_similarity_filter": {"hf_clip": models["clip"], **wide}},
                 {"image_aspect_ratio_filter": {"min_ratio": 0.7, "max_ratio": 1.5}},
                 {"image_nsfw_filter": {"hf_nsfw_model": models["vit"], **wide}}]
    sampling = {"frame_sampling_method": "uniform", "frame_num": 3}
    video_ops = [{"video_aesthetics_filter": {"hf_scorer_model": models["aesthetics"], **wide, **sampling}},
                 {"video_duration_filter": {"min_duration": 2}},
                 {"video_frames_text_similarity_filter": {"hf_clip": models["clip"], **wide, **sampling}},
                 {"video_resolution_filter": {"min_width": 300}}]
    dedup_ops = [{"whitespace_normalization_mapper": None},
                 {"document_deduplicator": {"lowercase": True}},
                 {"document_simhash_deduplicator": {"window_size": 4}},
                 {"text_length_filter": {"min_len": 200}},
                 {"document_minhash_deduplicator": {"jaccard_threshold": 0.5}}]
    out = {
        "text15": (text_recipe("imdb_text_15ops"), text),
        "text16": (text_recipe("imdb_text_16ops"), text),
        "text15_fused": ({**text_recipe("imdb_text_15ops"), "op_fusion": True}, text),
        "dedup_traced": ({"project_name": "dedup_traced", "open_tracer": True, "trace_num": 20,
                          "process": dedup_ops}, text),
        "image_fused": ({"project_name": "image_fused", "op_fusion": True, "process": image_ops},
                        image_input(300)),
        "video_fused": ({"project_name": "video_fused", "op_fusion": True, "np": 1, "process": video_ops},
                        video_input(6)),
    }
    try:
        import ray  # noqa: F401

        out["ray"] = ({**text_recipe("imdb_text_15ops"), "executor_type": "ray", "ray_address": "local"},
                      imdb_input(min(docs, 5000)))
    except ImportError:
        print("ray not installed: the ray case is skipped")
    return out


def run_case(checkout: Path, name: str, recipe: dict, data: Path, folder: Path, executor: str) -> float:
    import yaml

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    config = folder / "recipe.yaml"
    config.write_text(yaml.safe_dump({"np": 2, **recipe, "dataset_path": str(data),
                                      "export_path": str(folder / "out" / "out.jsonl")}))
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1",
           "DAGSTER_HOME": str(folder / "dagster_home"), "DJ_STORAGE_ROOT": str(folder / "storage")}
    (folder / "dagster_home").mkdir()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, "--config", str(config), "--executor", executor,
                           "--no-progress"], cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (folder / "log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} with {checkout} ({executor}) failed:\n{proc.stderr[-3000:]}")
    return seconds


def fingerprint(folder: Path) -> dict[str, str]:
    """What must be identical: every file under the output folder (the export, stats, bad rows,
    traces) by content, and the report's row counts; the plan's order of the OPs, which a fused
    group takes from the probe's timings, is kept apart."""
    out = {}
    base = folder / "out"
    for path in sorted(base.rglob("*")):
        if path.is_file() and path.name != "run_report.json" and ".spill" not in str(path):
            out[str(path.relative_to(base))] = hashlib.sha256(path.read_bytes()).hexdigest()
    report = json.loads((base / "run_report.json").read_text())
    out["report.rows"] = json.dumps([report["rows_in"], report["rows_out"], report["bad_rows"]])
    out["report.ops"] = json.dumps([(o["name"], o["rows_in"], o["rows_out"]) for o in report["ops"]])
    out["plan order"] = json.dumps([o["name"] for o in report["ops"]])
    return out


def stats_difference(a: Path, b: Path) -> float | None:
    """The largest difference between two stats files' numbers, row by row (None: other keys or rows)."""
    def numbers(value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield float(value)
        elif isinstance(value, list):
            for v in value:
                yield from numbers(v)

    rows_a, rows_b = a.read_text().splitlines(), b.read_text().splitlines()
    if len(rows_a) != len(rows_b):
        return None
    worst = 0.0
    for la, lb in zip(rows_a, rows_b):
        sa, sb = json.loads(la)["__dj__stats__"], json.loads(lb)["__dj__stats__"]
        if set(sa) != set(sb):
            return None
        for key in sa:
            pairs = list(zip(numbers(sa[key]), numbers(sb[key])))
            worst = max([worst, *(abs(x - y) for x, y in pairs)])
    return worst


def compare(name: str, reference: dict[str, str], other: dict[str, str], folders: tuple[Path, Path],
            dagster: bool) -> list[str]:
    """What differs.  The Dagster path lays out bad rows and traces per stage and writes the
    stats file whatever the chain's last OP: its export, row counts and stats (when the engine
    writes them) are compared; stats differing only in a float's last digits (models computed
    with another thread count) are reported with their largest difference, not as a difference."""
    keys = {"out.jsonl", "report.rows"} | ({"out_stats.jsonl"} & set(reference)) if dagster \
        else set(reference) | set(other)
    keys -= {"plan order", "report.ops"}
    if not dagster and reference["plan order"] == other["plan order"]:
        keys.add("report.ops")
    diffs = []
    for key in sorted(keys):
        if reference.get(key) == other.get(key):
            continue
        if key == "out_stats.jsonl" and key in reference and key in other:
            worst = stats_difference(folders[0] / "out" / key, folders[1] / "out" / key)
            if worst == 0.0:
                print(f"  {name}: the same stats, keys in another order")
                continue
            if worst is not None and worst < 1e-6:
                print(f"  {name}: stats equal but for floats' last digits (largest difference {worst:.1e})")
                continue
        diffs.append(key)
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, type=Path, help="the checkout to compare with")
    ap.add_argument("--after", default=REPO, type=Path, help="the checkout under test (default: this one)")
    ap.add_argument("--docs", type=int, default=20000, help="IMDB reviews in the text cases")
    ap.add_argument("--only", nargs="*", help="case names to run")
    ap.add_argument("--dagster", action="store_true", help="also the after checkout's default Dagster path")
    args = ap.parse_args()
    failed = []
    for name, (recipe, data) in cases(args.docs).items():
        if args.only and name not in args.only:
            continue
        runs = {"before": (args.before, "local"), "after": (args.after, "local")}
        if args.dagster and recipe.get("executor_type") != "ray":
            runs["after-dagster"] = (args.after, "dagster")
        prints, times = {}, {}
        for label, (checkout, executor) in runs.items():
            folder = WORK / "runs" / name / label
            times[label] = run_case(checkout.resolve(), name, recipe, data, folder, executor)
            prints[label] = fingerprint(folder)
        reference = prints["before"]
        diffs = {label: compare(name, reference, p, (WORK / "runs" / name / "before", WORK / "runs" / name / label),
                                label == "after-dagster")
                 for label, p in prints.items() if label != "before"}
        if prints["after"]["plan order"] != reference["plan order"]:
            print(f"  {name}: the probe ordered a fused group otherwise (timings): per-OP rows not compared")
        if label_diffs := {k: v for k, v in diffs.items() if v}:
            failed.append(name)
            print(f"{name}: DIFFERENT {label_diffs}")
        else:
            print(f"{name}: identical ({len(reference) - 3} files); "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    print("all identical" if not failed else f"differences in {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
