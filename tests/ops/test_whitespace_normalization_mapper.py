"""whitespace_normalization_mapper: Data-Juicer's case and a per-character reference."""

from __future__ import annotations

import random
import sys

from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op

# Data-Juicer's VARIOUS_WHITESPACES (data_juicer/ops/common/special_characters.py)
DJ_WHITESPACES = {chr(cp) for cp in (0x20, 0x09, 0x84, 0xA0, 0x202F, 0x205F, 0x2060, 0x3000, 0xFFFC, *range(0x2000, 0x200E))}


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def reference(text: str) -> str:
    return "".join(" " if c in DJ_WHITESPACES else c for c in text.strip())


def test_dj_cases():
    for case in dj_cases_for("whitespace_normalization_mapper"):
        op = make_op(case["op"], **case["params"])
        assert mapped(op, [s["text"] for s in case["input_samples"]]) == [s["text"] for s in case["expected_output_samples"]]


def test_equals_reference(imdb_texts):
    every_space = [chr(cp) for cp in range(sys.maxunicode + 1) if chr(cp).isspace()] + sorted(DJ_WHITESPACES)
    rng = random.Random(0)
    pool = every_space + list("ab\n\r.") + ["中", "é", "\ud800"]
    texts = imdb_texts[:1000] + ["", " ", "\n \t", "\u3000x\u3000", "\x85a\x84", "a\u200bb\u2060c\ufffc"]
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    assert mapped(make_op("whitespace_normalization_mapper"), texts) == [reference(t) for t in texts]


def test_examples():
    # strip() takes every Python whitespace off the ends (\x85 too), but not U+200B, which is not
    # one; inside, only the listed characters become spaces: "\n", \x85 and \x1c stay
    op = make_op("whitespace_normalization_mapper")
    assert mapped(op, ["\x85 a\u00a0b\n\u2003c\x85d\x1c \u200b"]) == ["a b\n c\x85d\x1c  "]
    assert mapped(op, ["\x85\x1c\u3000 "]) == [""]
