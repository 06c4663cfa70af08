"""The base of the video filters that score sampled frames with an image model.

A video filter holds the image OP whose model and scoring it reuses (``image_aesthetics_filter``,
``image_nsfw_filter``, ``image_text_similarity_filter``), pointed at the sampled frames instead of
an image field (:class:`dj_ops.ops.common.videos.FrameImages`).  Frames, their pixel tensors and
their CLIP embeddings are therefore cached per batch slice under the sampling: two video OPs with
the same sampling in a fused group decode each video once, and on the same CLIP tower embed each
frame once.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dj_ops.core.batch import Batch
from dj_ops.models import runtime
from dj_ops.ops.common import images, videos

from .image_model import REDUCE_MODES, reduce_scores
from .intermediates import stats_by_slice
from .op import Filter

#: key frames per video assumed when sizing slices (the count is known only after decoding)
KEYFRAMES_PER_VIDEO = 8


class VideoFrameModelFilter(Filter):
    """One score per distinct video of a sample: its frames' scores reduced with ``reduce_mode``."""

    default_accelerator = "cuda"
    uses_text = False
    stat_key: ClassVar[str] = ""

    def __init__(self, frame_sampling_method: str, frame_num: int, reduce_mode: str, any_or_all: str,
                 frame_field: str | None = None, **kwargs):
        if frame_field:
            raise ValueError(f"{self.name}: frame_field (frames stored as image files) is not supported; "
                             "the frames are sampled from the videos")
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.frame_field = frame_field
        if frame_sampling_method not in videos.SAMPLING_METHODS:
            raise ValueError(f"frame_sampling_method must be one of {list(videos.SAMPLING_METHODS)}, "
                             f"got {frame_sampling_method!r}")
        if reduce_mode not in REDUCE_MODES:
            raise ValueError(f"reduce_mode must be one of {list(REDUCE_MODES)}, got {reduce_mode!r}")
        if int(frame_num) < 1:
            raise ValueError(f"frame_num must be a positive integer, got {frame_num!r}")
        self.frame_sampling_method = frame_sampling_method
        self.frame_num = int(frame_num)
        self.reduce_mode = reduce_mode
        self.frame_images = videos.FrameImages(self.video_key, frame_sampling_method, self.frame_num)
        self.image_op: Any = None

    def frame_op(self, image_op_class: type, **params: Any) -> Any:
        """The image OP scoring this filter's frames (its model is checked now, loaded lazily)."""
        return image_op_class(image_key=self.frame_images.image_key, image_bytes_key=self.frame_images.image_bytes_key,
                              accelerator=self.accelerator, **params)

    def frames_per_video(self) -> int:
        return self.frame_num if self.frame_sampling_method == "uniform" else KEYFRAMES_PER_VIDEO

    def placement(self) -> runtime.Placement:
        return self.image_op.placement()

    def slice_rows(self) -> int:
        return max(1, self.image_op.slice_rows() // self.frames_per_video())

    def probe_rows(self) -> int:
        return max(1, self.image_op.probe_rows() // self.frames_per_video())

    def load_models(self) -> list[runtime.LoadedModel]:
        return self.image_op.load_models()

    def intermediate_keys(self) -> tuple[str, ...]:
        suffix = videos.sampling_suffix(self.frame_sampling_method, self.frame_num)
        return (f"video_frames:{suffix}",) + tuple(f"{key}@{suffix}" for key in self.image_op.intermediate_keys()
                                                     if key != "images")

    def compute_stats(self, batch: Batch) -> None:
        stats_by_slice(batch, self.slice_rows(), self.slice_stats)

    def video_frames(self, part: Batch) -> tuple[list[list], dict[tuple[int, Any], list]]:
        """Distinct videos per row and, per (row, video), its frames' image items; rows with an
        unusable video are marked bad."""
        refs = [videos.distinct(row) for row in videos.row_videos(part, self.video_key)]
        items = [(r, key) for r, row in enumerate(refs) for key in row]
        per_video = {}
        for item, got in zip(items, self.frame_images.register(part, items)):
            if isinstance(got, videos.VideoError):
                part.mark_bad(item[0], str(got))
            else:
                per_video[item] = got
        return refs, per_video

    def slice_stats(self, part: Batch) -> dict[str, list]:
        refs, per_video = self.video_frames(part)
        frame_items = [fi for (r, _), fis in per_video.items() if r not in part.bad for fi in fis]
        scores = dict(zip(frame_items, self.image_op.score_images(part, frame_items)))
        out = []
        for r, row in enumerate(refs):
            values = [[scores[fi] for fi in per_video[(r, key)]] for key in row] if r not in part.bad else []
            err = next((s for vals in values for s in vals if isinstance(s, images.ImageError)), None)
            if err is not None:
                part.mark_bad(r, str(err))
            out.append([] if r in part.bad else [reduce_scores(vals, self.reduce_mode) for vals in values])
        return {self.stat_key: out}
