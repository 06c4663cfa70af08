import sys

import pytest

from dj_ops.ops.common.models import ModelLoadError
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case
from tests.ops.text_samples import all_unicode_texts
from tests.ops.tiny_tokenizer import build_tiny_tokenizer

ADVERSARIAL = [
    "",
    " ",
    "_",
    "a_b",
    "٣²½Ⅻ",  # digits/numerics of other scripts: isalnum() is True
    "e\u0301\u0301",  # combining marks: not alnum
    "😊😸 👍🏽 ZWJ\u200d",
    "中文也是一个字算一个长度，。、",
    "\ud800lone surrogate\udfff",
    "\x00\x1f\x7f\x85\u2028",
]


def alnum_ratio(text: str) -> float:
    return sum(c.isalnum() for c in text) / len(text) if text else 0.0


def test_dj_cases():
    for case in dj_cases_for("alphanumeric_filter"):
        assert_dj_case(case)


def test_defaults():
    op = make_op("alphanumeric_filter")
    assert (op.tokenization, op.min_ratio, op.max_ratio) == (False, 0.25, sys.maxsize)
    assert op.stats_keys == ("alnum_ratio",)


def test_equals_str_isalnum_over_all_of_unicode():
    texts = all_unicode_texts()
    _, batch = run_op(make_op("alphanumeric_filter"), [{"text": t} for t in texts])
    assert batch.stats["alnum_ratio"] == [alnum_ratio(t) for t in texts]


def test_equals_plain_python_on_real_text(imdb_texts):
    texts = imdb_texts + ADVERSARIAL
    _, batch = run_op(make_op("alphanumeric_filter"), [{"text": t} for t in texts])
    assert batch.stats["alnum_ratio"] == [alnum_ratio(t) for t in texts]


def test_tokenization_uses_tokens_as_denominator(tmp_path):
    from transformers import AutoTokenizer

    folder = build_tiny_tokenizer(tmp_path / "tok")
    tok = AutoTokenizer.from_pretrained(folder)
    texts = ["Today is Sunday and it's a happy day!", "coffee?? 123", "", "   ", "中文 words"]
    op = make_op("alphanumeric_filter", tokenization=True, min_ratio=1.0, hf_tokenizer=str(folder))
    assert op.stats_keys == ("alpha_token_ratio",)
    kept, batch = run_op(op, [{"text": t} for t in texts])
    expected = [sum(c.isalpha() for c in t) / len(tok.tokenize(t)) if tok.tokenize(t) else 0.0 for t in texts]
    assert batch.stats["alpha_token_ratio"] == expected
    assert [s["text"] for s in kept] == [t for t, r in zip(texts, expected) if r >= 1.0]


def test_tokenization_without_model_names_op_model_and_setting(tmp_path):
    missing = str(tmp_path / "no-such-tokenizer")
    op = make_op("alphanumeric_filter", tokenization=True, hf_tokenizer=missing)
    with pytest.raises(ModelLoadError, match="alphanumeric_filter") as err:
        run_op(op, [{"text": "some text"}])
    assert missing in str(err.value) and "hf_tokenizer" in str(err.value)
