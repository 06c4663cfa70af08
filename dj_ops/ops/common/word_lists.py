"""Stopword and flagged-word lists for stopwords_filter / flagged_words_filter.

Data-Juicer (DJ) reads ``{lang: [words]}`` from every ``*.json`` file whose name contains
``stopwords`` / ``flagged_words`` in ``stopwords_dir`` / ``flagged_words_dir`` (merging lists of
the same language), and downloads its own copy when the folder has none.  Here nothing is
downloaded:

* a folder given by the user is read as DJ reads it; failing DJ-style JSON files, it may hold one
  plain-text file per language, ``<lang>.txt``, one word per line;
* with no folder, the lists come from maintained PyPI packages: stopwords from ``stopwordsiso``
  (stopwords-iso, 58 languages), flagged words from ``glin-profanity`` (24 languages; its English
  list is the LDNOOBW list DJ's own English list comes from, with some additions and removals).
  These differ from DJ's downloaded lists, so stats differ from DJ's unless a folder holding DJ's
  ``stopwords.json`` / ``flagged_words.json`` is given.  Package entries are lower-cased, since
  they are compared with lower-cased words.  glin-profanity was chosen because it is maintained,
  MIT-licensed, depends only on typing-extensions and ships plain per-language word lists;
  better-profanity (English only, unreleased since 2020) and safetext (pulls in a language
  detector) fit less well.

``lang='all'`` uses the union of every language's list (unless the source has an ``all`` list).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.ops.common.text import batch_refined_words, load_sentencepiece

WordsType = Literal["stopwords", "flagged_words"]

#: ISO 639-1 code -> glin-profanity dictionary name
_GLIN_LANGUAGES = {
    "ar": "arabic", "cs": "czech", "da": "danish", "de": "german", "en": "english", "eo": "esperanto",
    "es": "spanish", "fa": "persian", "fi": "finnish", "fr": "french", "hi": "hindi", "hu": "hungarian",
    "it": "italian", "ja": "japanese", "ko": "korean", "nl": "dutch", "no": "norwegian", "pl": "polish",
    "pt": "portuguese", "ru": "russian", "sv": "swedish", "th": "thai", "tr": "turkish", "zh": "chinese",
}


def word_set(words_dir: str | None, words_type: WordsType, lang: str, op_name: str) -> frozenset[str]:
    """The ``words_type`` list of ``lang`` (``'all'``: every language merged)."""
    lists = _load(str(Path(words_dir).expanduser().resolve()) if words_dir else None, words_type)
    if lang not in lists:
        source = f"folder {words_dir}" if words_dir else _package_name(words_type)
        raise ValueError(
            f"{op_name}: no {words_type} list for lang={lang!r} in {source}; available: {sorted(lists)}"
        )
    return lists[lang]


def _package_name(words_type: WordsType) -> str:
    return "package stopwordsiso" if words_type == "stopwords" else "package glin-profanity"


@functools.lru_cache(maxsize=16)
def _load(words_dir: str | None, words_type: WordsType) -> dict[str, frozenset[str]]:
    lists = _from_folder(Path(words_dir), words_type) if words_dir else _from_package(words_type)
    merged = {lang: frozenset(words) for lang, words in lists.items()}
    if "all" not in merged:
        merged["all"] = frozenset().union(*merged.values())
    return merged


def _from_folder(folder: Path, words_type: WordsType) -> dict[str, list[str]]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{words_type}: folder {folder} does not exist")
    lists: dict[str, list[str]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".json") and words_type in path.name:
            for lang, words in json.loads(path.read_text(encoding="utf-8")).items():
                lists.setdefault(lang, []).extend(words)
    if lists:
        return lists
    for path in sorted(folder.glob("*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        lists[path.stem] = [w.strip() for w in lines if w.strip()]
    if not lists:
        raise FileNotFoundError(
            f"{words_type}: {folder} holds no '*{words_type}*.json' file ({{lang: [words]}}) "
            f"and no '<lang>.txt' word list"
        )
    return lists


def _from_package(words_type: WordsType) -> dict[str, list[str]]:
    if words_type == "stopwords":
        import stopwordsiso

        return {lang: [w.lower() for w in stopwordsiso.stopwords(lang)] for lang in stopwordsiso.langs()}
    from glin_profanity.data.dictionary import dictionary

    return {code: [w.lower() for w in dictionary.get_words(name)] for code, name in _GLIN_LANGUAGES.items()}


class WordListRatioFilter(Filter):
    """Shared body of stopwords_filter and flagged_words_filter.

    ``ratio = (number of words in the list) / (number of words)`` over the lower-cased refined
    words (plus their n-gram joins with ``use_words_aug``), 0.0 without words, capped at 1.0.
    Membership is tested for the whole batch at once with Arrow's ``is_in``.
    """

    stat_key: ClassVar[str]
    words_type: ClassVar[WordsType]
    intermediates = ("words",)

    def _setup(
        self,
        lang: str,
        tokenization: bool,
        min_ratio: float,
        max_ratio: float,
        words_dir: str | None,
        use_words_aug: bool,
        words_aug_group_sizes: list[int],
        words_aug_join_char: str,
        sp_model_dir: str | None,
    ) -> None:
        self.lang = lang
        self.min_ratio = min_ratio
        self.max_ratio = max_ratio
        self.use_words_aug = use_words_aug
        self.words_aug_group_sizes = list(words_aug_group_sizes)
        self.words_aug_join_char = words_aug_join_char
        self.word_set = word_set(words_dir, self.words_type, lang, self.name)
        self._value_set = pa.array(sorted(w.encode("utf-8", "surrogatepass") for w in self.word_set), pa.large_binary())
        self.tokenizer = load_sentencepiece(lang, sp_model_dir, self.name) if tokenization else None

    def compute_stats(self, batch: Batch) -> None:
        words = batch_refined_words(
            batch,
            self.text_key,
            lower_case=True,
            tokenizer=self.tokenizer,
            use_words_aug=self.use_words_aug,
            words_aug_group_sizes=self.words_aug_group_sizes,
            words_aug_join_char=self.words_aug_join_char,
        )
        listed = np.asarray(pc.is_in(words.words, value_set=self._value_set), dtype=bool)
        counts = words.counts()
        ratios = np.divide(words.row_sums(listed), counts, out=np.zeros(len(words)), where=counts > 0)
        batch.stats[self.stat_key] = np.minimum(ratios, 1.0).tolist()
