"""punctuation_normalization_mapper: Data-Juicer's case and a per-character reference."""

from __future__ import annotations

import random

from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op

# Data-Juicer's table, as data
DJ_TABLE = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"', "」": '"', "「": '"',
    "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(", "）": ")", "；": ";", "–": "-",
    "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]",
    "％": "%", "►": "-",
}  # fmt: skip


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def test_dj_cases():
    for case in dj_cases_for("punctuation_normalization_mapper"):
        op = make_op(case["op"], **case["params"])
        assert mapped(op, [s["text"] for s in case["input_samples"]]) == [s["text"] for s in case["expected_output_samples"]]


def test_equals_reference(imdb_texts):
    rng = random.Random(0)
    pool = list(DJ_TABLE) + list("ab ,.\"'") + ["‘", "‚", "〔", "２", "中", "\ud800", "😀"]
    texts = imdb_texts[:1000] + [""] + ["".join(rng.choice(pool) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    expected = ["".join(DJ_TABLE.get(c, c) for c in t) for t in texts]
    assert mapped(make_op("punctuation_normalization_mapper"), texts) == expected
