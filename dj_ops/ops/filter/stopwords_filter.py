"""stopwords_filter: keep samples whose share of stopwords lies in [min_ratio, max_ratio].

``stopwords_ratio = (number of refined words in the stopword list of lang) / (number of refined
words)``; words lower-cased, split on space / newline / tab (or SentencePiece pieces), stripped of
special characters, plus their n-gram joins with ``use_words_aug``; 0.0 without words.

Difference from DJ: with no ``stopwords_dir`` the lists come from the ``stopwordsiso`` package
(see ``dj_ops.ops.common.word_lists``) instead of DJ's downloaded ``stopwords.json``.
"""

from __future__ import annotations

from dj_ops.core.registry import register
from dj_ops.ops.common.word_lists import WordListRatioFilter


@register("stopwords_filter")
class StopWordsFilter(WordListRatioFilter):
    stat_bounds = {"stopwords_ratio": ("min_ratio", "max_ratio")}
    stat_key = "stopwords_ratio"
    words_type = "stopwords"

    def __init__(
        self,
        lang: str = "en",
        tokenization: bool = False,
        min_ratio: float = 0.3,
        max_ratio: float = 1.0,
        stopwords_dir: str | None = None,
        use_words_aug: bool = False,
        words_aug_group_sizes: list[int] = [2],  # noqa: B006 (DJ's default; never mutated)
        words_aug_join_char: str = "",
        sp_model_dir: str | None = None,
        **kwargs,
    ):
        """``stopwords_dir``: folder with DJ-style ``*stopwords*.json`` or ``<lang>.txt`` lists
        (default: package stopwordsiso).  ``sp_model_dir``: folder holding ``{lang}.sp.model``
        for ``tokenization=True`` (not a DJ parameter; default: DJ's model cache)."""
        super().__init__(**kwargs)
        self._setup(lang, tokenization, min_ratio, max_ratio, stopwords_dir, use_words_aug,
                    words_aug_group_sizes, words_aug_join_char, sp_model_dir)
