"""image_aesthetics_filter: ``image_aesthetics_scores`` = the aesthetics predictor's output for every
distinct image of a sample (divided by 10 when the model id contains ``aesthetics-predictor``, as
Data-Juicer does for the LAION predictors, whose raw scores are in [0, 10]), kept when inside
[min_score, max_score] for any / all images.

The predictor (default ``shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE``) is a CLIP
ViT-L/14 vision tower with projection, L2-normalised, then an MLP head (see
:mod:`dj_ops.models.aesthetics`).  The tower runs batched (bf16 on GPU, fp32 on CPU); its embedding
is shared with any other OP of a fused group whose CLIP tower has the same weights (e.g.
image_text_similarity_filter on ``openai/clip-vit-large-patch14``).  The head runs in fp32.
"""

from __future__ import annotations

import copy
from typing import Any

from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.models import clip, runtime
from dj_ops.ops.base.image_model import ImageModelFilter
from dj_ops.ops.common import images

DEFAULT_SCORER = "shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE"
HEAD_BATCH = 64


@register("image_aesthetics_filter")
class ImageAestheticsFilter(ImageModelFilter):
    stat_bounds = {"image_aesthetics_scores": ("min_score", "max_score")}
    stat_key = "image_aesthetics_scores"
    intermediates = ("images", "pixels", "clip_image_embeds")

    def __init__(
        self,
        hf_scorer_model: str = "",
        trust_remote_code: bool = False,
        min_score: float = 0.5,
        max_score: float = 1.0,
        any_or_all: str = "any",
        **kwargs,
    ):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.hf_scorer_model = hf_scorer_model or DEFAULT_SCORER
        self.min_score = min_score
        self.max_score = max_score
        self.divide_by_ten = "aesthetics-predictor" in self.hf_scorer_model
        self.init_model(self.hf_scorer_model, "hf_scorer_model", trust_remote_code)

    def load_models(self) -> list[runtime.LoadedModel]:
        return [self._predictor()]

    def intermediate_keys(self) -> tuple[str, ...]:
        loaded = self._predictor()
        return clip.shared_keys(clip.adopt_tower(loaded, loaded.model.config), loaded.processor)

    def _predictor(self) -> runtime.LoadedModel:
        model_id, trust = self.hf_scorer_model, self.trust_remote_code

        def build(path: str, where: runtime.Placement) -> tuple[Any, Any]:
            from transformers import AutoConfig, CLIPImageProcessor

            from dj_ops.models.aesthetics import predictor_class

            config = AutoConfig.from_pretrained(path, trust_remote_code=trust)
            cls = predictor_class(model_id, getattr(config, "architectures", None))
            model = cls.from_pretrained(path, **where.dtype_kwargs()).to(where.device)
            return model, CLIPImageProcessor.from_pretrained(path)

        loaded = runtime.load_model("aesthetics", self.model_path(), self.placement(), build, name=model_id)
        if "head" not in loaded.extras:
            # a float32 CPU copy of the small head: scores do not depend on the tower's dtype/device
            loaded.extras["head"] = _CpuHead(loaded.model)
        return loaded

    def score_images(self, part: Batch, items: list[tuple[int, Any]]) -> list[Any]:
        loaded = self._predictor()
        tower = clip.adopt_tower(loaded, loaded.model.config)
        embeds = clip.image_embeddings(part, self, items, tower, loaded.processor)
        good = [e for e in embeds if not isinstance(e, images.ImageError)]
        scores = iter(runtime.fixed_size_map(loaded.extras["head"], good, HEAD_BATCH))
        out: list[Any] = []
        for e in embeds:
            if isinstance(e, images.ImageError):
                out.append(e)
            else:
                logit = next(scores)
                out.append(float((logit / 10.0 if self.divide_by_ten else logit)[0]))
        return out


class _CpuHead:
    """The predictor's head on the CPU in fp32, applied to raw (projected) tower embeddings."""

    def __init__(self, model: Any):
        self.layers = copy.deepcopy(model.head_module()).float().cpu().eval()

    def __call__(self, embeds: Any) -> Any:
        return self.layers(embeds / embeds.norm(dim=-1, keepdim=True))
