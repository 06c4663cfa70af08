"""image_nsfw_filter: ``image_nsfw_score`` = ``softmax(logits)[1]`` of an image classifier
(``Falconsai/nsfw_image_detection``, a ViT-B/16) for every distinct image of a sample, kept when
inside [min_score, max_score] for any / all images.  Batched over images (bf16 on GPU, fp32 on CPU).
"""

from __future__ import annotations

from dj_ops.core.registry import register
from dj_ops.ops.base.image_model import ImageClassifierFilter


@register("image_nsfw_filter")
class ImageNSFWFilter(ImageClassifierFilter):
    stat_bounds = {"image_nsfw_score": ("min_score", "max_score")}
    stat_key = "image_nsfw_score"

    def __init__(
        self,
        hf_nsfw_model: str = "Falconsai/nsfw_image_detection",
        trust_remote_code: bool = False,
        min_score: float = 0.0,
        max_score: float = 0.5,
        any_or_all: str = "any",
        **kwargs,
    ):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.hf_nsfw_model = hf_nsfw_model
        self.min_score = min_score
        self.max_score = max_score
        self.init_model(hf_nsfw_model, "hf_nsfw_model", trust_remote_code)
