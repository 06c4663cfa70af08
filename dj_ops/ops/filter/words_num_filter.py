"""words_num_filter: keep samples whose word count lies in [min_num, max_num].

``num_words = len(words_refinement(get_words(text), strip_special_chars=True))``: words split on
space / newline / tab (or SentencePiece pieces with ``tokenization=True``), special characters
stripped from both ends, words left empty not counted; no lower-casing.
"""

from __future__ import annotations

import sys

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.text import batch_word_counts, load_sentencepiece


@register("words_num_filter")
class WordsNumFilter(Filter):
    stat_bounds = {"num_words": ("min_num", "max_num")}
    intermediates = ("words",)

    def __init__(
        self,
        lang: str = "en",
        tokenization: bool = False,
        min_num: int = 10,
        max_num: int = sys.maxsize,
        sp_model_dir: str | None = None,
        **kwargs,
    ):
        """``sp_model_dir``: folder holding ``{lang}.sp.model`` for ``tokenization=True`` (not a DJ
        parameter; default: DJ's model cache, see ``load_sentencepiece``)."""
        super().__init__(**kwargs)
        self.lang = lang
        self.min_num = min_num
        self.max_num = max_num
        self.tokenizer = load_sentencepiece(lang, sp_model_dir, self.name) if tokenization else None

    def compute_stats(self, batch: Batch) -> None:
        batch.stats["num_words"] = batch_word_counts(batch, self.text_key, self.tokenizer).tolist()
