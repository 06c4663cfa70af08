"""Running image models over the images of a batch: pixel tensors through a model, batched, and
Hugging Face models loaded as Data-Juicer loads them (the filters built on this are
:mod:`dj_ops.ops.base.image_model`)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from dj_ops.core.batch import Batch
from dj_ops.ops.common import images

from . import runtime
from .runtime import BatchedInference, pad_stack, prefetched


def run_on_pixels(batch: Batch, op: Any, items: Sequence[tuple[int, Any]], image_processor: Any,
                  infer: BatchedInference, forward: Callable[[Any], Any],
                  flip: tuple[bool, bool] = (False, False), cache_key: str | None = None) -> list[Any]:
    """``forward`` applied to the pixel tensors of ``items`` = [(row, image)]: one CPU tensor per
    item, or the item's ImageError.  With ``cache_key`` the outputs are cached per batch (and
    shared with any OP asking for the same key).  The next micro-batch is decoded and preprocessed
    on a background thread while the current one runs."""
    proc_fp = images.processor_fingerprint(image_processor)
    if cache_key is None:
        cache: list[dict] = [{} for _ in range(len(batch))]
    else:
        cache = batch.cached(cache_key, lambda: [{} for _ in range(len(batch))])
    todo = [(r, k) for r, k in dict.fromkeys(items) if k not in cache[r]]
    where = infer.loaded.where

    def prepare(chunk: Sequence[tuple[int, Any]]) -> list[tuple[tuple[int, Any], Any]]:
        return list(zip(chunk, images.pixel_values(batch, op, chunk, image_processor, proc_fp, flip)))

    for prepared in prefetched(map(prepare, infer.chunks(todo))):
        good = []
        for (r, k), px in prepared:
            if isinstance(px, images.ImageError):
                cache[r][k] = px
            else:
                good.append(((r, k), px))
        if good:
            outs = infer.run([[px for _, px in good]], forward, lambda xs, n: pad_stack(xs, n, where))
            for ((r, k), _), out in zip(good, outs):
                cache[r][k] = out
    return [cache[r][k] for r, k in items]


def load_hf_model(path: str, where: runtime.Placement, *, trust_remote_code: bool,
                  default_class: str) -> tuple[Any, Any]:
    """An HF model as Data-Juicer loads it: the class named first in the config's ``architectures``
    (``default_class`` when there is none) and ``AutoProcessor``; placed and cast for ``where``."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    names = getattr(config, "architectures", None) or [default_class]
    cls = getattr(transformers, names[0], None) or getattr(transformers, default_class)
    model = cls.from_pretrained(path, trust_remote_code=trust_remote_code, **where.dtype_kwargs())
    # the slow (PIL) image processors, as Data-Juicer gets them
    processor = transformers.AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, use_fast=False)
    return model.to(where.device), processor


def image_processor_of(processor: Any) -> Any:
    """The image part of an HF processor (a CLIPProcessor holds a tokenizer too)."""
    return getattr(processor, "image_processor", processor)
