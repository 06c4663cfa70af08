"""image_text_similarity_filter: CLIP similarity between text chunks and their images.

As Data-Juicer: the text is split on the end-of-chunk token; a chunk with ``k`` image tokens is
paired with the next ``k`` images of the sample (in list order) and its text without special tokens
(each token removed, then whitespace stripped).  Per chunk, ``logits_per_text / 100`` =
``exp(logit_scale) * cos(text, image) / 100`` for each of its images (optionally flipped first),
reduced with ``reduce_mode`` (avg, max, min); chunks without image tokens are skipped.  The stat
``image_text_similarity`` holds one value per chunk, kept when inside [min_score, max_score] for
any / all chunks.

Batched: all images of a batch slice go through the vision tower together (the embedding is shared
with other OPs of a fused group on the same tower, e.g. image_aesthetics_filter), all chunk texts
through the text tower together (padded to the model's maximum length, which leaves the pooled EOS
output unchanged).  A row whose image cannot be read, or whose text has more image tokens than it
has images left for a chunk, is bad input.
"""

from __future__ import annotations

from typing import Any

from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.models import clip, runtime
from dj_ops.models.runtime import BatchedInference, pad_stack
from dj_ops.models.vision import image_processor_of, load_hf_model
from dj_ops.ops.base.image_model import REDUCE_MODES, ImageModelFilter
from dj_ops.ops.common import images


@register("image_text_similarity_filter")
class ImageTextSimilarityFilter(ImageModelFilter):
    stat_bounds = {"image_text_similarity": ("min_score", "max_score")}
    stat_key = "image_text_similarity"
    intermediates = ("images", "pixels", "clip_image_embeds")
    uses_text = True

    def __init__(
        self,
        hf_clip: str = "openai/clip-vit-base-patch32",
        trust_remote_code: bool = False,
        min_score: float = 0.1,
        max_score: float = 1.0,
        horizontal_flip: bool = False,
        vertical_flip: bool = False,
        any_or_all: str = "any",
        reduce_mode: str = "avg",
        image_special_token: str = "<__dj__image>",
        audio_special_token: str = "<__dj__audio>",
        video_special_token: str = "<__dj__video>",
        eoc_special_token: str = "<|__dj__eoc|>",
        **kwargs,
    ):
        super().__init__(any_or_all=any_or_all, **kwargs)
        if reduce_mode not in REDUCE_MODES:
            raise ValueError(f"reduce_mode must be one of {list(REDUCE_MODES)}, got {reduce_mode!r}")
        self.hf_clip = hf_clip
        self.min_score = min_score
        self.max_score = max_score
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.reduce_mode = reduce_mode
        self.image_token = image_special_token
        self.eoc_token = eoc_special_token
        # Data-Juicer removes its special tokens in this order, stripping after each
        self.special_tokens = (image_special_token, audio_special_token, video_special_token, eoc_special_token)
        self.init_model(hf_clip, "hf_clip", trust_remote_code)

    def load_models(self) -> list[runtime.LoadedModel]:
        return [self._clip()]

    def intermediate_keys(self) -> tuple[str, ...]:
        loaded = self._clip()
        tower = clip.adopt_tower(loaded, loaded.model.config.vision_config)
        return clip.shared_keys(tower, image_processor_of(loaded.processor), (self.horizontal_flip, self.vertical_flip))

    def _clip(self) -> runtime.LoadedModel:
        trust = self.trust_remote_code
        return runtime.load_model(
            "clip", self.model_path(), self.placement(),
            lambda path, where: load_hf_model(path, where, trust_remote_code=trust, default_class="CLIPModel"),
            name=self.hf_clip)

    def chunks(self, text: str, refs: list) -> list[tuple[str, list]] | None:
        """(text without special tokens, image references) per chunk holding image tokens; None
        when a chunk finds no image left."""
        out = []
        offset = 0
        for chunk in text.split(self.eoc_token):
            count = chunk.count(self.image_token)
            if count == 0 or not chunk:
                continue
            keys = refs[offset: offset + count]
            if not keys:
                return None
            clean = chunk
            for token in self.special_tokens:
                clean = clean.replace(token, "").strip()
            out.append((clean, keys))
            offset += count
        return out

    def slice_stats(self, part: Batch) -> dict[str, list]:
        import torch

        loaded = self._clip()
        model = loaded.model
        refs = images.row_images(part, self.image_key)
        srcs = images.sources(part, self)
        texts = self.texts(part)
        row_chunks = []
        for r, text in enumerate(texts):
            chunks = self.chunks(text if isinstance(text, str) else "", refs[r]) if refs[r] else []
            if chunks is None:
                part.mark_bad(r, "the text has more image tokens than the sample has images")
                chunks = []
            row_chunks.append(chunks)
        items = [(r, k) for r, src in enumerate(srcs) if r not in part.bad for k in src]
        tower = clip.adopt_tower(loaded, model.config.vision_config)
        flip = (self.horizontal_flip, self.vertical_flip)
        embeds = dict(zip(items, clip.image_embeddings(part, self, items, tower, image_processor_of(loaded.processor), flip)))
        for r, k in items:
            if isinstance(embeds[(r, k)], images.ImageError) and r not in part.bad:
                part.mark_bad(r, str(embeds[(r, k)]))
        chunk_texts = [c for r, chunks in enumerate(row_chunks) if r not in part.bad for c, _ in chunks]
        text_embeds = iter(self._text_embeddings(loaded, chunk_texts))
        scale = model.logit_scale.detach().float().cpu().exp()
        reduce = {"avg": torch.mean, "max": torch.max, "min": torch.min}[self.reduce_mode]
        out = []
        for r, chunks in enumerate(row_chunks):
            if r in part.bad:
                out.append([])
                continue
            sims = []
            for _, keys in chunks:
                text_unit = clip.unit(next(text_embeds)[None, :])
                image_unit = clip.unit(torch.stack([embeds[(r, k)] for k in keys]))
                logits = torch.matmul(text_unit, image_unit.t()) * scale / 100.0
                sims.append(float(reduce(logits)))
            out.append(sims)
        return {self.stat_key: out}

    def _text_embeddings(self, loaded: runtime.LoadedModel, texts: list[str]) -> list[Any]:
        if not texts:
            return []
        model = loaded.model
        tokenizer = loaded.processor.tokenizer
        max_len = model.config.text_config.max_position_embeddings
        enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
        rows = list(zip(enc["input_ids"], enc["attention_mask"]))
        infer = loaded.extras.setdefault("text_inference", BatchedInference(loaded))
        where = loaded.where

        def collate(batch: list, size: int) -> tuple[Any, Any]:
            return pad_stack([ids for ids, _ in batch], size, where), pad_stack([m for _, m in batch], size, where)

        def embed(inputs: tuple[Any, Any]) -> Any:
            ids, mask = inputs
            return model.text_projection(model.text_model(input_ids=ids, attention_mask=mask).pooler_output)

        return infer.run(infer.chunks(rows), embed, collate)
