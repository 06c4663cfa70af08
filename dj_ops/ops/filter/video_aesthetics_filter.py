"""video_aesthetics_filter: ``video_frames_aesthetics_score`` = per distinct video of a sample, the
aesthetics scores of its sampled frames (``uniform`` with ``frame_num`` frames, or
``all_keyframes``) reduced with ``reduce_mode`` (avg, max, min; 0.0 without frames), kept when
inside [min_score, max_score] for any / all videos.

The frames are scored exactly as image_aesthetics_filter scores images (same model classes and
loading; divided by 10 when the model id contains ``aesthetics-predictor``, as Data-Juicer does);
the frames and their CLIP embeddings are shared with other video OPs of a fused group using the
same sampling (and, for the embeddings, the same CLIP tower).  ``frame_field`` (frames stored as
image files) is not supported.
"""

from __future__ import annotations

from typing import Optional

from dj_ops.core.registry import register
from dj_ops.ops.base.video_model import VideoFrameModelFilter
from dj_ops.ops.filter.image_aesthetics_filter import ImageAestheticsFilter


@register("video_aesthetics_filter")
class VideoAestheticsFilter(VideoFrameModelFilter):
    stat_bounds = {"video_frames_aesthetics_score": ("min_score", "max_score")}
    stat_key = "video_frames_aesthetics_score"
    intermediates = ("video_frames", "pixels", "clip_image_embeds")

    def __init__(
        self,
        hf_scorer_model: str = "",
        trust_remote_code: bool = False,
        min_score: float = 0.4,
        max_score: float = 1.0,
        frame_field: Optional[str] = None,
        frame_sampling_method: str = "uniform",
        frame_num: int = 3,
        any_or_all: str = "any",
        reduce_mode: str = "avg",
        **kwargs,
    ):
        super().__init__(frame_sampling_method, frame_num, reduce_mode, any_or_all, frame_field, **kwargs)
        self.min_score = min_score
        self.max_score = max_score
        self.image_op = self.frame_op(ImageAestheticsFilter, hf_scorer_model=hf_scorer_model,
                                      trust_remote_code=trust_remote_code)
        self.hf_scorer_model = self.image_op.hf_scorer_model
