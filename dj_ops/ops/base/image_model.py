"""The bases of the filters that score images with a model.

:class:`ImageModelFilter` gives every model-based image filter the same shape: the batch is cut
into row slices (decoded images live only as long as a slice; inside a fused group the slice is
shared by the group's OPs), each distinct image of a row gets a score, a row with an unusable image
is marked bad, and the stat holds one score per distinct image, as Data-Juicer's.
:class:`ImageClassifierFilter` scores with an image classifier's positive-class probability.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, ClassVar

from dj_ops.core.batch import Batch
from dj_ops.core.constants import SpecialTokens
from dj_ops.models import runtime
from dj_ops.models.runtime import BatchedInference, LoadedModel
from dj_ops.models.vision import image_processor_of, load_hf_model, run_on_pixels
from dj_ops.ops.common import images

from .intermediates import stats_by_slice
from .model import ModelOP
from .op import Filter

#: Data-Juicer's reductions of per-item scores (chunks of a text, frames of a video)
REDUCE_MODES = ("avg", "max", "min")


def reduce_scores(values: list[float], mode: str) -> float:
    """Data-Juicer's reduction of per-item values; 0.0 when there is none."""
    if not values:
        return 0.0
    if mode == "avg":
        return float(sum(values) / len(values))
    return float(max(values) if mode == "max" else min(values))


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
