"""clean_copyright_mapper: Data-Juicer's unit-test pairs and a line-by-line reference."""

from __future__ import annotations

import random

import regex

from tests.helpers_ops import make_op, run_op

# Data-Juicer's unit tests (tests/ops/mapper/test_clean_copyright_mapper.py)
DJ_PAIRS = [
    ("这是一段 /* 多行注释\n注释内容copyright\n*/ 的文本。另外还有一些 // 单行注释。", "这是一段  的文本。另外还有一些 // 单行注释。"),
    ("如果多行/*注释中没有\n关键词,那么\n这部分注释也不会\n被清除*/\n会保留下来", "如果多行/*注释中没有\n关键词,那么\n这部分注释也不会\n被清除*/\n会保留下来"),
    ("//if start with\n//that will be cleaned \n evenly", " evenly"),
    ("http://www.nasosnsncc.com", "http://www.nasosnsncc.com"),
    ("#if start with\nthat will be cleaned \n#evenly", "that will be cleaned \n#evenly"),
    ("--if start with\n--that will be cleaned \n#evenly", ""),
]


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def reference(text: str) -> str:
    block = regex.search(r"/\*[^*]*\*+(?:[^/*][^*]*\*+)*/", text)
    if block:
        if regex.search("copyright", block.group(), flags=regex.IGNORECASE):
            return text[: block.start()] + text[block.end() :]
        return text
    lines = text.split("\n")
    skip = 0
    while skip < len(lines) and (not lines[skip] or lines[skip][:2] in ("//", "--") or lines[skip][:1] == "#"):
        skip += 1
    return "\n".join(lines[skip:]) if skip else text


def test_dj_pairs():
    assert mapped(make_op("clean_copyright_mapper"), [t for t, _ in DJ_PAIRS]) == [expected for _, expected in DJ_PAIRS]


def test_equals_reference(imdb_texts):
    pieces = ["/*", "*/", "*", "/", "copyright", "COPYRIGHT", "Copy", "right", "\n", "//", "#", "--", "-", " ", "a", "中", "\r"]
    rng = random.Random(0)
    texts = imdb_texts[:500] + ["", "\n", "\n\n", "#", "a\n#"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    assert mapped(make_op("clean_copyright_mapper"), texts) == [reference(t) for t in texts]
