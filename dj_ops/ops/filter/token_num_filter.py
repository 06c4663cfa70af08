"""token_num_filter: ``num_token`` = number of tokens of the text with the Hugging Face tokenizer
``hf_tokenizer`` (no special tokens), as Data-Juicer.  The tokenizer is loaded from a local folder
or a hub id, once per process, and runs on the whole batch at once."""

from __future__ import annotations

import sys

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.models import count_tokens, hf_tokenizer


@register("token_num_filter")
class TokenNumFilter(Filter):
    stat_bounds = {"num_token": ("min_num", "max_num")}

    def __init__(
        self,
        hf_tokenizer: str = "EleutherAI/pythia-6.9b-deduped",
        min_num: int = 10,
        max_num: int = sys.maxsize,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hf_tokenizer = hf_tokenizer
        self.min_num = min_num
        self.max_num = max_num

    def compute_stats(self, batch: Batch) -> None:
        tokenizer = hf_tokenizer(self.hf_tokenizer, op_name=self.name, param="hf_tokenizer")
        batch.stats["num_token"] = count_tokens(tokenizer, self.texts(batch))
