"""image_watermark_filter: ``image_watermark_prob`` = ``softmax(logits)[1]`` of an image classifier
(``amrul-hzz/watermark_detector``) for every distinct image of a sample; an image passes when its
probability is <= prob_threshold; the sample is kept when any / all images pass.
"""

from __future__ import annotations

from dj_ops.core.registry import register
from dj_ops.ops.base.image_model import ImageClassifierFilter


@register("image_watermark_filter")
class ImageWatermarkFilter(ImageClassifierFilter):
    stat_bounds = {"image_watermark_prob": (None, "prob_threshold")}
    stat_key = "image_watermark_prob"

    def __init__(
        self,
        hf_watermark_model: str = "amrul-hzz/watermark_detector",
        trust_remote_code: bool = False,
        prob_threshold: float = 0.8,
        any_or_all: str = "any",
        **kwargs,
    ):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.hf_watermark_model = hf_watermark_model
        self.prob_threshold = prob_threshold
        self.init_model(hf_watermark_model, "hf_watermark_model", trust_remote_code)
