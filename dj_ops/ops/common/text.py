"""Word-level text utilities shared by the word-based OPs (Data-Juicer's ``ops/common`` helpers).

Data-Juicer (DJ) splits a document into words on ``" "``, ``"\\n"`` and ``"\\t"`` (dropping empty
pieces) or with a SentencePiece model, then *refines* them: optional lower-casing, stripping of
:data:`SPECIAL_CHARACTERS` from both ends of each word (words left empty are dropped) and optional
n-gram augmentation for languages written without spaces (zh) or with spaces between syllables (vi).

The plain-Python functions below (:func:`get_words`, :func:`words_refinement`, ...) state those
rules one document at a time.  The filters use :func:`batch_refined_words` instead: it refines a
whole batch in Arrow's C++ kernels (split, trim) and keeps the result columnar
(:class:`WordLists`: one flat array of words plus row offsets), so words_num, word_repetition,
stopwords and flagged_words count, look up and compare words without a Python object per word,
and share one computation per batch through ``Batch.cached``.
"""

from __future__ import annotations

import functools
import json
import os
import string
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dj_ops.core.batch import Batch
from dj_ops.core.constants import InterVars
from dj_ops.ops.common.codepoints import N_CODEPOINTS, codepoints, count_per_row
from dj_ops.ops.common.models import ModelLoadError

_ASSETS = Path(__file__).resolve().parent.parent.parent / "assets"

# ---------------------------------------------------------------------------------------------
# SPECIAL_CHARACTERS: the same members as DJ 1.6.1's set
# ---------------------------------------------------------------------------------------------

MAIN_SPECIAL_CHARACTERS = string.punctuation + string.digits + string.whitespace
#: DJ's extra typographic / CJK / mojibake characters (sorted and deduplicated here; DJ's string
#: also repeats a space, already in string.whitespace).
OTHER_SPECIAL_CHARACTERS = (
    "\u0081\u0082\u0083\u0084\u0085\u0091\u0092\u0093\u0095\u0096\u0097"
    "\u0098\u0099\u009c\u009d¡¢£¤¥¦§¨©ª«\u00ad®¯°±²³´·¸¹º»¼½¾¿×÷øıɪʺʻʼˈˌː˘˚"
    "˜πГ،ه٪٬۩\u093e\u0940\u0947\u094dॽ\u09be๑\u2002\u2003\u2005\u2008\u2009"
    "\u200a\u200b‐‑–—―‖‘’‚“”„‟†•․…\u202f‰′″‹›‿⁃⁄₨₪€℃™←↑→↓⇓∆∈−√∞∟∼≈≖≤≥⊕⋅═■▬▲"
    "▴▷►▻▼◆●◦★☆☛☻♡♥♫✓✦✱❖➤➩⠀\u3000、。《》「」【】゜シッツン・ー一上士﴾﴿\ufeff！（），．１：；？＾～￼�"
)


def _emoji_keys() -> list[str]:
    # DJ adds every key of emoji.EMOJI_DATA from the emoji version it pins (2.2.0).  Newer emoji
    # releases add keys, so the 2.2.0 key list ships as an asset (generated with
    # json.dump(sorted(emoji.EMOJI_DATA)) under emoji==2.2.0) instead of following whatever
    # emoji version is installed.
    return json.loads((_ASSETS / "emoji_2.2.0_keys.json").read_text(encoding="utf-8"))


#: Exactly DJ's SPECIAL_CHARACTERS.  DJ only ever tests single characters against it, so the
#: multi-code-point emoji sequences are members that never match anything.
SPECIAL_CHARACTERS: frozenset[str] = frozenset(MAIN_SPECIAL_CHARACTERS + OTHER_SPECIAL_CHARACTERS).union(
    _emoji_keys()
)
#: The single code points of SPECIAL_CHARACTERS, sorted: what stripping and counting test against.
SPECIAL_CODEPOINTS: str = "".join(sorted(c for c in SPECIAL_CHARACTERS if len(c) == 1))


@functools.cache
def _special_table() -> np.ndarray:
    table = np.zeros(N_CODEPOINTS, dtype=bool)
    table[np.frombuffer(SPECIAL_CODEPOINTS.encode("utf-32-le"), dtype=np.uint32)] = True
    table.flags.writeable = False
    return table


def special_char_counts(texts: Sequence[str]) -> np.ndarray:
    """Number of characters of each text that are in SPECIAL_CHARACTERS (one table lookup per
    code point for the whole batch)."""
    return count_per_row(_special_table(), codepoints(texts))


# ---------------------------------------------------------------------------------------------
# One document at a time: DJ's rules
# ---------------------------------------------------------------------------------------------


def get_words(text: str) -> list[str]:
    """DJ's ``get_words_from_document`` without tokenizer: split on " ", "\\n", "\\t" (not on
    "\\r", NBSP or other Unicode spaces), drop empty pieces."""
    return list(filter(None, text.replace("\n", " ").replace("\t", " ").split(" ")))


def strip_special(word: str) -> str:
    """``word`` without the SPECIAL_CHARACTERS at its start and end (DJ's ``strip``)."""
    start, end = 0, len(word)
    while start < end and word[start] in SPECIAL_CHARACTERS:
        start += 1
    while end > start and word[end - 1] in SPECIAL_CHARACTERS:
        end -= 1
    return word[start:end]


def words_augmentation(words: Sequence[str], group_size: int, join_char: str) -> list[str]:
    """Every run of ``group_size`` consecutive words joined with ``join_char`` (zh/vi)."""
    return [join_char.join(words[i : i + group_size]) for i in range(len(words) - group_size + 1)]


def words_refinement(
    words: Sequence[str],
    lower_case: bool = False,
    strip_special_chars: bool = False,
    use_words_aug: bool = False,
    words_aug_group_sizes: Sequence[int] = (2,),
    words_aug_join_char: str = "",
) -> list[str]:
    """DJ's ``words_refinement``: lower-case, strip special characters (dropping empty words),
    then append the n-gram augmentations for each group size."""
    out = list(words)
    if lower_case:
        out = [w.lower() for w in out]
    if strip_special_chars:
        out = [w for w in map(strip_special, out) if w]
    if use_words_aug:
        out += [aug for size in words_aug_group_sizes for aug in words_augmentation(out, size, words_aug_join_char)]
    return out


def rebuild_words(text: str, keep: Callable[[str], bool] | None = None) -> str:
    """DJ's ``merge_on_whitespace_tab_newline(split_on_newline_tab_whitespace(text))`` keeping only
    the words for which ``keep`` is true.

    Lines are split on "\\n", then on "\\t", then on " "; runs of separators collapse, empty
    pieces and empty lines disappear.
    """
    if keep is None and not (
        "\n" in text or "\t" in text or "  " in text or text.startswith(" ") or text.endswith(" ")
    ):
        return text  # already in the canonical form
    lines = []
    for line in text.split("\n"):
        pieces = []
        for piece in line.split("\t"):
            words = [w for w in piece.split(" ") if w and keep(w)] if keep else list(filter(None, piece.split(" ")))
            if words:
                pieces.append(" ".join(words))
        if pieces:
            lines.append("\t".join(pieces))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# A batch at a time: columnar words
# ---------------------------------------------------------------------------------------------


def _encode(word: str) -> bytes:
    return word.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class WordLists:
    """The words of each row of a batch, columnar.

    ``words`` is one flat Arrow ``large_binary`` array holding every word as UTF-8 (surrogates
    passed through, so any Python string round-trips); row ``i`` owns
    ``words[offsets[i]:offsets[i + 1]]``.
    """

    __slots__ = ("words", "offsets", "_ids")

    def __init__(self, words: pa.Array, offsets: np.ndarray):
        self.words = words
        self.offsets = offsets
        self._ids: np.ndarray | None = None

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[str]]) -> "WordLists":
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        flat = [_encode(w) for words in lists for w in words]
        return cls(pa.array(flat, pa.large_binary()), _offsets(lengths))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def counts(self) -> np.ndarray:
        """Number of words of each row."""
        return np.diff(self.offsets)

    def row(self, i: int) -> list[str]:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return [_decode(b) for b in self.words.slice(start, end - start).to_pylist()]

    def to_lists(self) -> list[list[str]]:
        flat = [_decode(b) for b in self.words.to_pylist()]
        return [flat[self.offsets[i] : self.offsets[i + 1]] for i in range(len(self))]

    def ids(self) -> np.ndarray:
        """One integer per word, equal exactly when the words are equal (dictionary encoding)."""
        if self._ids is None:
            self._ids = np.asarray(pc.dictionary_encode(self.words).indices, dtype=np.int64)
        return self._ids

    def row_sums(self, flags: np.ndarray) -> np.ndarray:
        """Per row, how many of its words have ``flags`` (one bool per word) set."""
        cumulative = np.zeros(len(flags) + 1, dtype=np.int64)
        np.cumsum(flags, out=cumulative[1:])
        return cumulative[self.offsets[1:]] - cumulative[self.offsets[:-1]]

    def take(self, rows: Sequence[int]) -> "WordLists":
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        offsets = _offsets(lengths)
        gather = np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
        taken = WordLists(self.words.take(pa.array(gather)), offsets)
        if self._ids is not None:
            taken._ids = self._ids[gather]
        return taken

    def augmented(self, group_sizes: Sequence[int], join_char: str) -> "WordLists":
        """Each row's words followed by their n-gram joins (DJ's ``use_words_aug``)."""
        return WordLists.from_lists(
            [words_refinement(words, use_words_aug=True, words_aug_group_sizes=group_sizes,
                              words_aug_join_char=join_char) for words in self.to_lists()]
        )


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _strip_tokens(tokens: pa.Array, n_rows: int) -> WordLists:
    """Strip SPECIAL_CHARACTERS from both ends of each token of a list array; drop empty words."""
    flat = pc.list_flatten(tokens)
    rows = pc.list_parent_indices(tokens)
    stripped = pc.utf8_trim(flat, SPECIAL_CODEPOINTS)
    nonempty = pc.greater(pc.binary_length(stripped), 0)
    words = pc.filter(stripped, nonempty).view(pa.large_binary())
    lengths = np.bincount(np.asarray(pc.filter(rows, nonempty)), minlength=n_rows)
    return WordLists(words, _offsets(lengths))


def refine_texts(texts: Sequence[str], lower_case: bool) -> WordLists:
    """``words_refinement(get_words(t), lower_case, strip_special_chars=True)`` for every text.

    Lower-casing the whole text equals lower-casing each word: the only context-dependent
    lower-casing (final sigma) never looks across a space, tab or newline.
    """
    prepared = [t.lower() for t in texts] if lower_case else list(texts)
    try:
        array = pa.array(prepared, pa.large_string())
    except UnicodeEncodeError:
        # lone surrogates cannot be UTF-8: refine this batch word by word in Python
        return WordLists.from_lists([words_refinement(get_words(t), strip_special_chars=True) for t in prepared])
    array = pc.replace_substring(pc.replace_substring(array, "\n", " "), "\t", " ")
    return _strip_tokens(pc.split_pattern(array, " "), len(prepared))


def refine_token_lists(token_lists: Sequence[Sequence[str]], lower_case: bool) -> WordLists:
    """``words_refinement(tokens, lower_case, strip_special_chars=True)`` for every token list."""
    if lower_case:
        token_lists = [[t.lower() for t in tokens] for tokens in token_lists]
    try:
        array = pa.array(token_lists, pa.large_list(pa.large_string()))
    except UnicodeEncodeError:
        return WordLists.from_lists([words_refinement(tokens, strip_special_chars=True) for tokens in token_lists])
    return _strip_tokens(array, len(token_lists))


# ---------------------------------------------------------------------------------------------
# Tokenizer: SentencePiece models from a local folder
# ---------------------------------------------------------------------------------------------

#: DJ's own setting for its model cache: a folder holding ``{lang}.sp.model``.
MODELS_DIR_ENV = "DATA_JUICER_MODELS_CACHE"


def default_models_dir() -> Path:
    """DJ's model cache: $DATA_JUICER_MODELS_CACHE, else $DATA_JUICER_CACHE_HOME/models,
    else ~/.cache/data_juicer/models."""
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).expanduser()
    cache_home = os.environ.get("DATA_JUICER_CACHE_HOME") or os.path.join(
        os.environ.get("CACHE_HOME", "~/.cache"), "data_juicer"
    )
    return Path(cache_home).expanduser() / "models"


class SentencePieceTokenizer:
    """Splits text into SentencePiece pieces (DJ's ``encode_as_pieces``).

    The model loads on first use, so the OP holding it pickles cheaply into worker processes.
    """

    def __init__(self, model_path: Path):
        self.model_path = model_path
        self.key = f"sentencepiece:{model_path}"
        self._processor = None

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "key": self.key, "_processor": None}

    def encode(self, text: str) -> list[str]:
        if self._processor is None:
            import sentencepiece

            self._processor = sentencepiece.SentencePieceProcessor(model_file=str(self.model_path))
        return self._processor.encode_as_pieces(text)


def load_sentencepiece(lang: str, sp_model_dir: str | None, op_name: str) -> SentencePieceTokenizer:
    """The tokenizer of ``tokenization=True``: ``{lang}.sp.model`` from ``sp_model_dir`` (or DJ's
    model cache).  Never downloads; a missing model or package is an error that says what to set."""
    folder = Path(sp_model_dir).expanduser() if sp_model_dir else default_models_dir()
    path = folder / f"{lang}.sp.model"
    if not path.is_file():
        raise ModelLoadError(
            f"{op_name}: tokenization=True needs the SentencePiece model '{path.name}', not found in "
            f"{folder}. Put the file there, or point the OP's `sp_model_dir` parameter (or the "
            f"{MODELS_DIR_ENV} environment variable) at the folder holding it; models are never downloaded."
        )
    try:
        import sentencepiece  # noqa: F401
    except ImportError as exc:
        raise ModelLoadError(
            f"{op_name}: tokenization=True needs the 'sentencepiece' package (pip install 'dj-dagster[nlp]')"
        ) from exc
    return SentencePieceTokenizer(path)


# ---------------------------------------------------------------------------------------------
# Batch intermediates, computed once per batch and shared by every OP that asks with the same
# parameters
# ---------------------------------------------------------------------------------------------


class _RowRef(NamedTuple):
    """One row's entry in a columnar cache: the batch-wide store and the row's index in it.

    Batch.take keeps the entries of the surviving rows, so the store can be subset later.
    """

    store: WordLists
    row: int


def _texts(batch: Batch, text_key: str) -> list[str]:
    column = batch.columns.get(text_key) or [None] * len(batch)
    return [t if isinstance(t, str) else "" for t in column]


def _cached_word_lists(batch: Batch, key: str, compute: Callable[[], WordLists]) -> WordLists:
    refs = batch.cached(key, lambda: _row_refs(compute()))
    if not refs:
        return WordLists(pa.array([], pa.large_binary()), np.zeros(1, dtype=np.int64))
    store = refs[0].store
    rows = [r.row for r in refs]
    if all(r.store is store for r in refs):
        if rows == list(range(len(store))):
            return store
        subset = store.take(rows)
    else:
        subset = WordLists.from_lists([r.store.row(r.row) for r in refs])
    batch.cache[key] = _row_refs(subset)  # later readers of this batch skip the take
    return subset


def _row_refs(store: WordLists) -> list[_RowRef]:
    return [_RowRef(store, i) for i in range(len(store))]


def batch_tokens(batch: Batch, text_key: str, tokenizer: SentencePieceTokenizer) -> list[list[str]]:
    """Tokenizer pieces of each row (DJ's words intermediate with a tokenizer)."""
    key = InterVars.words + repr((text_key, tokenizer.key))
    return batch.cached(key, lambda: [tokenizer.encode(t) for t in _texts(batch, text_key)])


def refined_words_key(
    text_key: str,
    lower_case: bool,
    tokenizer: SentencePieceTokenizer | None = None,
    use_words_aug: bool = False,
    words_aug_group_sizes: Iterable[int] = (2,),
    words_aug_join_char: str = "",
) -> str:
    """Cache key of the refined words: every parameter that changes them, nothing else."""
    aug = (tuple(words_aug_group_sizes), words_aug_join_char) if use_words_aug else None
    tokenizer_key = tokenizer.key if tokenizer else None
    return InterVars.refined_words + repr((text_key, tokenizer_key, bool(lower_case), "SPECIAL_CHARS", aug))


def batch_refined_words(
    batch: Batch,
    text_key: str,
    lower_case: bool,
    tokenizer: SentencePieceTokenizer | None = None,
    use_words_aug: bool = False,
    words_aug_group_sizes: Sequence[int] = (2,),
    words_aug_join_char: str = "",
) -> WordLists:
    """Refined words of every row (special characters stripped), cached on the batch."""
    if use_words_aug:
        base = batch_refined_words(batch, text_key, lower_case, tokenizer)
        compute = lambda: base.augmented(words_aug_group_sizes, words_aug_join_char)  # noqa: E731
    elif tokenizer is None:
        compute = lambda: refine_texts(_texts(batch, text_key), lower_case)  # noqa: E731
    else:
        compute = lambda: refine_token_lists(batch_tokens(batch, text_key, tokenizer), lower_case)  # noqa: E731
    key = refined_words_key(text_key, lower_case, tokenizer, use_words_aug, words_aug_group_sizes, words_aug_join_char)
    return _cached_word_lists(batch, key, compute)


def batch_word_counts(batch: Batch, text_key: str, tokenizer: SentencePieceTokenizer | None = None) -> np.ndarray:
    """Number of refined (not lower-cased) words of every row: words_num_filter's stat.

    Without a tokenizer the count is read from the lower-cased refined words that the other word
    filters share: for ASCII text lower-casing never turns a special character into an ordinary
    one or back, so the counts agree.  Only non-ASCII rows are refined again, without lower-casing.
    """
    if tokenizer is not None:
        return batch_refined_words(batch, text_key, False, tokenizer).counts()
    counts = batch_refined_words(batch, text_key, True).counts().copy()
    texts = _texts(batch, text_key)
    non_ascii = [i for i, t in enumerate(texts) if not t.isascii()]
    if non_ascii:
        counts[non_ascii] = refine_texts([texts[i] for i in non_ascii], lower_case=False).counts()
    return counts
