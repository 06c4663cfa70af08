"""dj_ops.ops.common.text: SPECIAL_CHARACTERS, word splitting / refinement, the columnar batch
path against plain per-document code, and the batch cache of words."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from dj_ops.core.batch import Batch
from dj_ops.ops.common import text as tx
from dj_ops.ops.common.models import ModelLoadError
from tests.ops.words_reference import (
    ADVERSARIAL,
    dj_rebuild,
    dj_refine,
    dj_split,
    dj_strip,
    random_strings,
    tiny_sentencepiece_model,
)

SPECIAL = tx.SPECIAL_CHARACTERS


def test_special_characters_membership():
    # DJ 1.6.1: punctuation + digits + whitespace + its 188 other characters + emoji 2.2.0 keys
    assert len(SPECIAL) == 4965
    assert len(tx.SPECIAL_CODEPOINTS) == 1618
    assert set(string.punctuation + string.digits + string.whitespace) <= SPECIAL
    for c in "’“”…«»—–。，！？【】￼\u00ad\u200b\u3000\ufeffГ😊©®™":
        assert c in SPECIAL, repr(c)
    for c in "aZé日г\xa0\u2028▁":
        assert c not in SPECIAL, repr(c)
    assert "👍🏽" in SPECIAL and "#️⃣" in SPECIAL  # multi-code-point emoji are members too
    assert "\U0001fae9" not in SPECIAL  # an Emoji 16.0 face: newer than emoji 2.2.0


def test_emoji_asset_is_emoji_2_2_0():
    emoji = pytest.importorskip("emoji")
    keys = set(json.loads((tx._ASSETS / "emoji_2.2.0_keys.json").read_text(encoding="utf-8")))
    assert len(keys) == 4733
    if emoji.__version__ == "2.2.0":
        assert keys == set(emoji.EMOJI_DATA)
    else:  # later emoji releases only add keys
        assert keys <= set(emoji.EMOJI_DATA)


def test_get_words_splits_on_space_newline_tab_only():
    assert tx.get_words(" a  b\tc\n\nd\re\xa0f ") == ["a", "b", "c", "d\re\xa0f"]
    assert tx.get_words("") == []
    for text in ADVERSARIAL + random_strings(300):
        assert tx.get_words(text) == dj_split(text)


def test_strip_special():
    assert tx.strip_special("...«Hello!»…") == "Hello"
    assert tx.strip_special("a.b") == "a.b"
    assert tx.strip_special("!!!") == ""
    assert tx.strip_special("") == ""
    assert tx.strip_special("😊ok👍🏽") == "ok"  # emoji and the lone skin-tone modifier are special
    for text in ADVERSARIAL + random_strings(300):
        for word in dj_split(text):
            assert tx.strip_special(word) == dj_strip(word, SPECIAL)


def test_words_refinement_and_augmentation():
    words = ["Hello,", "WORLD", "...", "it's"]
    assert tx.words_refinement(words) == words
    assert tx.words_refinement(words, lower_case=True, strip_special_chars=True) == ["hello", "world", "it's"]
    assert tx.words_refinement(["a", "b", "c"], use_words_aug=True, words_aug_group_sizes=[2, 3], words_aug_join_char="_") == [
        "a", "b", "c", "a_b", "b_c", "a_b_c",
    ]
    assert tx.words_augmentation(["x"], 2, "") == []


@pytest.mark.parametrize("lower_case", [True, False])
def test_refine_texts_equals_per_document_rules(imdb_texts, lower_case):
    texts = imdb_texts[:600] + ADVERSARIAL + random_strings(400, seed=lower_case)
    expected = [dj_refine(dj_split(t), SPECIAL, lower_case) for t in texts]
    assert tx.refine_texts(texts, lower_case).to_lists() == expected
    tokens = [dj_split(t) for t in texts]
    assert tx.refine_token_lists(tokens, lower_case).to_lists() == expected


def test_refine_texts_with_lone_surrogates():
    texts = ["a\ud800b c", "x \udc00 !\ud800!", "plain Text."]
    expected = [dj_refine(dj_split(t), SPECIAL, True) for t in texts]
    words = tx.refine_texts(texts, lower_case=True)
    assert words.to_lists() == expected
    assert words.counts().tolist() == [2, 3, 2]
    assert tx.refine_token_lists([dj_split(t) for t in texts], True).to_lists() == expected


def test_special_char_counts(imdb_texts):
    texts = imdb_texts[:500] + ADVERSARIAL + random_strings(300) + ["x\ud800!"]
    expected = [sum(c in SPECIAL for c in t) for t in texts]
    assert tx.special_char_counts(texts).tolist() == expected
    assert tx.special_char_counts([]).tolist() == []


def test_rebuild_words_equals_dj_split_merge(imdb_texts):
    for text in imdb_texts[:300] + ADVERSARIAL + random_strings(300):
        assert tx.rebuild_words(text) == dj_rebuild(text)
        assert tx.rebuild_words(text, lambda w: len(w) > 3) == dj_rebuild(text, lambda w: len(w) > 3)


def test_word_lists_take_ids_row_sums():
    words = tx.WordLists.from_lists([["a", "b", "a"], [], ["c"], ["b", "\ud800"]])
    assert words.counts().tolist() == [3, 0, 1, 2]
    ids = words.ids()
    assert ids[0] == ids[2] and ids[1] == ids[4] and len(set(ids.tolist())) == 4
    taken = words.take([3, 0])
    assert taken.to_lists() == [["b", "\ud800"], ["a", "b", "a"]]
    assert taken.ids().tolist() == [ids[4], ids[5], ids[0], ids[1], ids[2]]
    assert words.row(3) == ["b", "\ud800"]
    assert words.row_sums(np.array([1, 0, 1, 1, 0, 1], dtype=bool)).tolist() == [2, 0, 1, 1]
    assert words.augmented([2], "+").to_lists() == [["a", "b", "a", "a+b", "b+a"], [], ["c"], ["b", "\ud800", "b+\ud800"]]


def test_batch_cache_computes_words_once_and_survives_take(monkeypatch):
    calls = []
    real = tx.refine_texts
    monkeypatch.setattr(tx, "refine_texts", lambda texts, lower_case: calls.append(lower_case) or real(texts, lower_case))
    batch = Batch({"text": ["One two three", "Four, five!", "six"]})
    first = tx.batch_refined_words(batch, "text", lower_case=True)
    again = tx.batch_refined_words(batch, "text", lower_case=True)
    assert again is first and calls == [True]
    # stopwords-style parameters (aug off, any group sizes) share the same words
    same = tx.batch_refined_words(batch, "text", True, words_aug_group_sizes=[3], words_aug_join_char="-")
    assert same is first and calls == [True]
    smaller = batch.take(np.array([True, False, True]))
    assert tx.batch_refined_words(smaller, "text", lower_case=True).to_lists() == [["one", "two", "three"], ["six"]]
    assert calls == [True]
    # different parameters, different entries
    assert tx.batch_refined_words(batch, "text", lower_case=False).to_lists()[0] == ["One", "two", "three"]
    aug = tx.batch_refined_words(batch, "text", True, use_words_aug=True, words_aug_group_sizes=[2])
    assert aug.to_lists()[1] == ["four", "five", "fourfive"]
    assert calls == [True, False]
    batch.invalidate_cache()
    tx.batch_refined_words(batch, "text", lower_case=True)
    assert calls == [True, False, True]


def test_batch_word_counts_case_sensitive_for_non_ascii():
    # 'Г' is special but 'г' is not: counts use the text as written, not lower-cased
    batch = Batch({"text": ["Г a", "г a", "One, two", "", None]})
    assert tx.batch_word_counts(batch, "text").tolist() == [1, 2, 2, 0, 0]
    assert tx.batch_refined_words(batch, "text", lower_case=True).counts().tolist() == [2, 2, 2, 0, 0]


def test_refined_words_key_encodes_every_parameter():
    keys = {
        tx.refined_words_key("text", True),
        tx.refined_words_key("text", False),
        tx.refined_words_key("content", True),
        tx.refined_words_key("text", True, use_words_aug=True),
        tx.refined_words_key("text", True, use_words_aug=True, words_aug_group_sizes=[3]),
        tx.refined_words_key("text", True, use_words_aug=True, words_aug_join_char=" "),
    }
    assert len(keys) == 6
    assert tx.refined_words_key("text", True, words_aug_group_sizes=[3]) == tx.refined_words_key("text", True)


def test_missing_sentencepiece_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        tx.load_sentencepiece("xx", str(tmp_path), "words_num_filter")
    message = str(err.value)
    assert "words_num_filter" in message and "xx.sp.model" in message and "sp_model_dir" in message
    assert tx.MODELS_DIR_ENV in message


def test_models_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(tx.MODELS_DIR_ENV, str(tmp_path))
    assert tx.default_models_dir() == tmp_path
    monkeypatch.delenv(tx.MODELS_DIR_ENV)
    monkeypatch.setenv("DATA_JUICER_CACHE_HOME", str(tmp_path / "dj"))
    assert tx.default_models_dir() == tmp_path / "dj" / "models"


def test_sentencepiece_tokens_cached_and_refined(tmp_path):
    pytest.importorskip("sentencepiece")
    import pickle

    tiny_sentencepiece_model(tmp_path)
    tokenizer = tx.load_sentencepiece("en", str(tmp_path), "test")
    texts = ["The movie was VERY good!! 123 😊", "", "Σ ok"]
    batch = Batch({"text": texts})
    pieces = tx.batch_tokens(batch, "text", tokenizer)
    assert pieces[0][:2] == tokenizer.encode("The")[:2] and pieces[1] == []
    refined = tx.batch_refined_words(batch, "text", True, tokenizer)
    assert refined.to_lists() == [dj_refine(p, SPECIAL, True) for p in pieces]
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert clone.encode(texts[0]) == pieces[0]
