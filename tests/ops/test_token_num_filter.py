import sys

import pytest

from dj_ops.ops.common.models import ModelLoadError
from tests.helpers_ops import make_op, run_op
from tests.ops.tiny_tokenizer import SENTENCES, build_tiny_tokenizer

PYTHIA = "EleutherAI/pythia-6.9b-deduped"

# Data-Juicer's tests/ops/filter/test_token_num_filter.py: texts and their pythia token counts
DJ_TEXTS = [
    "Today is Sunday and it's a happy day!",
    "Do you need a cup of coffee?",
    "你好，请问你是谁",
    "Sur la plateforme MT4, plusieurs manières d'accéder à ces fonctionnalités sont conçues simultanément.",
    "欢迎来到阿里巴巴！",
    "This paper proposed a novel method on LLM pretraining.",
]
DJ_COUNTS = [10, 8, 9, 31, 14, 12]


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def test_defaults():
    op = make_op("token_num_filter")
    assert (op.hf_tokenizer, op.min_num, op.max_num) == (PYTHIA, 10, sys.maxsize)


def test_counts_equal_tokenize_without_special_tokens(tiny_tokenizer_dir, imdb_texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    texts = SENTENCES + ["", "   ", "unseen wörds ☃ 中文"] + imdb_texts[:200]
    op = make_op("token_num_filter", hf_tokenizer=str(tiny_tokenizer_dir), min_num=10, max_num=20)
    kept, batch = run_op(op, [{"text": t} for t in texts])
    expected = [len(tok.tokenize(t)) for t in texts]
    assert batch.stats["num_token"] == expected
    assert len(tok("a b c")["input_ids"]) == len(tok.tokenize("a b c")) + 2  # specials exist, not counted
    assert [s["text"] for s in kept] == [t for t, n in zip(texts, expected) if 10 <= n <= 20]


def test_missing_tokenizer_names_op_model_and_setting(tmp_path):
    missing = str(tmp_path / "no-such-tokenizer")
    with pytest.raises(ModelLoadError, match="token_num_filter") as err:
        run_op(make_op("token_num_filter", hf_tokenizer=missing), [{"text": "some text"}])
    assert missing in str(err.value) and "`hf_tokenizer`" in str(err.value)


def test_dj_case_with_pythia_tokenizer():
    """Data-Juicer's own expectations; needs the pythia tokenizer in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(PYTHIA, "tokenizer.json"), str):
        pytest.skip(f"{PYTHIA} tokenizer not in the local Hugging Face cache (no network here)")
    _, batch = run_op(make_op("token_num_filter"), [{"text": t} for t in DJ_TEXTS])
    assert batch.stats["num_token"] == DJ_COUNTS
    kept, _ = run_op(make_op("token_num_filter", min_num=10, max_num=20), [{"text": t} for t in DJ_TEXTS])
    assert [s["text"] for s in kept] == [DJ_TEXTS[0], DJ_TEXTS[4], DJ_TEXTS[5]]
