"""Video-OP benchmark on the CPU: OP fusion on a 4-OP video chain and, side by side, Data-Juicer
1.6.1 on the same chain.

The chain (recipe order) is ``video_duration_filter`` (<= 30 s), ``video_resolution_filter``
(width >= 400), ``video_aesthetics_filter`` and ``video_frames_text_similarity_filter``, both
sampling 3 frames uniformly and both on the same CLIP ViT-L/14 tower (the aesthetics predictor's
tower holds the CLIP model's weights, as the published predictor's does).  Fused, each video is
decoded once and each frame embedded once for both model filters; unfused, each filter samples
and embeds on its own.  Models are bench/image_bench.py's full-size random-weight ones
(bench/work/models).  The input is Data-Juicer's 9 test videos (../shared/data/dj_testdata),
repeated to ``--samples`` rows, each with its own caption; the model thresholds are set from a
calibration run on the 9 videos so that every filter removes some rows.

``--order model-first`` writes the same four filters with the two model filters first, as a recipe
may list them: the unfused run (and Data-Juicer, which never reorders these filters: its
``op_fusion`` would put all four in one fused filter that scores every row with every model) then
embeds every video before the cheap filters drop any row, while the fused plan's probe puts the
cheap filters first.

Data-Juicer runs the same recipe with ``video_backend: av`` on the duration filter: its default
``ffmpeg`` backend needs the ffmpeg binary, which this machine lacks (without it every sample is
dropped).

Usage (wrap in the shared lock):
    flock /tmp/bench.lock .venv/bin/python bench/video_bench.py --samples 200 --np 2 --dj
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import image_bench  # noqa: E402
from image_bench import AESTHETICS_DIR, CLIP_DIR, build_models, max_stat_difference  # noqa: E402
from run_text_bench import machine_description  # noqa: E402

WORK = BENCH_DIR / "work" / "video"
VIDEOS = BENCH_DIR.parent.parent / "shared" / "data" / "dj_testdata" / "tests" / "ops" / "data"
VID = "<__dj__video>"
SUBJECTS = ["a city street", "a dog playing", "people talking", "a kitchen", "a beach at sunset", "a football match",
            "a cartoon", "a concert"]
DURATION = {"max_duration": 30, "video_backend": "av"}
RESOLUTION = {"min_width": 400}
SAMPLING = {"frame_sampling_method": "uniform", "frame_num": 3}
#: each model filter removes about this fraction of the calibration rows
MODEL_CUT_QUANTILE = 0.25


def video_paths() -> list[str]:
    paths = [str(VIDEOS / f"video{i}.mp4") for i in range(1, 10)]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise SystemExit(f"Data-Juicer's test videos are missing: {missing[:3]} (../shared/data absent?)")
    return paths


def rows(n: int) -> list[dict]:
    paths = video_paths()
    return [{"text": f"{VID} {SUBJECTS[i % len(SUBJECTS)]}, clip {i}", "videos": [paths[i % len(paths)]]}
            for i in range(n)]


def write_input(n: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"videos_{n}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(n)))
    return path


def calibrate() -> dict[str, float]:
    """Model thresholds at the MODEL_CUT_QUANTILE of the scores of the first 18 rows (cached)."""
    cache = WORK / "thresholds.json"
    if cache.exists():
        return json.loads(cache.read_text())
    import numpy as np

    from dj_ops.core.batch import Batch
    from dj_ops.core.registry import load_all_ops

    ops = load_all_ops()
    batch = Batch.from_rows(rows(18))
    aes = ops["video_aesthetics_filter"](hf_scorer_model=str(AESTHETICS_DIR), **SAMPLING)
    sim = ops["video_frames_text_similarity_filter"](hf_clip=str(CLIP_DIR), **SAMPLING)
    batch.shared_slice = True  # one slice of a fused group: the OPs share its intermediates
    for op in (aes, sim):
        op.compute_stats(batch)

    def cut(key: str) -> float:
        return round(float(np.quantile([v[0] for v in batch.stats[key]], MODEL_CUT_QUANTILE)), 6)

    out = {"aesthetics_min": cut("video_frames_aesthetics_score"), "similarity_min": cut("video_frames_text_similarity")}
    WORK.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out))
    return out


def chain(t: dict[str, float], order: str = "cheap-first") -> list[dict]:
    cheap = [{"video_duration_filter": dict(DURATION)}, {"video_resolution_filter": dict(RESOLUTION)}]
    models = [
        {"video_aesthetics_filter": {"hf_scorer_model": str(AESTHETICS_DIR), "min_score": t["aesthetics_min"],
                                     "max_score": 1.0e9, **SAMPLING}},
        {"video_frames_text_similarity_filter": {"hf_clip": str(CLIP_DIR), "min_score": t["similarity_min"],
                                                 "max_score": 1.0e9, **SAMPLING}},
    ]
    return cheap + models if order == "cheap-first" else models + cheap


def kept_keys(run_rows: list[dict]) -> list[str]:
    return [r["text"] for r in run_rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--dj", action="store_true", help="also run the chain with Data-Juicer 1.6.1")
    ap.add_argument("--skip-fusion", action="store_true")
    ap.add_argument("--order", choices=["cheap-first", "model-first"], default="cheap-first",
                    help="recipe order of the four filters (see the module docstring)")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    build_models()
    thresholds = calibrate()
    image_bench.WORK = WORK  # image_bench's runners write their run folders under WORK / "runs"
    data = write_input(args.samples)
    process = chain(thresholds, args.order)
    result: dict = {"machine": machine_description(), "command": " ".join(sys.argv), "samples": args.samples,
                    "np": args.np, "order": args.order, "thresholds": thresholds}
    n, np_ = args.samples, args.np
    tag = f"{n}-np{np_}" + ("" if args.order == "cheap-first" else f"-{args.order}")
    if not args.skip_fusion:
        unfused = image_bench.run_ours(f"unfused-{tag}", data, process, np_, False, args.timeout)
        fused = image_bench.run_ours(f"fused-{tag}", data, process, np_, True, args.timeout)
        same = unfused["rows"] == fused["rows"]
        saved = 1 - fused["wall_s"] / unfused["wall_s"]
        result["fusion"] = {"unfused_s": unfused["wall_s"], "fused_s": fused["wall_s"], "saved": round(saved, 3),
                            "rows_identical": same, "rows_out": fused["rows_out"],
                            "max_stat_difference": max_stat_difference(unfused["stats"], fused["stats"]) if same else None,
                            "unfused_ops": unfused["ops"], "fused_ops": fused["ops"], "fused_plan": fused["plan"],
                            "peak_rss_gib": {"unfused": unfused["rss_peak_gib"], "fused": fused["rss_peak_gib"]},
                            "mean_load_1min": {"unfused": unfused["mean_load"], "fused": fused["mean_load"]}}
        print(f"\nfusion, {n} samples, np={np_}: unfused {unfused['wall_s']} s, fused {fused['wall_s']} s, "
              f"saved {saved:.0%}; rows identical: {same} ({fused['rows_out']} kept)")
        for run in (unfused, fused):
            print(f"  {run['name']}: " + ", ".join(f"{o['name']} {o['rows_in']}->{o['rows_out']} ({o['cpu_seconds']} s)"
                                                    for o in run["ops"]))
    if args.dj:
        dj = image_bench.run_dj(f"dj-{tag}", data, process, np_, args.timeout)
        # ours = the fused run above when there was one (same recipe, same input)
        ours = fused if not args.skip_fusion else image_bench.run_ours(f"fused-{tag}", data, process, np_,
                                                                        True, args.timeout)
        a, b = set(kept_keys(dj["rows"])), set(kept_keys(ours["rows"]))
        result["data_juicer"] = {"dj_s": dj["wall_s"], "ours_s": ours["wall_s"],
                                 "speedup": round(dj["wall_s"] / ours["wall_s"], 2), "dj_exit": dj["returncode"],
                                 "dj_kept": len(a), "ours_kept": len(b), "kept_by_both": len(a & b),
                                 "differing": sorted(a ^ b)[:20],
                                 "peak_rss_gib": {"dj": dj["rss_peak_gib"], "ours": ours["rss_peak_gib"]},
                                 "mean_load_1min": {"dj": dj["mean_load"], "ours": ours["mean_load"]}}
        print(f"\nData-Juicer {dj['wall_s']} s ({len(a)} kept, exit {dj['returncode']}), ours fused {ours['wall_s']} s "
              f"({len(b)} kept): {dj['wall_s'] / ours['wall_s']:.2f}x; kept by both {len(a & b)}")
    out = WORK / f"result-{tag}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nresult: {out} ({time.perf_counter() - t0:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
