"""remove_specific_chars_mapper: Data-Juicer's unit-test pairs and the regex it builds."""

from __future__ import annotations

import random

import pytest
import regex

from tests.helpers_ops import make_op, run_op

# Data-Juicer's unit tests (tests/ops/mapper/test_remove_specific_chars_mapper.py)
DJ_PAIRS = [
    ({}, "这是一个干净的文本。Including Chinese and English.", "这是一个干净的文本。Including Chinese and English."),
    ({}, "◆●■►▼▲▴∆▻▷❖♡□", ""),
    ({}, "►This is a dirty text ▻ 包括中文和英文", "This is a dirty text  包括中文和英文"),
    ({}, "多个●■►▼这样的特殊字符可以►▼▲▴∆吗？", "多个这样的特殊字符可以吗？"),
    ({}, "未指定的●■☛₨➩►▼▲特殊字符会☻▷❖被删掉吗？？", "未指定的☛₨➩特殊字符会☻被删掉吗？？"),
    ({}, "| a | b | ◆", "| a | b | "),
    ({"chars_to_remove": "^-]\\"}, "a^b-c]d\\e|f", "abcde|f"),
]


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


@pytest.mark.parametrize("params, text, expected", DJ_PAIRS)
def test_dj_pairs(params, text, expected):
    assert mapped(make_op("remove_specific_chars_mapper", **params), [text]) == [expected]


def test_empty_means_no_op():
    for chars in ("", []):
        assert mapped(make_op("remove_specific_chars_mapper", chars_to_remove=chars), ["◆a"]) == ["◆a"]


@pytest.mark.parametrize(
    "chars",
    ["◆●■►▼▲▴∆▻▷❖♡□", ["a-z", "^", "]", "\\", "\n"], "[]().*+?{}|$", ["é", "😀", "\x00\t "], ["ab", "", "中文"], "0123"],
)
def test_equals_data_juicers_regex(imdb_texts, chars):
    pattern = "[" + "".join(regex.escape(c) for c in chars) + "]"
    rng = random.Random(str(chars))
    pool = list("".join(chars)) + list("abz-^]\\[ .\n") + ["中", "◆", "😀", "é"]
    texts = imdb_texts[:300] + [""] + ["".join(rng.choice(pool) for _ in range(rng.randint(0, 20))) for _ in range(1000)]
    expected = [regex.sub(pattern, "", t, flags=regex.DOTALL) for t in texts]
    assert mapped(make_op("remove_specific_chars_mapper", chars_to_remove=chars), texts) == expected
