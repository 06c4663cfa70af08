"""video_nsfw_filter: ``video_nsfw_score`` = per distinct video of a sample, the NSFW probabilities
(``softmax(logits)[1]`` of an image classifier, ``Falconsai/nsfw_image_detection`` by default) of
its sampled frames (``all_keyframes`` by default, or ``uniform`` with ``frame_num``) reduced with
``reduce_mode`` (avg, max, min; 0.0 without frames), kept when inside [min_score, max_score] for
any / all videos.

The frames are scored exactly as image_nsfw_filter scores images; sampled frames are shared with
the other video OPs of a fused group using the same sampling.  ``video_backend`` is accepted for
compatibility (frames are always decoded with PyAV); ``frame_field`` is not supported.
"""

from __future__ import annotations

from typing import Optional

from dj_ops.core.registry import register
from dj_ops.ops.base.video_model import VideoFrameModelFilter
from dj_ops.ops.filter.image_nsfw_filter import ImageNSFWFilter


@register("video_nsfw_filter")
class VideoNSFWFilter(VideoFrameModelFilter):
    stat_bounds = {"video_nsfw_score": ("min_score", "max_score")}
    stat_key = "video_nsfw_score"
    intermediates = ("video_frames", "pixels")

    def __init__(
        self,
        hf_nsfw_model: str = "Falconsai/nsfw_image_detection",
        trust_remote_code: bool = False,
        min_score: float = 0.0,
        max_score: float = 0.5,
        frame_field: Optional[str] = None,
        frame_sampling_method: str = "all_keyframes",
        frame_num: int = 3,
        reduce_mode: str = "avg",
        any_or_all: str = "any",
        video_backend: str = "av",
        **kwargs,
    ):
        super().__init__(frame_sampling_method, frame_num, reduce_mode, any_or_all, frame_field, **kwargs)
        self.hf_nsfw_model = hf_nsfw_model
        self.min_score = min_score
        self.max_score = max_score
        self.video_backend = video_backend
        self.image_op = self.frame_op(ImageNSFWFilter, hf_nsfw_model=hf_nsfw_model, trust_remote_code=trust_remote_code)
