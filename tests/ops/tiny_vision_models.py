"""Tiny random-weight vision models built from ``transformers`` configs and saved like hub
downloads, so tests load them through the same path users hit (a local folder)."""

from __future__ import annotations

import json
from pathlib import Path

VISION = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
              image_size=32, patch_size=8)
PROJECTION = 16


def _image_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})


def _clip_tokenizer(folder: Path):
    """A byte-level CLIP tokenizer without merges (every character is a token)."""
    from transformers import CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tokenizer = _clip_tokenizer(folder / "_tok")
    n = len(tokenizer)
    text = dict(vocab_size=n, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=40, bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=VISION, projection_dim=PROJECTION))
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=_image_processor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_tiny_aesthetics(folder: Path, tower_from: Path | None = None, seed: int = 1) -> Path:
    """An AestheticsPredictorV2Linear; with ``tower_from`` (a tiny CLIP folder) its vision tower
    and projection are that CLIP's, as the real predictor's are openai/clip-vit-large-patch14's."""
    import torch
    from transformers import CLIPModel, CLIPVisionConfig

    from dj_ops.models.aesthetics import AestheticsPredictorV2Linear

    torch.manual_seed(seed)
    model = AestheticsPredictorV2Linear(CLIPVisionConfig(**VISION, projection_dim=PROJECTION))
    if tower_from is not None:
        source = CLIPModel.from_pretrained(tower_from)
        model.vision_model.load_state_dict(source.vision_model.state_dict())
        model.visual_projection.load_state_dict(source.visual_projection.state_dict())
    # a wider spread of scores than the default init gives, so thresholds can split samples
    with torch.no_grad():
        model.layers[-1].weight.mul_(50.0)
    model.save_pretrained(folder)
    _image_processor().save_pretrained(folder)
    return folder


def build_tiny_vit_classifier(folder: Path, seed: int = 2) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = ViTConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                       image_size=32, patch_size=8, num_labels=2, id2label={0: "normal", 1: "nsfw"},
                       label2id={"normal": 0, "nsfw": 1})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_tiny_model_set(base: Path) -> dict[str, str]:
    """A CLIP, an aesthetics predictor on that CLIP's vision tower (its folder name follows Data-Juicer's
    rule: "aesthetics-predictor" -> scores / 10, "v2" + "linear") and a ViT classifier, under ``base``."""
    clip_dir = build_tiny_clip(base / "clip")
    return {
        "clip": str(clip_dir),
        "aesthetics": str(build_tiny_aesthetics(base / "aesthetics-predictor-v2-tiny-linearMSE", tower_from=clip_dir)),
        "vit": str(build_tiny_vit_classifier(base / "vit")),
    }
