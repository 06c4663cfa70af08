"""The aesthetics predictors of ``simple-aesthetics-predictor`` (the models Data-Juicer's
image_aesthetics_filter loads, e.g. ``shunk031/aesthetics-predictor-v2-sac-logos-ava1-l14-linearMSE``):
a CLIP vision tower with projection, the embedding divided by its L2 norm, then a head.

- V1: ``Linear(projection_dim, 1)`` named ``predictor``;
- V2 linear: ``layers`` = Linear(d, 1024), Dropout, Linear(1024, 128), Dropout, Linear(128, 64),
  Dropout, Linear(64, 16), Linear(16, 1);
- V2 ReLU: the same with a ReLU after each of the first four linear layers.

Parameter names match the published checkpoints, so their weights load unchanged.  The score is
the head's output (``logits``); Data-Juicer divides it by 10 when the model id contains
``aesthetics-predictor``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection


class _Predictor(CLIPVisionModelWithProjection):
    """CLIP vision tower + projection; subclasses add the head."""

    config_class = CLIPVisionConfig

    def head_module(self) -> nn.Module:
        """The layers applied to the L2-normalised embedding."""
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        embeds = self.visual_projection(self.vision_model(pixel_values=pixel_values).pooler_output)
        return self.head_module()(embeds / embeds.norm(dim=-1, keepdim=True))


class AestheticsPredictorV1(_Predictor):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        self.predictor = nn.Linear(config.projection_dim, 1)
        self.post_init()

    def head_module(self) -> nn.Module:
        return self.predictor


def _v2_layers(width: int, relu: bool) -> nn.Sequential:
    dims = [(width, 1024, 0.2), (1024, 128, 0.2), (128, 64, 0.1), (64, 16, None)]
    layers: list[nn.Module] = []
    for d_in, d_out, dropout in dims:
        layers.append(nn.Linear(d_in, d_out))
        if relu:
            layers.append(nn.ReLU())
        if dropout is not None:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, 1))
    return nn.Sequential(*layers)


class AestheticsPredictorV2Linear(_Predictor):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        self.layers = _v2_layers(config.projection_dim, relu=False)
        self.post_init()

    def head_module(self) -> nn.Module:
        return self.layers


class AestheticsPredictorV2ReLU(AestheticsPredictorV2Linear):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        self.layers = _v2_layers(config.projection_dim, relu=True)
        self.post_init()


PREDICTORS = {cls.__name__: cls for cls in (AestheticsPredictorV1, AestheticsPredictorV2Linear, AestheticsPredictorV2ReLU)}


def predictor_class(model_id: str, architectures: list[str] | None) -> type[_Predictor]:
    """The class named by the checkpoint's config, else Data-Juicer's rule on the model id
    ("v1"; "v2" with "linear"; "v2" with "relu")."""
    for name in architectures or []:
        if name in PREDICTORS:
            return PREDICTORS[name]
    if "v1" in model_id:
        return AestheticsPredictorV1
    if "v2" in model_id and "linear" in model_id:
        return AestheticsPredictorV2Linear
    if "v2" in model_id and "relu" in model_id:
        return AestheticsPredictorV2ReLU
    raise ValueError(
        f"{model_id!r} is not an aesthetics predictor: its config names none of {sorted(PREDICTORS)} and its "
        "id has neither 'v1' nor 'v2' with 'linear'/'relu'"
    )
