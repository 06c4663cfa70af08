"""The image-text model of the sandbox: a linear probe on CLIP image embeddings.

The embeddings come from the project's model runtime (:mod:`dj_ops.models`): the CLIP model is
resolved and loaded as the CLIP-based OPs load it (a local folder, ``$DATA_JUICER_EXTERNAL_MODELS_HOME``,
the Hugging Face cache, the hub), its vision tower is shared with any OP of the same process
that uses the same tower, images are decoded and preprocessed as the image OPs do, and an image
that cannot be read is reported, never fatal: its row is left out of training or evaluation and
counted (``bad_images``).

Embeddings are cached per image under ``<sandbox work_dir>/embeddings/`` (keyed by the tower's
weights and the image processor's settings, and by each image's path, size and modification
time), so the baseline model, the held-out set and later trials reuse what an earlier job
computed.  The classifier is a seeded linear layer over z-scored (optionally L2-normalised)
embeddings trained with AdamW and cross-entropy; evaluation reports held-out accuracy, the
accuracy of always answering the most frequent training label (the bar a probe must clear), and
the cross-entropy.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from .data import read_rows, sample_rows
from .torch_device import pick_device, set_threads

#: rows embedded per batch: decoded images live only as long as one batch
EMBED_ROWS = 64


class ClipSettings(BaseModel):
    """The CLIP model of a ``clip_linear_probe`` and where rows keep their images."""

    model_config = ConfigDict(extra="forbid")
    #: a local folder or a hub id (resolved as the CLIP-based OPs resolve ``hf_clip``)
    model: str = "openai/clip-vit-base-patch32"
    #: the field with each row's image path (or a list of paths: the first one is used)
    image_key: str = "images"
    #: L2-normalise the embeddings before the probe (as CLIP compares them)
    normalize: bool = True


@dataclass(frozen=True)
class ImageColumns:
    """Where a batch keeps its images (what the image helpers of dj_ops read from an OP)."""

    image_key: str = "images"
    image_bytes_key: str = "image_bytes"


def _image_ref(value: Any) -> Any:
    """The first image of a row's image field (a path, or a one-element list of it); None when none."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _load_clip(model: str, device: str):
    from dj_ops.models import clip, runtime
    from dj_ops.models.vision import image_processor_of, load_hf_model

    path = runtime.resolve_model(model, op_name="TrainModel (clip_linear_probe)", param="clip.model")
    where = runtime.placement("cuda" if device in ("auto", "cuda") else "cpu")
    loaded = runtime.load_model("clip", path, where,
                                lambda p, w: load_hf_model(p, w, trust_remote_code=False, default_class="CLIPModel"),
                                name=model)
    tower = clip.adopt_tower(loaded, loaded.model.config.vision_config)
    return tower, image_processor_of(loaded.processor), where.device


def _file_key(ref: Any) -> str | None:
    """Cache key of an image file: path, size, mtime; None when it is not a readable file."""
    if not isinstance(ref, str):
        return None
    try:
        st = os.stat(ref)
    except OSError:
        return None
    return f"{os.path.abspath(ref)}|{st.st_size}|{int(st.st_mtime_ns)}"


class EmbeddingCache:
    """Image embeddings of one (tower, image processor) pair, one ``.npz`` file per pair."""

    def __init__(self, folder: Path | None, tower_fingerprint: str, processor_fingerprint: str):
        ident = f"{tower_fingerprint.split('#')[0]}:{processor_fingerprint}"
        self.path = None if folder is None else folder / f"{hashlib.sha256(ident.encode()).hexdigest()[:20]}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        self.added = 0
        if self.path is not None and self.path.is_file():
            with np.load(self.path) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"]))

    def save(self) -> None:
        if self.path is None or not self.added:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        keys = list(self.vectors)
        np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        tmp.replace(self.path)


def image_embeddings(refs: list[Any], model: str, device: str, cache_dir: Path | None,
                     log=print) -> tuple[list[np.ndarray | None], list[str | None]]:
    """The projected CLIP embedding (float32) of each image reference, or None with the reason."""
    from dj_ops.core.batch import Batch
    from dj_ops.models import clip
    from dj_ops.ops.common import images

    tower, processor, placed = _load_clip(model, device)
    cache = EmbeddingCache(cache_dir, tower.fingerprint, images.processor_fingerprint(processor))
    out: list[np.ndarray | None] = [None] * len(refs)
    errors: list[str | None] = [None] * len(refs)
    todo = []
    for i, ref in enumerate(refs):
        key = _file_key(ref)
        if ref is None:
            errors[i] = "no image"
        elif key is not None and key in cache.vectors:
            out[i] = cache.vectors[key]
        else:
            todo.append(i)
    columns = ImageColumns()
    t0 = time.perf_counter()
    for start in range(0, len(todo), EMBED_ROWS):
        part = todo[start: start + EMBED_ROWS]
        batch = Batch.from_rows([{columns.image_key: [refs[i]]} for i in part])
        items = [(r, k) for r, src in enumerate(images.sources(batch, columns)) for k in src]
        for (r, _), emb in zip(items, clip.image_embeddings(batch, columns, items, tower, processor)):
            i = part[r]
            if isinstance(emb, images.ImageError):
                errors[i] = str(emb)
                continue
            out[i] = emb.numpy().astype(np.float32)
            key = _file_key(refs[i])
            if key is not None:
                cache.vectors[key] = out[i]
                cache.added += 1
    cache.save()
    if cache.added:
        log(f"clip_linear_probe: embedded {cache.added} images with {model} on {placed} in "
            f"{time.perf_counter() - t0:.1f} s ({len(refs) - len(todo)} from the cache)")
    return out, errors


def _features(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    if normalize:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def _labelled(rows: list[dict], image_key: str, label_key: str, labels: list | None,
              clip_settings, device: str, cache_dir: Path | None, log) -> tuple[np.ndarray, list, dict[str, int]]:
    """(embeddings, labels) of the rows with a usable image and label; skipped rows counted by reason."""
    skipped: dict[str, int] = {}
    usable = []
    for r in rows:
        label = r[label_key]
        if label is None or (labels is not None and label not in labels):
            reason = "no label" if label is None else "label not seen in training"
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            usable.append(r)
    vecs, errors = image_embeddings([_image_ref(r[image_key]) for r in usable], clip_settings.model, device,
                                    cache_dir, log)
    keep = [i for i, v in enumerate(vecs) if v is not None]
    bad = [e for e in errors if e is not None]
    if bad:
        skipped["unusable image"] = len(bad)
        log(f"clip_linear_probe: {len(bad)} rows without a usable image, e.g. {bad[0]}")
    if not keep:
        return np.zeros((0, 0), dtype=np.float32), [], skipped
    return np.stack([vecs[i] for i in keep]), [usable[i][label_key] for i in keep], skipped


def train_probe(settings, out_dir: Path, cache_dir: Path | None, log=print) -> dict[str, Any]:
    """Train the probe on ``settings.train_dataset``; write ``model.pt`` and ``model.json``."""
    import torch

    c = settings.clip
    rows = read_rows(settings.train_dataset, [c.image_key, settings.label_key], settings.text_key)
    total_rows = len(rows)
    rows = sample_rows(rows, settings.max_rows, settings.seed)
    x, y_raw, skipped = _labelled(rows, c.image_key, settings.label_key, None, c, settings.device, cache_dir, log)
    if skipped:
        log(f"clip_linear_probe: left out of training: {skipped}")
    labels = sorted(set(y_raw), key=str)
    if len(labels) < 2:
        raise ValueError(f"TrainModel: {settings.label_key!r} needs at least two distinct labels among the rows "
                         f"with a usable image, got {labels}")
    index = {v: i for i, v in enumerate(labels)}
    y = np.array([index[v] for v in y_raw], dtype=np.int64)
    feats = _features(x, c.normalize)
    mean, std = feats.mean(0), feats.std(0) + 1e-6

    set_threads(settings.threads)
    device = pick_device(settings.device)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    probe = torch.nn.Linear(feats.shape[1], len(labels)).to(device)
    opt = torch.optim.AdamW(probe.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    xt = torch.from_numpy((feats - mean) / std).to(device)
    yt = torch.from_numpy(y).to(device)
    t0 = time.perf_counter()
    losses: list[float] = []
    for _ in range(settings.epochs):
        order = torch.from_numpy(rng.permutation(len(y))).to(device)
        epoch = []
        for start in range(0, len(y), settings.batch_size):
            idx = order[start: start + settings.batch_size]
            loss = torch.nn.functional.cross_entropy(probe(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch.append(float(loss.detach()))
        losses.append(float(np.mean(epoch)))
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        train_acc = float((probe(xt).argmax(-1) == yt).float().mean())

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": probe.weight.detach().cpu(), "bias": probe.bias.detach().cpu(),
                "mean": torch.from_numpy(mean), "std": torch.from_numpy(std)}, out_dir / "model.pt")
    counts = {str(v): int((y == i).sum()) for i, v in enumerate(labels)}
    meta = {"type": "clip_linear_probe", "labels": labels, "label_counts": counts, "label_key": settings.label_key,
            "text_key": settings.text_key, "clip": c.model_dump(), "embed_dim": int(feats.shape[1]),
            "seed": settings.seed}
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1))
    log(f"clip_linear_probe: {len(y)} images, labels {counts}, final loss {losses[-1]:.4f}, "
        f"train accuracy {train_acc:.3f}")
    return {
        "model_path": str(out_dir),
        "train_rows": int(len(y)),
        "source_rows": total_rows,
        "skipped_rows": int(sum(skipped.values())),
        "steps": settings.epochs * -(-len(y) // settings.batch_size),
        "final_train_loss": losses[-1],
        "train_accuracy": train_acc,
        "parameters": int(probe.weight.numel() + probe.bias.numel()),
        "seconds": round(seconds, 3),
        "device": device,
    }


def evaluate_probe(settings, meta: dict[str, Any], cache_dir: Path | None, log=print) -> dict[str, Any]:
    """Held-out accuracy of a probe, next to the majority-label accuracy and the cross-entropy."""
    import torch

    c = ClipSettings(**meta["clip"])
    label_key = settings.label_key or meta["label_key"]
    text_key = settings.text_key or meta["text_key"]
    rows = read_rows(settings.eval_dataset, [c.image_key, label_key], text_key)
    rows = rows[: settings.max_rows] if settings.max_rows else rows
    labels = meta["labels"]
    x, y_raw, skipped = _labelled(rows, c.image_key, label_key, labels, c, settings.device, cache_dir, log)
    if not y_raw:
        raise ValueError(f"EvaluateModel: no row of {settings.eval_dataset} has a usable image and a known label "
                         f"(left out: {skipped})")
    if skipped:
        log(f"clip_linear_probe: left out of evaluation: {skipped}")
    state = torch.load(Path(settings.model_path) / "model.pt", map_location="cpu")
    feats = (_features(x, c.normalize) - state["mean"].numpy()) / state["std"].numpy()
    y = torch.tensor([labels.index(v) for v in y_raw])
    with torch.no_grad():
        logits = torch.from_numpy(feats) @ state["weight"].T + state["bias"]
        loss = float(torch.nn.functional.cross_entropy(logits, y))
        accuracy = float((logits.argmax(-1) == y).float().mean())
    counts = meta["label_counts"]
    majority = max(labels, key=lambda v: counts[str(v)])
    return {"accuracy": accuracy, "majority_accuracy": float(np.mean([v == majority for v in y_raw])),
            "eval_loss": loss, "eval_rows": len(y_raw), "skipped_rows": int(sum(skipped.values()))}
