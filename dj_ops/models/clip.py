"""CLIP image towers shared between models, and the image / text embeddings computed with them.

Two models whose vision towers hold the same weights (e.g. the aesthetics predictor
``shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE`` and ``openai/clip-vit-large-patch14``,
whose tower it was converted from) are recognised by a key of the tower (architecture settings,
attention implementation, device, tensor shapes and dtypes, sampled values) confirmed by comparing
every weight.  The second model
then uses the first one's tower (one copy in memory), and the image embedding (projected, not
normalised) is cached per batch under the tower's fingerprint and the image processor's settings:
OPs in one fused group compute it once per image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from dj_ops.core.batch import Batch
from dj_ops.ops.base.intermediates import slice_key
from dj_ops.ops.common import images

from . import runtime
from .runtime import BatchedInference, LoadedModel
from .vision import run_on_pixels

#: vision-config fields that change the computation (weights shapes do not show the head count)
_TOWER_SETTINGS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
                   "image_size", "patch_size", "hidden_act", "layer_norm_eps", "_attn_implementation")


@dataclass
class Tower:
    """A CLIP vision tower + projection resident in this process, with its shared inference."""

    fingerprint: str
    vision_model: Any
    visual_projection: Any
    inference: BatchedInference

    def embed(self, pixel_values: Any) -> Any:
        return self.visual_projection(self.vision_model(pixel_values=pixel_values).pooler_output)


#: towers resident in this process by fingerprint (released with the models)
_TOWERS: dict[str, Tower] = runtime.model_cache("clip_towers")


def _tower_tensors(vision_model: Any, visual_projection: Any) -> list[tuple[str, Any]]:
    return [(f"{prefix}{name}", t) for prefix, module in (("vision_model.", vision_model),
                                                          ("visual_projection.", visual_projection))
            for name, t in sorted(module.state_dict().items())]


def tower_key(vision_model: Any, visual_projection: Any, vision_config: Any, device: str) -> str:
    """A cheap identity of a tower: settings, device, every tensor's name, shape and dtype, and a
    sample of its values.  Equal towers have equal keys; :func:`adopt_tower` confirms a match
    by comparing all weights."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    settings = {k: getattr(vision_config, k, None) for k in _TOWER_SETTINGS}
    h.update(repr(sorted(settings.items())).encode())
    h.update(device.encode())
    for name, t in _tower_tensors(vision_model, visual_projection):
        flat = t.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 64)][:64].cpu().contiguous()
        if sample.element_size() == 2:  # numpy has no bfloat16: hash the raw 16-bit words
            sample = sample.view(torch.int16)
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


def _same_weights(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> bool:
    import torch

    return len(a) == len(b) and all(na == nb and torch.equal(ta, tb) for (na, ta), (nb, tb) in zip(a, b))


def adopt_tower(loaded: LoadedModel, vision_config: Any) -> Tower:
    """Register ``loaded.model``'s tower, or make it use an identical tower already registered.

    ``loaded.model`` must have ``vision_model`` and ``visual_projection`` attributes (CLIPModel,
    CLIPVisionModelWithProjection and subclasses).  The decision is made once per loaded model.
    """
    tower = loaded.extras.get("tower")
    if tower is None:
        model = loaded.model
        key = tower_key(model.vision_model, model.visual_projection, vision_config, loaded.where.device)
        mine = _tower_tensors(model.vision_model, model.visual_projection)
        same = [t for fp, t in _TOWERS.items() if fp.split("#")[0] == key
                and _same_weights(mine, _tower_tensors(t.vision_model, t.visual_projection))]
        if same:
            tower = same[0]
            model.vision_model = tower.vision_model  # the duplicate tower is freed
            model.visual_projection = tower.visual_projection
        else:
            # a sampled-key collision between different towers gets a key of its own
            fp = key if key not in _TOWERS else f"{key}#{len(_TOWERS)}"
            tower = Tower(fp, model.vision_model, model.visual_projection, BatchedInference(loaded))
            _TOWERS[fp] = tower
        loaded.extras["tower"] = tower
    return tower


def image_embeddings(batch: Batch, op: Any, items: Sequence[tuple[int, Any]], tower: Tower,
                     image_processor: Any, flip: tuple[bool, bool] = (False, False)) -> list[Any]:
    """Projected CLIP image embeddings (float32, CPU) of ``items`` = [(row, image)], or ImageError.

    Cached per batch under the tower and the preprocessing, so every OP using the same tower on
    the same (shared) batch slice gets the values computed once.
    """
    proc_fp = hashlib.md5(images.processor_fingerprint(image_processor).encode()).hexdigest()
    key = slice_key(f"image_embeds:{tower.fingerprint}:{proc_fp}:{int(flip[0])}{int(flip[1])}:"
                    f"{op.image_key}:{op.image_bytes_key}")
    return run_on_pixels(batch, op, items, image_processor, tower.inference, tower.embed, flip, cache_key=key)


def shared_keys(tower: Tower, image_processor: Any, flip: tuple[bool, bool] = (False, False)) -> tuple[str, ...]:
    """The intermediates a CLIP-based OP shares (for the fusion planner's display and costs)."""
    proc = hashlib.md5(images.processor_fingerprint(image_processor).encode()).hexdigest()[:10]
    flipped = "" if flip == (False, False) else f":flip{int(flip[0])}{int(flip[1])}"
    return ("images", f"pixels:{proc}{flipped}", f"clip_image_embeds:{tower.fingerprint[:10]}:{proc}{flipped}")


def unit(x: Any) -> Any:
    """``x / ||x||`` computed as transformers' CLIPModel does (pow-sum-pow)."""
    import torch

    return x / torch.pow(torch.sum(torch.pow(x, 2), dim=-1, keepdim=True), 0.5)
