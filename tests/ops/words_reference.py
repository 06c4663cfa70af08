"""Straightforward one-document-at-a-time versions of Data-Juicer's word rules, written
independently of dj_ops.ops.common.text, to check the batch implementations against.

Also: a tiny SentencePiece model for the ``tokenization=True`` paths, and adversarial strings.
"""

from __future__ import annotations

import io
import random
import re
import string
from collections import Counter
from pathlib import Path

SEPARATOR = re.compile(" |\n|\t")


def dj_split(text: str) -> list[str]:
    return [w for w in SEPARATOR.split(text) if w]


def dj_strip(word: str, chars) -> str:
    start = 0
    while start < len(word) and word[start] in chars:
        start += 1
    end = len(word)
    while end > start and word[end - 1] in chars:
        end -= 1
    return word[start:end]


def dj_refine(words, chars, lower_case=False, aug_sizes=(), join_char=""):
    if lower_case:
        words = [w.lower() for w in words]
    words = [s for s in (dj_strip(w, chars) for w in words) if s]
    augs = [join_char.join(words[i : i + g]) for g in aug_sizes for i in range(len(words) - g + 1)]
    return words + augs


def dj_word_rep_ratio(words: list[str], n: int) -> float:
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return sum(c for c in grams.values() if c > 1) / total if total else 0.0


def dj_rebuild(text: str, keep=lambda w: True) -> str:
    """split_on_newline_tab_whitespace -> filter words -> merge_on_whitespace_tab_newline."""
    lines = [[[w for w in re.split(" ", piece) if w and keep(w)] for piece in line.split("\t")] for line in text.split("\n")]
    lines = ["\t".join(" ".join(p) for p in line if p) for line in lines]
    return "\n".join(line for line in lines if line)


ADVERSARIAL = [
    "",
    " ",
    "\n\t \n",
    "...",
    "a",
    "ΟΔΟΣ ΟΔΟΣ. Σ ΣΑ ΌΣΟΣ,",  # final sigma depends on context
    "İstanbul İ I ı",  # lower() changes length
    "Гг Г г",  # 'Г' is special, 'г' is not
    "a\rb c\x0bd\x0ce\x1cf",  # other whitespace is not a separator
    "😊😊 a😊b 😊 👍🏽 #️⃣ ©",
    "\u3000a\u3000b\xa0c\u2003d",
    "word\u00ad \u200bzero\u200b width",
    "«quoted» „German“ ‘single’ —dash— …",
    "１２３ ４５６ full-width",
    "tab\tseparated\t\twords  and   spaces ",
    "\n\nleading and trailing newlines\n\n",
    "http://example.com www.site.org a//b href=x test.com.",
]


def random_strings(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = list(" \n\t\r\x0b\xa0\u2003ΣσςİIıAaÄäßẞ.,!?-'\"’“…😊👍🏽Гг1２\u0307\x85\u3000_é") + list(string.ascii_letters)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(count)]


def tiny_sentencepiece_model(folder: Path, lang: str = "en") -> Path:
    """Train a small SentencePiece model (milliseconds) and save it as ``folder/{lang}.sp.model``."""
    import sentencepiece as spm

    rng = random.Random(0)
    vocab = "the a of and to in is it that this was movie film good bad very story one with for".split()
    sentences = [" ".join(rng.choice(vocab) for _ in range(12)).capitalize() + rng.choice(".!?,") for _ in range(400)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=60, model_type="unigram",
        minloglevel=2, hard_vocab_limit=False,
    )
    path = folder / f"{lang}.sp.model"
    path.write_bytes(model.getvalue())
    return path
