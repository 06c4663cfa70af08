"""Running image models over the images of a batch, and the base class of the model filters.

:class:`ImageModelFilter` gives every model-based image filter the same shape: the batch is cut
into row slices (decoded images live only as long as a slice; inside a fused group the slice is
shared by the group's OPs), each distinct image of a row gets a score, a row with an unusable image
is marked bad, and the stat holds one score per distinct image, as Data-Juicer's.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, Callable, ClassVar, Sequence

from dj_ops.core.batch import Batch
from dj_ops.core.constants import SpecialTokens
from dj_ops.ops.base import Filter
from dj_ops.ops.base.intermediates import stats_by_slice
from dj_ops.ops.base.model import ModelOP
from dj_ops.ops.common import images

from . import runtime
from .runtime import BatchedInference, LoadedModel, pad_stack, prefetched


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


class ImageModelFilter(ModelOP, Filter):
    """A filter scoring every distinct image of a sample with a model (``accelerator: cuda``)."""

    uses_text = False
    intermediates = ("images", "pixels")
    #: the stat this filter writes (one score per distinct image)
    stat_key: ClassVar[str] = ""
    #: what marks an image's place in the text (the OPs that read text and images set their own)
    image_token: str = SpecialTokens.image

    def sample_batch(self, rows: int) -> Batch:
        """``rows`` samples of one 512x384 JPEG each (given as bytes) with a caption."""
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (512, 384), (120, 90, 60)).save(buf, format="JPEG")
        blob = buf.getvalue()
        return Batch({self.text_key: [f"{self.image_token} a photo"] * rows,
                      self.image_key: [[f"synthetic-{i}.jpg"] for i in range(rows)],
                      self.image_bytes_key: [[blob] for _ in range(rows)]})

    def intermediate_keys(self) -> tuple[str, ...]:
        """What this OP can share with others (for the fusion planner): decoded images, the pixel
        tensors of its preprocessing and, for CLIP-based OPs, the embedding of its tower."""
        return ("images",) + tuple(f"pixels:{_short(images.processor_fingerprint(p))}"
                                   for p in self.image_processors())

    def image_processors(self) -> list[Any]:
        return [image_processor_of(m.processor) for m in self.load_models()]

    def compute_stats(self, batch: Batch) -> None:
        stats_by_slice(batch, self.slice_rows(), self.slice_stats)

    def slice_stats(self, part: Batch) -> dict[str, list]:
        srcs = images.sources(part, self)
        items = images.image_items(srcs)
        scores = dict(zip(items, self.score_images(part, items)))
        out = []
        for r, src in enumerate(srcs):
            err = next((s for k in src if isinstance(s := scores[(r, k)], images.ImageError)), None)
            if err is not None:
                part.mark_bad(r, str(err))
                out.append([])
            else:
                out.append([scores[(r, k)] for k in src])
        return {self.stat_key: out}

    def score_images(self, part: Batch, items: list[tuple[int, Any]]) -> list[Any]:
        """A float (or the ImageError) for every (row, image) of ``items``."""
        raise NotImplementedError


def _short(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()[:10]


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


class ImageClassifierFilter(ImageModelFilter):
    """Scores = ``softmax(logits)[:, 1]`` of an image classifier (nsfw, watermark)."""

    def load_models(self) -> list[LoadedModel]:
        return [self._classifier()]

    def _classifier(self) -> LoadedModel:
        trust = self.trust_remote_code
        return runtime.load_model(
            "image_classifier", self.model_path(), self.placement(),
            lambda path, where: load_hf_model(path, where, trust_remote_code=trust,
                                              default_class="AutoModelForImageClassification"),
            name=self.model_id)

    def score_images(self, part: Batch, items: list[tuple[int, Any]]) -> list[Any]:
        import torch

        loaded = self._classifier()
        infer = loaded.extras.setdefault("inference", BatchedInference(loaded))

        def positive_probability(pixel_values: Any) -> Any:
            logits = loaded.model(pixel_values=pixel_values).logits.float()
            return torch.softmax(logits, dim=-1)[:, 1]

        outs = run_on_pixels(part, self, items, image_processor_of(loaded.processor), infer, positive_probability)
        return [o if isinstance(o, images.ImageError) else float(o) for o in outs]
