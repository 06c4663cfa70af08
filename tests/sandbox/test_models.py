"""The small models: seeded, learn something, evaluated consistently; tokenizers."""

from __future__ import annotations

import json
import math
import random

import pytest

from sandbox_jobs.models import (BOS, EOS, EvalSettings, TextTokenizer, TokenizerSettings, TrainSettings,
                                 evaluate_model, tokenizer_for, train_model)

from .conftest import TINY_TRAIN, needs_torch, review_rows, write_jsonl

pytestmark = needs_torch


def _train(tmp_path, data, name, **over):
    settings = TrainSettings(**{**TINY_TRAIN, "train_dataset": str(data), **over})
    return train_model(settings, tmp_path / name, tmp_path / "tok", log=lambda m: None)


def test_training_is_seeded_and_evaluation_consistent(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", review_rows(40))
    held = write_jsonl(tmp_path / "held.jsonl", review_rows(10, seed=1))
    a = _train(tmp_path, data, "a")
    b = _train(tmp_path, data, "b")
    c = _train(tmp_path, data, "c", seed=7)
    assert a["final_train_loss"] == b["final_train_loss"] != c["final_train_loss"]
    ev = [evaluate_model(EvalSettings(model_path=r["model_path"], eval_dataset=str(held)), log=lambda m: None)
          for r in (a, b)]
    assert ev[0] == ev[1]
    e = ev[0]
    assert e["perplexity"] == pytest.approx(math.exp(e["eval_loss"]))
    # byte tokenizer: every target is one byte except at most one <eos> per row (zero bytes)
    nats = e["eval_loss"] * e["eval_tokens"]
    assert nats / math.log(2) / e["eval_tokens"] <= e["bits_per_byte"]
    assert e["bits_per_byte"] <= nats / math.log(2) / (e["eval_tokens"] - e["eval_rows"])
    assert a["device"] in ("cpu", "cuda") and a["train_rows"] == 40


def test_lm_learns_beyond_uniform(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [{"text": "abcabcabcabc abcabc"} for _ in range(64)])
    r = _train(tmp_path, data, "m", epochs=5, lr=0.01)
    e = evaluate_model(EvalSettings(model_path=r["model_path"], eval_dataset=str(data)), log=lambda m: None)
    assert e["perplexity"] < 20 < 259  # far below a uniform guess over the byte vocabulary


def test_max_rows_draws_a_seeded_sample(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", review_rows(50))
    r = _train(tmp_path, data, "s", max_rows=12)
    assert r["train_rows"] == 12 and r["source_rows"] == 50


def test_classifier_accuracy_on_separable_labels(tmp_path):
    rng = random.Random(0)
    rows = [{"text": " ".join(rng.choice(["great", "fine", "loved"] if y else ["awful", "boring", "bad"])
                              for _ in range(6)), "meta": {"label": "pos" if y else "neg"}}
            for y in (rng.random() < 0.5 for _ in range(120))]
    data = write_jsonl(tmp_path / "train.jsonl", rows[:90])
    held = write_jsonl(tmp_path / "held.jsonl", rows[90:])
    r = _train(tmp_path, data, "clf", type="transformer_classifier", epochs=6, lr=0.01)
    meta = json.loads((tmp_path / "clf" / "model.json").read_text())
    assert meta["labels"] == ["neg", "pos"]
    e = evaluate_model(EvalSettings(model_path=r["model_path"], eval_dataset=str(held)), log=lambda m: None)
    assert e["accuracy"] >= 0.9 and e["eval_rows"] == 30
    with pytest.raises(ValueError, match="does not fit"):
        evaluate_model(EvalSettings(model_path=r["model_path"], eval_dataset=str(held), type="perplexity"))


def test_bpe_tokenizer_is_trained_once_and_shared(tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", review_rows(40))
    logs: list[str] = []
    settings = TokenizerSettings(type="bpe", vocab_size=300)
    tok, path = tokenizer_for(settings, str(data), "text", tmp_path / "cache", log=logs.append)
    again, path2 = tokenizer_for(settings, str(data), "text", tmp_path / "cache", log=logs.append)
    assert path == path2 and len(logs) == 1 and tok.vocab_size == again.vocab_size <= 300
    text = "the movie was great, naïve 😀"
    ids = tok.encode([text])[0]
    assert sum(int(tok.token_bytes[i]) for i in ids) == len(text.encode())  # bits per byte are exact
    assert TextTokenizer("byte").encode(["é"]) == [[0xC3 + 3, 0xA9 + 3]] and BOS == 1 and EOS == 2


def test_missing_training_data_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="train_dataset is not set"):
        train_model(TrainSettings(**TINY_TRAIN), tmp_path / "m", tmp_path / "tok")


@pytest.mark.gpu
def test_trains_on_the_gpu_when_present(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    data = write_jsonl(tmp_path / "train.jsonl", review_rows(40))
    assert _train(tmp_path, data, "g", device="auto")["device"] == "cuda"
