"""A tiny Hugging Face fast tokenizer trained on a few sentences, saved like a hub download."""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "Today is Sunday and it's a happy day!",
    "Do you need a cup of coffee?",
    "This paper proposed a novel method on LLM pretraining.",
    "Sur la plateforme MT4, plusieurs manières d'accéder à ces fonctionnalités sont conçues.",
    "The movie was long, the actors were great and the story was told well.",
]


def build_tiny_tokenizer(folder: Path) -> Path:
    """BPE over whitespace-split words, with [BOS]/[EOS] added around each text by its post-processor
    (so counting must leave special tokens out, as ``tokenize`` does)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(vocab_size=150, special_tokens=["[UNK]", "[BOS]", "[EOS]"]))
    specials = [(name, tok.token_to_id(name)) for name in ("[BOS]", "[EOS]")]
    tok.post_processor = processors.TemplateProcessing(single="[BOS] $A [EOS]", special_tokens=specials)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]")
    wrapped.save_pretrained(folder)
    return folder
