"""Image-model benchmark on the CPU: OP fusion (one CLIP ViT-L/14 pass shared by two filters) and,
optionally, the seed chain side by side with Data-Juicer 1.6.1.

Models are full-size architectures with random weights (the compute is the real one), written once
to ``bench/work/models`` as local folders, the way users point OPs at downloaded models:

- ``clip-vit-large-patch14``: CLIPModel, ViT-L/14 @224 vision tower + 12-layer text tower;
- ``aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE``: the aesthetics predictor architecture
  (CLIP ViT-L/14 vision tower with projection + MLP head) whose tower holds the CLIP model's weights,
  as the published predictor holds openai/clip-vit-large-patch14's;
- ``nsfw_image_detection``: ViTForImageClassification, ViT-B/16 @224, 2 labels (Falconsai's shape).

The text tokenizer is a byte-level CLIP tokenizer (no merges): token ids differ from OpenAI's
vocabulary, the text tower's compute does not.

**Fusion** (default): ``image_aesthetics_filter`` + ``image_text_similarity_filter`` (both on the
shared ViT-L/14 tower) + ``image_aspect_ratio_filter``, run with ``op_fusion: false`` and ``true``
through ``dj-process --executor local``; thresholds are set from a calibration run on the first
images so that every filter removes some rows.  Reports wall times, the saving, and whether rows and
stats agree.

**Data-Juicer** (``--dj``): the seed chain ``image_aesthetics_filter`` (ViT-L/14),
``image_aspect_ratio_filter``, ``image_nsfw_filter`` (ViT-B/16) with both engines on the same model
folders (Data-Juicer loads a local folder given as the model id).

Usage:
    .venv/bin/python bench/image_bench.py --images 200 --np 2          # about 10 min on 2 cores
    .venv/bin/python bench/image_bench.py --quick                       # 32 images
    .venv/bin/python bench/image_bench.py --images 200 --np 2 --dj
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

import yaml

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from run_text_bench import machine_description, run_measured  # noqa: E402

WORK = BENCH_DIR / "work" / "image"
MODELS = BENCH_DIR / "work" / "models"
PHOTOS = BENCH_DIR.parent.parent / "shared" / "data" / "images" / "imagenet_sample"
OURS = BENCH_DIR.parent / ".venv" / "bin" / "dj-process"
DJ = BENCH_DIR / ".venv-dj" / "bin" / "dj-process"
#: transformers 4.57 + simple-aesthetics-predictor for Data-Juicer's image OPs (setup_dj_venv.sh)
DJ_VISION_OVERLAY = BENCH_DIR / ".venv-dj" / "vision-overlay"
IMG = "<__dj__image>"
CLIP_DIR = MODELS / "clip-vit-large-patch14"
AESTHETICS_DIR = MODELS / "aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE"
NSFW_DIR = MODELS / "nsfw_image_detection"
#: aspect-ratio bounds keeping about 87% of the ImageNet sample (wide panoramas and tall portraits go)
ASPECT = {"min_ratio": 0.7, "max_ratio": 1.55}
#: each model filter removes roughly this fraction of the calibration images
MODEL_CUT_QUANTILE = 0.15


# ---------------------------------------------------------------------------------------------
# Models


def build_models() -> None:
    """Random-weight ViT-L/14 CLIP, aesthetics predictor (same tower) and ViT-B/16 classifier."""
    if (NSFW_DIR / "config.json").exists():
        return
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPVisionConfig,
                              ViTConfig, ViTForImageClassification, ViTImageProcessor)

    from dj_ops.models.aesthetics import AestheticsPredictorV2Linear
    from tests.ops.tiny_vision_models import _clip_tokenizer

    print("building random-weight models in", MODELS, flush=True)
    MODELS.mkdir(parents=True, exist_ok=True)
    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=224, patch_size=14)
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                 num_attention_heads=12, max_position_embeddings=77),
                                vision_config=vision, projection_dim=768))
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=_clip_tokenizer(MODELS / "_tokenizer"))
    clip.save_pretrained(CLIP_DIR)
    processor.save_pretrained(CLIP_DIR)

    torch.manual_seed(1)
    predictor = AestheticsPredictorV2Linear(CLIPVisionConfig(**vision, projection_dim=768))
    predictor.vision_model.load_state_dict(clip.vision_model.state_dict())
    predictor.visual_projection.load_state_dict(clip.visual_projection.state_dict())
    predictor.save_pretrained(AESTHETICS_DIR)
    processor.save_pretrained(AESTHETICS_DIR)  # Data-Juicer loads a CLIPProcessor from the predictor folder

    torch.manual_seed(2)
    nsfw = ViTForImageClassification(ViTConfig(num_labels=2, id2label={0: "normal", 1: "nsfw"},
                                               label2id={"normal": 0, "nsfw": 1}))
    nsfw.save_pretrained(NSFW_DIR)
    ViTImageProcessor().save_pretrained(NSFW_DIR)


# ---------------------------------------------------------------------------------------------
# Data and thresholds


def write_input(n: int) -> Path:
    """``n`` rows, one photo each, in name order; past the last photo they start again (a row is
    still decoded and scored on its own: nothing is shared between rows)."""
    files = sorted(glob.glob(str(PHOTOS / "*.JPEG")))
    if not files:
        raise SystemExit(f"no photos (*.JPEG) in {PHOTOS}")
    path = WORK / f"imagenet_{n}.jsonl"
    WORK.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for i in range(n):
            p = files[i % len(files)]
            label = Path(p).stem.split("_", 1)[-1].replace("_", " ")
            f.write(json.dumps({"text": f"{IMG}a photo of a {label}", "images": [p]}) + "\n")
    return path


def ours_command() -> list[str]:
    """Our ``dj-process``: the project's venv, else this interpreter (a machine with the packages
    installed another way, e.g. the GPU machine with carried wheels on PYTHONPATH)."""
    if OURS.exists():
        return [str(OURS)]
    return [sys.executable, "-c", "import sys; from dj_assets.cli import process_main; sys.exit(process_main())"]


def calibrate(n: int = 16) -> dict[str, float]:
    """Model thresholds at the MODEL_CUT_QUANTILE of scores on the first ``n`` photos (cached)."""
    cache = MODELS / (f"thresholds-{n}.json" if PHOTOS.name == "imagenet_sample" else f"thresholds-{PHOTOS.name}-{n}.json")
    if cache.exists():
        return json.loads(cache.read_text())
    import numpy as np

    from dj_ops.core.batch import Batch
    from dj_ops.core.registry import load_all_ops

    rows = [json.loads(line) for line in write_input(n).read_text().splitlines()]
    batch = Batch.from_rows(rows)
    ops = load_all_ops()
    aes = ops["image_aesthetics_filter"](hf_scorer_model=str(AESTHETICS_DIR))
    its = ops["image_text_similarity_filter"](hf_clip=str(CLIP_DIR))
    nsfw = ops["image_nsfw_filter"](hf_nsfw_model=str(NSFW_DIR))
    batch.shared_slice = True  # one slice of a fused group: the OPs share its intermediates
    for op in (aes, its, nsfw):
        op.compute_stats(batch)
    q = MODEL_CUT_QUANTILE

    def cut(key: str, upper: bool = False) -> float:
        vals = [v[0] for v in batch.stats[key]]
        return round(float(np.quantile(vals, 1 - q if upper else q)), 6)

    out = {"aesthetics_min": cut("image_aesthetics_scores"), "similarity_min": cut("image_text_similarity"),
           "nsfw_max": cut("image_nsfw_score", upper=True)}
    cache.write_text(json.dumps(out))
    return out


# ---------------------------------------------------------------------------------------------
# Runs


def fusion_chain(t: dict[str, float]) -> list[dict]:
    return [
        {"image_aesthetics_filter": {"hf_scorer_model": str(AESTHETICS_DIR), "min_score": t["aesthetics_min"],
                                     "max_score": 1.0e9}},
        {"image_text_similarity_filter": {"hf_clip": str(CLIP_DIR), "min_score": t["similarity_min"]}},
        {"image_aspect_ratio_filter": dict(ASPECT)},
    ]


def seed_chain(t: dict[str, float]) -> list[dict]:
    return [
        {"image_aesthetics_filter": {"hf_scorer_model": str(AESTHETICS_DIR), "min_score": t["aesthetics_min"],
                                     "max_score": 1.0e9}},
        {"image_aspect_ratio_filter": dict(ASPECT)},
        {"image_nsfw_filter": {"hf_nsfw_model": str(NSFW_DIR), "max_score": t["nsfw_max"]}},
    ]


def run_ours(name: str, data: Path, process: list[dict], np_: int, fusion: bool, timeout: float) -> dict:
    run_dir = WORK / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    recipe = {"project_name": name, "dataset_path": str(data), "export_path": str(run_dir / "out.jsonl"),
              "np": np_, "op_fusion": fusion, "batch_size": 100, "work_dir": str(run_dir), "process": process}
    cfg = run_dir / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(recipe, sort_keys=False))
    report_path = run_dir / "report.json"
    res = run_measured(name, [*ours_command(), "--executor", "local", "--config", str(cfg), "--no-progress",
                              "--report", str(report_path)], run_dir / "out.jsonl", run_dir / "log.txt", timeout)
    if res.returncode != 0:
        raise SystemExit(f"{name} failed, see {run_dir / 'log.txt'}")
    report = json.loads(report_path.read_text())
    rows = [json.loads(line) for line in open(report["outputs"][0])]
    stats = [json.loads(line)["__dj__stats__"] for line in open(report["stats_file"])]
    return {"name": name, "wall_s": round(res.wall_s, 1), "rss_peak_gib": round(res.memory.rss / 2**30, 2),
            "mean_load": round(res.memory.mean_load, 2), "rows_out": len(rows), "rows": rows, "stats": stats, "ops": report["ops"], "plan": report["plan"]}


def max_stat_difference(a: list[dict], b: list[dict]) -> float:
    worst = 0.0
    for sa, sb in zip(a, b):
        for key, va in sa.items():
            for x, y in zip(va, sb[key]):
                worst = max(worst, abs(float(x) - float(y)))
    return worst


def fusion_bench(args: argparse.Namespace, t: dict[str, float]) -> dict:
    data = write_input(args.images)
    chain = fusion_chain(t)
    unfused = run_ours(f"unfused-{args.images}-np{args.np}", data, chain, args.np, False, args.timeout)
    fused = run_ours(f"fused-{args.images}-np{args.np}", data, chain, args.np, True, args.timeout)
    same_rows = unfused["rows"] == fused["rows"]
    diff = max_stat_difference(unfused["stats"], fused["stats"]) if same_rows else float("nan")
    saved = 1 - fused["wall_s"] / unfused["wall_s"]
    print(f"\nfusion, {args.images} photos, np={args.np}: unfused {unfused['wall_s']} s, fused {fused['wall_s']} s, "
          f"saved {saved:.0%}; rows identical: {same_rows} ({fused['rows_out']} kept); "
          f"max |stat difference| {diff:.2e}")
    for run in (unfused, fused):
        print(f"  {run['name']}: " + ", ".join(f"{o['name']} {o['rows_in']}->{o['rows_out']} ({o['cpu_seconds']} s)"
                                                for o in run["ops"]))
    return {"images": args.images, "np": args.np, "thresholds": t, "aspect": ASPECT,
            "unfused_s": unfused["wall_s"], "fused_s": fused["wall_s"], "saved": round(saved, 3),
            "rows_identical": same_rows, "rows_out": fused["rows_out"], "max_stat_difference": diff,
            "unfused_ops": unfused["ops"], "fused_ops": fused["ops"], "fused_plan": fused["plan"],
            "peak_rss_gib": {"unfused": unfused["rss_peak_gib"], "fused": fused["rss_peak_gib"]},
            "mean_load_1min": {"unfused": unfused["mean_load"], "fused": fused["mean_load"]}}


def run_dj(name: str, data: Path, process: list[dict], np_: int, timeout: float) -> dict:
    run_dir = WORK / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_dir / "out.jsonl"
    recipe = {"project_name": name, "dataset_path": str(data), "export_path": str(out), "np": np_,
              "work_dir": str(run_dir), "ds_cache_dir": str(run_dir / "hf-cache"), "open_monitor": False,
              "process": process}
    cfg = run_dir / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(recipe, sort_keys=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(run_dir / "hf-cache"),
           "PYTHONPATH": str(DJ_VISION_OVERLAY)}
    res = run_measured(name, [str(DJ), "--config", str(cfg)], out, run_dir / "log.txt", timeout, env=env)
    found = sorted(run_dir.glob("out*.jsonl"))
    rows = [json.loads(line) for f in found if "stats" not in f.name for line in open(f)]
    stats = [json.loads(line)["__dj__stats__"] for f in found if "stats" in f.name for line in open(f)]
    return {"name": name, "wall_s": round(res.wall_s, 1), "rss_peak_gib": round(res.memory.rss / 2**30, 2),
            "mean_load": round(res.memory.mean_load, 2), "returncode": res.returncode, "rows": rows,
            "stats": stats}


def stat_differences(dj: dict, ours: dict) -> dict[str, float]:
    """Largest |ours - DJ| per stat over the rows both kept (DJ writes stats rounded to 10 digits)."""
    theirs = {r["images"][0]: st for r, st in zip(dj["rows"], dj["stats"])}
    worst: dict[str, float] = {}
    for r, st in zip(ours["rows"], ours["stats"]):
        other = theirs.get(r["images"][0])
        for key, vals in (st.items() if other else ()):
            for x, y in zip(vals, other.get(key, [])):
                worst[key] = max(worst.get(key, 0.0), abs(float(x) - float(y)))
    return worst


def dj_bench(args: argparse.Namespace, t: dict[str, float]) -> dict:
    data = write_input(args.images)
    chain = seed_chain(t)
    dj = run_dj(f"dj-seed-{args.images}-np{args.np}", data, chain, args.np, args.timeout)
    ours = run_ours(f"ours-seed-{args.images}-np{args.np}", data, chain, args.np, True, args.timeout)
    key = [r["images"][0] for r in dj["rows"]]
    mine = [r["images"][0] for r in ours["rows"]]
    agree = len(set(key) & set(mine))
    total = args.images
    disagree = sorted(set(key) ^ set(mine))
    agreement = 1 - len(disagree) / total
    diffs = stat_differences(dj, ours)
    print(f"\nseed chain, {total} photos, np={args.np}: Data-Juicer {dj['wall_s']} s ({len(key)} kept, exit "
          f"{dj['returncode']}), ours {ours['wall_s']} s ({len(mine)} kept): {dj['wall_s'] / ours['wall_s']:.2f}x; "
          f"decisions agree on {agreement:.1%} ({agree} kept by both; differing: {disagree[:5]}); "
          f"max |stat difference| on rows kept by both: {', '.join(f'{k} {v:.1e}' for k, v in diffs.items())}")
    return {"images": total, "np": args.np, "dj_s": dj["wall_s"], "ours_s": ours["wall_s"],
            "speedup": round(dj["wall_s"] / ours["wall_s"], 2), "dj_kept": len(key), "ours_kept": len(mine),
            "agreement": round(agreement, 4), "differing": disagree, "max_stat_difference": diffs,
            "ours_ops": ours["ops"], "ours_plan": ours["plan"],
            "peak_rss_gib": {"dj": dj["rss_peak_gib"], "ours": ours["rss_peak_gib"]},
            "mean_load_1min": {"dj": dj["mean_load"], "ours": ours["mean_load"]}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="32 photos")
    ap.add_argument("--dj", action="store_true", help="also run the seed chain against Data-Juicer 1.6.1")
    ap.add_argument("--skip-fusion", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)
    if args.quick:
        args.images = 32
    t0 = time.perf_counter()
    build_models()
    thresholds = calibrate()
    result: dict = {"machine": machine_description(), "command": " ".join(sys.argv)}
    if not args.skip_fusion:
        result["fusion"] = fusion_bench(args, thresholds)
    if args.dj:
        result["data_juicer"] = dj_bench(args, thresholds)
    parts = ([] if args.skip_fusion else ["fusion"]) + (["dj"] if args.dj else [])
    out = WORK / f"result-{args.images}-np{args.np}-{'-'.join(parts) or 'none'}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nresult: {out} ({time.perf_counter() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
