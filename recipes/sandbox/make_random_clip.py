"""Write a CLIP with openai/clip-vit-base-patch32's architecture and *random* weights to a folder.

Model hubs are unreachable on the project's machines; this gives the ImageNet sandbox
(imagenet_clip_sandbox.yaml) a model of the real size to run with.  Its embeddings carry no
learned meaning, only what a random network keeps of the pixels (colour, texture statistics):
scores obtained with it say nothing about a real CLIP.  Usage (from the repository root):

    .venv/bin/python recipes/sandbox/make_random_clip.py outputs/models/openai/clip-vit-base-patch32
    DATA_JUICER_EXTERNAL_MODELS_HOME=outputs/models .venv/bin/python -m sandbox_jobs \\
        --config recipes/sandbox/imagenet_clip_sandbox.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(folder: Path, seed: int = 0) -> None:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from tests.ops.tiny_vision_models import _clip_tokenizer

    tokenizer = _clip_tokenizer(folder / "_tokenizer")
    n = len(tokenizer)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=n, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77, bos_token_id=n - 2, eos_token_id=n - 1,
                         pad_token_id=n - 1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
        projection_dim=512))
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    print(f"wrote a random-weight CLIP ViT-B/32 to {folder}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
