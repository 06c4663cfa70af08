"""remove_repeat_sentences_mapper: Data-Juicer's unit-test pairs, custom tokenizers, and the fast
splitter / batched keys against a sentence-by-sentence reference."""

from __future__ import annotations

import random

import pytest
import regex

from dj_ops.ops.mapper.remove_repeat_sentences_mapper import split_sentence
from tests.helpers_ops import make_op, run_op

# Data-Juicer's unit tests (tests/ops/mapper/test_remove_repeat_sentences_mapper.py)
EN_1 = (
    "The quick brown fox jumps over the lazy dog. Isn't it amazing how a simple sentence can contain every letter of "
    "the alphabet? The quick brown fox jumps over the lazy dog. Speaking of weather, yesterday was quite dreary; however, "
    "today is absolutely delightful. Isn't it amazing how a simple sentence can contain every letter of the alphabet? "
    '"Let\'s seize the day," Tom exclaimed, full of enthusiasm. "Let\'s seize the day," Tom exclaimed, full of enthusiasm.'
)
EN_1_OUT = (
    "The quick brown fox jumps over the lazy dog. Isn't it amazing how a simple sentence can contain every letter of "
    "the alphabet? Speaking of weather, yesterday was quite dreary; however, today is absolutely delightful. "
    '"Let\'s seize the day," Tom exclaimed, full of enthusiasm.'
)
DEFAULT_PAIRS = [
    (
        "今天天气真不错，阳光明媚，适合出去散步。小明说：“今天天气真不错，我们去海边吧。” 小红回答说：“好主意！” 但是，小李觉得："
        "“今天天气真不错，我们去爬山吧。” 今天天气真不错，阳光明媚，适合出去散步。昨天下了一整天的雨，今天终于放晴了。"
        "昨天下了一整天的雨，今天终于放晴了。",
        "今天天气真不错，阳光明媚，适合出去散步。小明说：“今天天气真不错，我们去海边吧。” 小红回答说：“好主意！” 但是，小李觉得："
        "“今天天气真不错，我们去爬山吧。”昨天下了一整天的雨，今天终于放晴了。",
    ),
    (EN_1, EN_1_OUT),
    ("我很开心 。但是你不开心  。我很开心 。\n你好呀！我很开心 。我好的。你好呀！", "我很开心 。但是你不开心  。\n你好呀！我好的。"),
    (
        "默认配置下，长度低于2的句子不会被去重。去重？去重。去重！重。重...... 重! 1234？3215. 1234. 3. 3. 3",
        "默认配置下，长度低于2的句子不会被去重。去重？重。重...... 重! 1234？3215. 3. 3. 3",
    ),
]
STRICT_PARAMS = {"lowercase": True, "ignore_special_character": False, "min_repeat_sentence_length": 5}
STRICT_PAIRS = [
    (
        "Life is what happens when you're busy making other plans. John Lennon once said. Life is what happens when "
        "you're busy making other plans. This phrase has resonated with many people over the years. "
        "人生就是当你忙于制定其他计划时发生的事情。对很多人来说，这句话引起了共鸣。",
        "Life is what happens when you're busy making other plans. John Lennon once said. This phrase has resonated "
        "with many people over the years. 人生就是当你忙于制定其他计划时发生的事情。对很多人来说，这句话引起了共鸣。",
    ),
    (EN_1, EN_1_OUT),
    ("我很开心 。但是你不开心  。我很开心 。\n你好呀！我很开心 。我好的。你好呀！", "我很开心 。但是你不开心  。\n你好呀！我好的。你好呀！"),
    ("去重？去重。去重！重。重...... 重! 1234？3215. 1234. 3. 3. 3", "去重？去重。去重！重。重...... 重! 1234？3215. 1234. 3. 3. 3"),
]


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


@pytest.mark.parametrize("params, pairs", [({}, DEFAULT_PAIRS), (STRICT_PARAMS, STRICT_PAIRS)])
def test_dj_pairs(params, pairs):
    op = make_op("remove_repeat_sentences_mapper", **params)
    assert mapped(op, [t for t, _ in pairs]) == [expected for _, expected in pairs]


# the reference: Data-Juicer's algorithm sentence by sentence, with its four regexes
DJ_BREAKS = [r"([.。！!？\?])([^’”])", r"(\.{6})([^’”])", r"(\…{2})([^’”])", r"([.。!！？\?\.{6}\…{2}][’”])([^’”])"]


def dj_split(line: str) -> list[str]:
    for pattern in DJ_BREAKS:
        line = regex.sub(pattern, r"\1\n\2", line)
    return line.split("\n")


def reference(text: str, lowercase=False, ignore_special_character=True, min_repeat_sentence_length=2, split=dj_split):
    seen = set()
    lines = []
    for line in text.split("\n"):
        kept = ""
        for sentence in split(line) if line else []:
            key = sentence.strip()
            key = key.lower() if lowercase else key
            key = regex.sub(r"[^a-zA-Z0-9\u4e00-\u9fa5\n\t ]", "", key) if ignore_special_character else key
            if len(key) < min_repeat_sentence_length or key not in seen:
                kept += sentence
                if len(key) >= min_repeat_sentence_length:
                    seen.add(key)
        lines.append(kept)
    return "\n".join(lines)


PIECES = [
    "A b.", " a b.", "A B!", "a b?", "中文。", "中文！", "x", " ", "  ", ".", "..", "......", "…", "……", "!", "？", "’", "”",
    ".’", "!”", "6’", "{", "2", "}", "\n", "\t", "\xa0", "é", "É.", "ΑΣ.", "ας.", "İ.", "i̇.", "ǅ", "1234.", "3. ", "\r",
]  # fmt: skip


def random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 16))) for _ in range(n)]


def test_fast_splitter_equals_regexes(imdb_texts):
    lines = [t for text in imdb_texts[:1000] + random_texts(1, 3000) for t in text.split("\n")]
    assert [split_sentence(line) for line in lines] == [dj_split(line) for line in lines]


@pytest.mark.parametrize(
    "params",
    [{}, STRICT_PARAMS, {"lowercase": True}, {"min_repeat_sentence_length": 0}, {"ignore_special_character": False}],
)
def test_equals_reference(imdb_texts, params):
    texts = imdb_texts[:300] + ["", "\n", "a.\n\na."] + random_texts(2, 1500)
    op = make_op("remove_repeat_sentences_mapper", **params)
    assert mapped(op, texts) == [reference(t, **params) for t in texts]


def test_custom_tokenizers():
    def tokenize(line: str) -> list[str]:
        return [s for s in line.split("|") if s]

    def spaced(line: str) -> list[str]:
        return [s if i == 0 or s[:1].isspace() else " " + s for i, s in enumerate(tokenize(line))]

    texts = ["a b|c d| a b|c d\nc d|x\ny", "|| a b|  a b", "p\nq|p\nq", "x|y\nz|x"]
    for tokenizer in (tokenize, "lambda line: [s for s in line.split('|') if s]"):
        op = make_op("remove_repeat_sentences_mapper", tokenizer=tokenizer)
        assert mapped(op, texts) == [reference(t, split=spaced) for t in texts]
    # a tokenizer that leaves "\n" inside a sentence (keys then computed one by one): the third
    # sentence repeats the first
    op = make_op("remove_repeat_sentences_mapper", tokenizer=lambda line: [line.replace("|", "\n"), "ab", "a\nb"])
    assert mapped(op, ["a|b"]) == ["a\nb ab"]


def test_tokenizer_validation():
    for bad in ("print('x')", "lambda a, b: [a]", "lambda: []", "not python ("):
        with pytest.raises(ValueError):
            make_op("remove_repeat_sentences_mapper", tokenizer=bad)
    with pytest.raises(ValueError):
        make_op("remove_repeat_sentences_mapper", tokenizer=3)
