"""alphanumeric_filter: ``alnum_ratio = sum(c.isalnum() for c in text) / len(text)`` (0.0 for an
empty text); with ``tokenization=True`` instead ``alpha_token_ratio = sum(c.isalpha() for c in
text) / len(tokenizer.tokenize(text))`` (0.0 without tokens), as Data-Juicer.  Characters are
classified for the whole batch at once through per-code-point lookup tables built from
``str.isalnum`` / ``str.isalpha``.  Extension: ``hf_tokenizer`` (Data-Juicer hard-codes its
default) lets ``tokenization=True`` use a local copy of the tokenizer.
"""

from __future__ import annotations

import sys

import numpy as np

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.codepoints import char_class_table, codepoints, count_per_row
from dj_ops.ops.common.models import count_tokens, hf_tokenizer


@register("alphanumeric_filter")
class AlphanumericFilter(Filter):
    stat_bounds = {"alnum_ratio": ("min_ratio", "max_ratio")}

    def __init__(
        self,
        tokenization: bool = False,
        min_ratio: float = 0.25,
        max_ratio: float = sys.maxsize,
        hf_tokenizer: str = "EleutherAI/pythia-6.9b-deduped",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.tokenization = tokenization
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.hf_tokenizer = hf_tokenizer
        if tokenization:
            self.stat_bounds = {"alpha_token_ratio": ("min_ratio", "max_ratio")}

    def compute_stats(self, batch: Batch) -> None:
        texts = self.texts(batch)
        cps = codepoints(texts)
        if self.tokenization:
            counts = count_per_row(char_class_table("isalpha"), cps)
            tokenizer = hf_tokenizer(self.hf_tokenizer, op_name=self.name, param="hf_tokenizer")
            denominators = np.array(count_tokens(tokenizer, texts), dtype=np.int64)
        else:
            counts = count_per_row(char_class_table("isalnum"), cps)
            denominators = cps.lens
        ratios = np.where(denominators > 0, counts / np.maximum(denominators, 1), 0.0)
        (stat_key,) = self.stat_bounds
        batch.stats[stat_key] = ratios.tolist()
