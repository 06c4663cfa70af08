"""Word-based mappers: remove_long_words_mapper, remove_words_with_incorrect_substrings_mapper."""

from __future__ import annotations

import pytest

from dj_ops.ops.common import text as tx
from dj_ops.ops.mapper.remove_long_words_mapper import word_length_outliers
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.words_reference import (
    ADVERSARIAL,
    dj_rebuild,
    dj_split,
    dj_strip,
    random_strings,
    tiny_sentencepiece_model,
)

SPECIAL = tx.SPECIAL_CHARACTERS


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def test_dj_cases_remove_long_words():
    for case in dj_cases_for("remove_long_words_mapper"):
        op = make_op(case["op"], **case["params"])
        assert mapped(op, [s["text"] for s in case["input_samples"]]) == [s["text"] for s in case["expected_output_samples"]]


def dj_keep_long(word: str, min_len: int, max_len: int) -> bool:
    if min_len <= len(word) <= max_len:
        return True
    return len(word) > max_len and min_len <= len(dj_strip(word, SPECIAL)) <= max_len


@pytest.mark.parametrize("min_len, max_len", [(1, 2**63 - 1), (1, 8), (3, 15), (2, 2), (5, 1), (0, 0)])
def test_remove_long_words_equals_reference(imdb_texts, min_len, max_len):
    texts = imdb_texts[:200] + ADVERSARIAL + random_strings(200) + ["(((((word)))))", "http://a.very.long.url/path?x=1"]
    op = make_op("remove_long_words_mapper", min_len=min_len, max_len=max_len)
    assert mapped(op, texts) == [dj_rebuild(t, lambda w: dj_keep_long(w, min_len, max_len)) for t in texts]


def test_remove_long_words_examples():
    op = make_op("remove_long_words_mapper", min_len=3, max_len=5)
    # "((abc))" is too long but in range once stripped; "ab" is too short; "abcdefg" too long
    assert mapped(op, ["ab ((abc)) abcdefg  abcd\t\tx\n\nend"]) == ["((abc)) abcd\nend"]


def dj_keep_substrings(word: str, substrings: list[str]) -> bool:
    word = dj_strip(word, SPECIAL)
    return all(s not in word for s in substrings)


@pytest.mark.parametrize("substrings", [None, ["movie", "!"], ["a b", "\n"], [""]])
def test_remove_words_with_incorrect_substrings_equals_reference(imdb_texts, substrings):
    texts = imdb_texts[:200] + ADVERSARIAL + random_strings(200) + [
        "see http://x.com or www.y.org, <a href=z>; a//b ok", "(http) \"www\" ...//...",
    ]
    op = make_op("remove_words_with_incorrect_substrings_mapper", substrings=substrings)
    subs = ["http", "www", ".com", "href", "//"] if substrings is None else substrings
    assert mapped(op, texts) == [dj_rebuild(t, lambda w: dj_keep_substrings(w, subs)) for t in texts]


def test_remove_words_with_incorrect_substrings_examples():
    op = make_op("remove_words_with_incorrect_substrings_mapper")
    assert mapped(op, ["Visit  http://x.com now\tor www.a.org\n\n", "nothing  here "]) == ["Visit now\tor", "nothing here"]
    # stripping the word's special characters can remove the substring: ".com" -> "com"
    assert mapped(op, [".com. x"]) == [".com. x"]


def test_remove_words_with_incorrect_substrings_tokenized(tmp_path):
    pytest.importorskip("sentencepiece")
    tiny_sentencepiece_model(tmp_path)
    op = make_op("remove_words_with_incorrect_substrings_mapper", tokenization=True, sp_model_dir=str(tmp_path),
                 substrings=["ov"])
    pieces = [p.replace("▁", "") for p in op.tokenizer.encode("The movie was good")]
    kept = [p for p in pieces if "ov" not in dj_strip(p, SPECIAL)]
    assert len(kept) < len(pieces)  # the model splits "movie" so that a piece holds "ov"
    # as in DJ: remaining pieces joined without spaces; untouched texts are returned as they are
    assert mapped(op, ["The movie was good", "The  end"]) == ["".join(kept), "The  end"]


def test_word_length_outliers_flags_exactly_the_texts_needing_filtering(imdb_texts):
    texts = imdb_texts[:300] + ADVERSARIAL + random_strings(300) + ["x\ud800yz a"]
    for min_len, max_len in [(1, 10), (3, 15), (2, 2**40)]:
        expected = [any(not min_len <= len(w) <= max_len for w in dj_split(t)) for t in texts]
        assert word_length_outliers(texts, min_len, max_len).tolist() == expected
