"""Issue 4's GPU figures as one prepared run (``bench/gpu_run.sh`` starts it on the GPU machine).

1. The seed chain (image_aesthetics_filter on CLIP ViT-L/14, image_aspect_ratio_filter,
   image_nsfw_filter on ViT-B/16; full-size random-weight models from ``image_bench``) over
   ``--images`` rows, fused, through ``dj-process --executor local``: images per second, whole
   command (start-up and model loads included) and engine time.
2. Unless ``--skip-fusion``: the fusion chain (aesthetics + text similarity on one ViT-L/14 tower +
   aspect ratio) unfused and fused: the saving, and whether rows and stats agree.

Photos: ``../shared``'s ImageNet sample when present, else 1,000 synthetic JPEGs of ImageNet-like
sizes (the machine with the GPU does not get ``../shared``); rows cycle over the photos, each row
decoded and scored on its own. Results: printed, and written to ``$OUT/gpu_bench.json`` (the
device tool brings ``$OUT`` back) and ``bench/work/image/gpu_bench.json``.

Usage (here, CPU, a quick check): .venv/bin/python bench/gpu_bench.py --images 16 --np 2 --skip-fusion
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import image_bench as ib  # noqa: E402
from run_text_bench import machine_description  # noqa: E402

SYNTHETIC_PHOTOS = 1000


def synthetic_photos(folder: Path, n: int = SYNTHETIC_PHOTOS) -> Path:
    """``n`` JPEGs of 300-640 x 240-500 pixels: smooth random colour fields with fine noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"s{i:05d}_synthetic_scene_{i % 37}.JPEG"
        if path.exists():
            continue
        w, h = int(rng.integers(300, 641)), int(rng.integers(240, 501))
        coarse = rng.integers(0, 256, (h // 24 + 2, w // 24 + 2, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path, quality=90)
    return folder


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (CPU run)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--np", type=int, default=0, help="worker processes (0: one per CPU core; on a GPU the "
                    "engine caps them by the memory each worker's models are measured to need)")
    ap.add_argument("--skip-fusion", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800)
    args = ap.parse_args(argv)
    np_ = args.np or os.cpu_count() or 1
    t0 = time.perf_counter()
    if not ib.PHOTOS.exists():
        ib.PHOTOS = synthetic_photos(ib.WORK / "synthetic_photos")
    ib.build_models()
    thresholds = ib.calibrate()
    data = ib.write_input(args.images)
    n = args.images
    result: dict = {"device": device_name(), "machine": machine_description(), "command": " ".join(sys.argv),
                    "images": n, "np": np_, "photos": str(ib.PHOTOS), "thresholds": thresholds}
    seed = ib.run_ours(f"gpu-seed-{n}-np{np_}", data, ib.seed_chain(thresholds), np_, True, args.timeout)
    report = json.loads((ib.WORK / "runs" / f"gpu-seed-{n}-np{np_}" / "report.json").read_text())
    result["seed_chain"] = {
        "wall_s": seed["wall_s"], "images_per_s": round(n / seed["wall_s"], 1),
        "engine_s": report["seconds"], "engine_images_per_s": round(n / report["seconds"], 1),
        "rows_out": seed["rows_out"], "ops": seed["ops"], "plan": seed["plan"], "peak_rss_gib": seed["rss_peak_gib"]}
    print(f"\nseed chain on {result['device']}: {n} images in {seed['wall_s']} s = {n / seed['wall_s']:.0f} images/s "
          f"(engine {report['seconds']:.1f} s = {n / report['seconds']:.0f} images/s), {seed['rows_out']} kept", flush=True)
    if not args.skip_fusion:
        result["fusion"] = ib.fusion_bench(argparse.Namespace(images=n, np=np_, timeout=args.timeout), thresholds)
    result["total_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=2, default=str)
    (ib.WORK / "gpu_bench.json").write_text(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_bench.json").write_text(text)
    print(f"\nresult: {ib.WORK / 'gpu_bench.json'} ({result['total_s']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
