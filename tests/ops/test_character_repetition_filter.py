import random
from collections import Counter

import numpy as np
import pytest

from dj_ops.ops.filter.character_repetition_filter import char_repetition_ratios
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case


def reference_ratio(text: str, n: int) -> float:
    """Data-Juicer's formula, the plain way (Counter over substrings)."""
    freqs = sorted(Counter(text[i : i + n] for i in range(len(text) - n + 1)).values(), reverse=True)
    if not freqs:
        return 0.0
    k = min(int(np.sqrt(len(freqs))), len(freqs) - freqs.count(1))
    return sum(freqs[:k]) / sum(freqs)


def random_texts(seed: int, count: int) -> list[str]:
    """Texts over alphabets from 1 character to thousands of code points (so from one packed word
    per n-gram to several), with lengths around the n-gram size."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        alphabet = [chr(rng.randrange(0x110000)) for _ in range(rng.choice([1, 2, 3, 8, 60, 90, 300, 3000]))]
        out.append("".join(rng.choices(alphabet, k=rng.choice([0, 1, 4, 9, 10, 11, 40, 400, 2000]))))
    return out


ADVERSARIAL = [
    *["", "a", "a" * 9, "a" * 10, "a" * 11, "ab" * 500],
    *["😊" * 30, "\ud800" * 12 + "x", "\x00" * 20, "中文" * 40],
]


def test_dj_cases():
    for case in dj_cases_for("character_repetition_filter"):
        assert_dj_case(case)


def test_defaults():
    op = make_op("character_repetition_filter")
    assert (op.rep_len, op.min_ratio, op.max_ratio) == (10, 0.0, 0.5)
    with pytest.raises(ValueError):
        make_op("character_repetition_filter", rep_len=0)


def test_equals_counter_on_real_text(imdb_texts):
    texts = imdb_texts + ADVERSARIAL
    _, batch = run_op(make_op("character_repetition_filter"), [{"text": t} for t in texts])
    assert batch.stats["char_rep_ratio"] == [reference_ratio(t, 10) for t in texts]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 13, 32, 65])
def test_equals_counter_on_random_unicode(n, imdb_texts):
    texts = random_texts(n, 120) + ADVERSARIAL + imdb_texts[:20]
    assert char_repetition_ratios(texts, n) == [reference_ratio(t, n) for t in texts]


def test_alphabet_past_one_word_per_ngram():
    """A text with > 84 distinct characters does not fit a 10-gram in one 64-bit word."""
    wide = "".join(map(chr, range(0x4E00, 0x4E00 + 200))) * 3
    narrow = "abc" * 50
    texts = [narrow, wide, narrow + wide, ""]
    assert char_repetition_ratios(texts, 10) == [reference_ratio(t, 10) for t in texts]


def test_hash_collisions_never_change_counts(monkeypatch):
    """With base 1 the rolling hash is the sum of the code points, so every anagram collides:
    counts must still come out exact (run as plain Python, small inputs)."""
    from dj_ops.ops.common.codepoints import codepoints
    from dj_ops.ops.filter import character_repetition_filter as module

    monkeypatch.setattr(module, "_BASE", 1)
    texts = ["abba" * 20, "abcabcbacbca" * 5, "ab", "", "xyzzyx" * 3 + "zyx"]
    for n in (2, 3, 4):
        cps = codepoints(texts)
        out = np.zeros(len(texts))
        with np.errstate(over="ignore"):  # the slot spreading wraps around 2**64 on purpose
            module._ratios_kernel(cps.cp, cps.starts, cps.lens, n, np.uint64(1), out)
        assert out.tolist() == [reference_ratio(t, n) for t in texts]
