"""video_frames_text_similarity_filter: CLIP similarity between text chunks and their videos' frames.

As Data-Juicer: the text is split on the end-of-chunk token; a chunk with ``k`` video tokens is
paired with the next ``k`` videos of the sample (in list order) and its text without special
tokens.  Per chunk, ``logits_per_text / 100`` = ``exp(logit_scale) * cos(text, frame) / 100`` for
every sampled frame of those videos (``all_keyframes`` by default, or ``uniform`` with
``frame_num``; optionally flipped), reduced with ``reduce_mode`` (avg, max, min; 0.0 when the chunk
has no frame).  Chunks without video tokens are skipped.  The stat
``video_frames_text_similarity`` holds one value per chunk, kept when inside [min_score, max_score]
for any / all chunks.

The CLIP model, its text embedding and the frame embeddings are image_text_similarity_filter's:
frames go through the vision tower in batches, shared with the other OPs of a fused group that
use the same sampling and tower (video_aesthetics_filter on the same ViT embeds each frame once).
"""

from __future__ import annotations

from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.models import clip
from dj_ops.models.vision import image_processor_of
from dj_ops.ops.common import images, videos
from dj_ops.ops.base.video_model import VideoFrameModelFilter, reduce_scores
from dj_ops.ops.filter.image_text_similarity_filter import ImageTextSimilarityFilter


@register("video_frames_text_similarity_filter")
class VideoFramesTextSimilarityFilter(VideoFrameModelFilter):
    stat_bounds = {"video_frames_text_similarity": ("min_score", "max_score")}
    stat_key = "video_frames_text_similarity"
    intermediates = ("video_frames", "pixels", "clip_image_embeds")
    uses_text = True

    def __init__(
        self,
        hf_clip: str = "openai/clip-vit-base-patch32",
        trust_remote_code: bool = False,
        min_score: float = 0.1,
        max_score: float = 1.0,
        frame_sampling_method: str = "all_keyframes",
        frame_num: int = 3,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        any_or_all: str = "any",
        reduce_mode: str = "avg",
        video_special_token: str = "<__dj__video>",
        image_special_token: str = "<__dj__image>",
        audio_special_token: str = "<__dj__audio>",
        eoc_special_token: str = "<|__dj__eoc|>",
        **kwargs,
    ):
        super().__init__(frame_sampling_method, frame_num, reduce_mode, any_or_all, **kwargs)
        self.hf_clip = hf_clip
        self.min_score = min_score
        self.max_score = max_score
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.video_token = video_special_token
        self.eoc_token = eoc_special_token
        self.image_op = self.frame_op(
            ImageTextSimilarityFilter, hf_clip=hf_clip, trust_remote_code=trust_remote_code,
            horizontal_flip=horizontal_flip, vertical_flip=vertical_flip, image_special_token=image_special_token,
            audio_special_token=audio_special_token, video_special_token=video_special_token,
            eoc_special_token=eoc_special_token)

    def chunks(self, text: str, refs: list) -> list[tuple[str, list]]:
        """(text without special tokens, its videos) per chunk holding video tokens."""
        out = []
        offset = 0
        for chunk in text.split(self.eoc_token):
            count = chunk.count(self.video_token)
            if count == 0 or not chunk:
                continue
            clean = chunk
            for token in self.image_op.special_tokens:
                clean = clean.replace(token, "").strip()
            out.append((clean, refs[offset: offset + count]))
            offset += count
        return out

    def slice_stats(self, part: Batch) -> dict[str, list]:
        import torch

        loaded = self.image_op._clip()
        model = loaded.model
        refs = videos.row_videos(part, self.video_key)
        texts = self.texts(part)
        row_chunks = [self.chunks(t if isinstance(t, str) else "", refs[r]) if refs[r] else []
                      for r, t in enumerate(texts)]
        _, per_video = self.video_frames(part)
        frame_items = [fi for (r, _), fis in per_video.items() if r not in part.bad for fi in fis]
        tower = clip.adopt_tower(loaded, model.config.vision_config)
        flip = (self.horizontal_flip, self.vertical_flip)
        embeds = dict(zip(frame_items, clip.image_embeddings(part, self.frame_images, frame_items, tower,
                                                             image_processor_of(loaded.processor), flip)))
        for (r, _), e in embeds.items():
            if isinstance(e, images.ImageError):
                part.mark_bad(r, str(e))
        chunk_texts = [c for r, chunks in enumerate(row_chunks) if r not in part.bad for c, _ in chunks]
        text_embeds = iter(self.image_op._text_embeddings(loaded, chunk_texts))
        scale = model.logit_scale.detach().float().cpu().exp()
        out = []
        for r, chunks in enumerate(row_chunks):
            if r in part.bad:
                out.append([])
                continue
            sims = []
            for _, chunk_refs in chunks:
                text_unit = clip.unit(next(text_embeds)[None, :])
                frames = [embeds[fi] for ref in chunk_refs for fi in per_video[(r, videos.key_of(ref))]]
                if not frames:
                    sims.append(reduce_scores([], self.reduce_mode))
                    continue
                logits = torch.matmul(text_unit, clip.unit(torch.stack(frames)).t()) * scale / 100.0
                sims.append(float({"avg": torch.mean, "max": torch.max, "min": torch.min}[self.reduce_mode](logits)))
            out.append(sims)
        return {self.stat_key: out}
