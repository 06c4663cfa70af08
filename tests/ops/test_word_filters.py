"""Word-based filters: words_num, word_repetition, special_characters, stopwords, flagged_words."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from dj_ops.core.batch import Batch
from dj_ops.ops.common import text as tx
from dj_ops.ops.common.models import ModelLoadError
from dj_ops.ops.filter import word_repetition_filter as word_repetition
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case
from tests.ops.words_reference import (
    ADVERSARIAL,
    dj_refine,
    dj_split,
    dj_word_rep_ratio,
    random_strings,
    tiny_sentencepiece_model,
)

SPECIAL = tx.SPECIAL_CHARACTERS


def stats_of(op, texts: list[str]) -> dict[str, list]:
    _, batch = run_op(op, [{"text": t} for t in texts])
    return batch.stats


# --- Data-Juicer's own cases -------------------------------------------------------------------


@pytest.mark.parametrize("op_name", ["words_num_filter", "word_repetition_filter", "special_characters_filter"])
def test_dj_cases(op_name):
    for case in dj_cases_for(op_name):
        assert_dj_case(case)


# DJ's expected results depend on its downloaded stopwords.json / flagged_words.json; these tiny
# lists hold the words of DJ's lists that the cases contain.
DJ_CASE_WORDS = {
    "stopwords_filter": ("stopwords_dir", "stopwords.json", ["is", "and", "it's", "a", "do", "you", "of"]),
    "flagged_words_filter": ("flagged_words_dir", "flagged_words.json", ["anal", "cumshot", "fuck", "doggystyle"]),
}


@pytest.mark.parametrize("op_name", sorted(DJ_CASE_WORDS))
def test_dj_word_list_cases(op_name, tmp_path):
    param, file_name, words = DJ_CASE_WORDS[op_name]
    (tmp_path / file_name).write_text(json.dumps({"en": words}))
    for case in dj_cases_for(op_name):
        assert_dj_case({**case, "params": {**case["params"], param: str(tmp_path)}})


# --- words_num ---------------------------------------------------------------------------------


def test_words_num_counts_refined_words_without_lower_casing(imdb_texts):
    texts = imdb_texts[:500] + ADVERSARIAL + random_strings(300)
    stats = stats_of(make_op("words_num_filter", min_num=0), texts)
    assert stats["num_words"] == [len(dj_refine(dj_split(t), SPECIAL)) for t in texts]


def test_words_num_bounds_are_closed():
    texts = ["one two three", "one two", "one two three four", "... !!! 123"]
    op = make_op("words_num_filter", min_num=2, max_num=3)
    kept, batch = run_op(op, [{"text": t} for t in texts])
    assert batch.stats["num_words"] == [3, 2, 4, 0]
    assert [k["text"] for k in kept] == texts[:2]
    assert make_op("words_num_filter").max_num == sys.maxsize


# --- word_repetition ---------------------------------------------------------------------------


@pytest.mark.parametrize("rep_len", [1, 2, 3, 10])
def test_word_repetition_equals_reference(imdb_texts, rep_len):
    texts = imdb_texts[:400] + ADVERSARIAL + random_strings(200, seed=rep_len) + [
        "a b c a b c a b c", "A a. (a) a! b", "x " * 30,
    ]
    stats = stats_of(make_op("word_repetition_filter", rep_len=rep_len), texts)
    expected = [dj_word_rep_ratio(dj_refine(dj_split(t), SPECIAL, lower_case=True), rep_len) for t in texts]
    assert stats["word_rep_ratio"] == expected


def test_word_repetition_hash_collisions_fall_back_to_exact_counts(imdb_texts, monkeypatch):
    # zero multipliers: every n-gram of the batch gets the same hash
    monkeypatch.setattr(word_repetition, "_multipliers", lambda n: np.zeros(n + 1, dtype=np.uint64))
    texts = imdb_texts[:100] + ["a b a b a b", "c d e f g h", ""]
    for n in (1, 3):
        words = tx.refine_texts(texts, lower_case=True)
        expected = [dj_word_rep_ratio(w, n) for w in words.to_lists()]
        assert word_repetition.word_repetition_ratios(words, n).tolist() == expected


def test_word_repetition_short_texts_and_bounds():
    texts = ["a b c", "a a a a", "", "a b a b c"]
    op = make_op("word_repetition_filter", rep_len=2, min_ratio=0.0, max_ratio=0.5)
    kept, batch = run_op(op, [{"text": t} for t in texts])
    # "a b a b c": bigrams ab ba ab bc -> ab twice -> 2/4
    assert batch.stats["word_rep_ratio"] == [0.0, 1.0, 0.0, 0.5]
    assert [k["text"] for k in kept] == ["a b c", "", "a b a b c"]
    with pytest.raises(ValueError):
        make_op("word_repetition_filter", rep_len=0)


# --- special_characters ------------------------------------------------------------------------


def test_special_characters_ratio(imdb_texts):
    texts = imdb_texts[:500] + ADVERSARIAL + random_strings(200)
    stats = stats_of(make_op("special_characters_filter"), texts)
    assert stats["special_char_ratio"] == [(sum(c in SPECIAL for c in t) / len(t)) if t else 0.0 for t in texts]


def test_special_characters_bounds():
    texts = ["abc!", "ab!!", "", "😊a"]
    op = make_op("special_characters_filter", min_ratio=0.25, max_ratio=0.5)
    kept, batch = run_op(op, [{"text": t} for t in texts])
    assert batch.stats["special_char_ratio"] == [0.25, 0.5, 0.0, 0.5]
    assert [k["text"] for k in kept] == ["abc!", "ab!!", "😊a"]


# --- stopwords / flagged words -----------------------------------------------------------------


@pytest.mark.parametrize(
    "op_name, param, stat",
    [("stopwords_filter", "stopwords_dir", "stopwords_ratio"), ("flagged_words_filter", "flagged_words_dir", "flagged_words_ratio")],
)
def test_word_list_ratio_equals_reference(imdb_texts, tmp_path, op_name, param, stat):
    listed = {"the", "a", "and", "movie", "bad", "it's", "😊"}
    (tmp_path / f"my_{op_name.split('_filter')[0]}.json").write_text(json.dumps({"en": sorted(listed)}))
    texts = imdb_texts[:400] + ADVERSARIAL + random_strings(200)
    stats = stats_of(make_op(op_name, **{param: str(tmp_path)}), texts)

    def ratio(words):
        return min(sum(w in listed for w in words) / len(words), 1.0) if words else 0.0

    assert stats[stat] == [ratio(dj_refine(dj_split(t), SPECIAL, lower_case=True)) for t in texts]


def test_words_augmentation(tmp_path):
    (tmp_path / "stopwords.json").write_text(json.dumps({"zh": ["你好", "世界"]}))
    texts = ["你 好 世 界", "你好", "x y"]
    op = make_op("stopwords_filter", lang="zh", stopwords_dir=str(tmp_path), use_words_aug=True,
                 words_aug_group_sizes=[2], words_aug_join_char="")
    stats = stats_of(op, texts)
    # "你 好 世 界" -> 4 words + 3 bigrams (你好 好世 世界): 2 listed of 7
    assert stats["stopwords_ratio"] == [2 / 7, 1.0, 0.0]


def test_lang_all_merges_languages_and_txt_folders(tmp_path):
    (tmp_path / "en.txt").write_text("the\nand\n\n")
    (tmp_path / "fr.txt").write_text("le\n")
    texts = ["the cat and le chat", "xyz"]
    assert stats_of(make_op("stopwords_filter", stopwords_dir=str(tmp_path), lang="all"), texts)["stopwords_ratio"] == [0.6, 0.0]
    assert stats_of(make_op("stopwords_filter", stopwords_dir=str(tmp_path), lang="fr"), texts)["stopwords_ratio"] == [0.2, 0.0]
    with pytest.raises(ValueError, match="no stopwords list for lang='de'"):
        make_op("stopwords_filter", stopwords_dir=str(tmp_path), lang="de")


def test_dj_style_json_files_merge(tmp_path):
    (tmp_path / "stopwords.json").write_text(json.dumps({"en": ["the"]}))
    (tmp_path / "extra_stopwords.json").write_text(json.dumps({"en": ["cat"]}))
    (tmp_path / "flagged_words.json").write_text(json.dumps({"en": ["chat"]}))  # other type: ignored
    assert stats_of(make_op("stopwords_filter", stopwords_dir=str(tmp_path)), ["the cat chat"])["stopwords_ratio"] == [2 / 3]


def test_empty_word_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="stopwords"):
        make_op("stopwords_filter", stopwords_dir=str(tmp_path / "empty_stopwords_dir"))
    (tmp_path / "readme.md").write_text("nothing")
    with pytest.raises(FileNotFoundError, match="flagged_words"):
        make_op("flagged_words_filter", flagged_words_dir=str(tmp_path))


def test_default_package_lists():
    stopwords = make_op("stopwords_filter")
    assert {"the", "and", "is", "of"} <= stopwords.word_set
    flagged = make_op("flagged_words_filter")
    assert {"fuck", "anal"} <= flagged.word_set and "movie" not in flagged.word_set
    texts = ["The movie is one of the best.", "Fuck this anal shit!", "..."]
    assert stats_of(stopwords, texts)["stopwords_ratio"][0] > 0.5
    assert stats_of(flagged, texts)["flagged_words_ratio"] == [0.0, 0.75, 0.0]
    assert len(make_op("flagged_words_filter", lang="all").word_set) > len(flagged.word_set)
    assert make_op("stopwords_filter", lang="zh").word_set


# --- shared words, tokenization ----------------------------------------------------------------


def test_word_filters_share_one_refinement(monkeypatch, tmp_path):
    (tmp_path / "stopwords.json").write_text(json.dumps({"en": ["the"]}))
    calls = []
    real = tx.refine_texts
    monkeypatch.setattr(tx, "refine_texts", lambda texts, lower_case: calls.append((len(texts), lower_case)) or real(texts, lower_case))
    batch = Batch({"text": ["The cat sat on the mat today", "ÉCOLE the école", "x"]})
    ops = [
        make_op("words_num_filter", min_num=2),
        make_op("word_repetition_filter", rep_len=1, max_ratio=1.0),
        make_op("stopwords_filter", stopwords_dir=str(tmp_path), min_ratio=0.0),
    ]
    for op in ops:
        op.ensure_stats(batch)
        batch = batch.take(op.keep(batch))
    # one refinement of the batch; words_num re-counts only its non-ASCII row without lower-casing
    assert calls == [(3, True), (1, False)]
    assert batch.stats == {"num_words": [7, 3], "word_rep_ratio": [2 / 7, 2 / 3], "stopwords_ratio": [2 / 7, 1 / 3]}


def test_tokenization_needs_a_local_model(tmp_path):
    with pytest.raises(ModelLoadError, match="word_repetition_filter.*en.sp.model"):
        make_op("word_repetition_filter", tokenization=True, sp_model_dir=str(tmp_path))


def test_tokenization_uses_sentencepiece_pieces(tmp_path):
    pytest.importorskip("sentencepiece")
    tiny_sentencepiece_model(tmp_path)
    (tmp_path / "stopwords.json").write_text(json.dumps({"en": ["▁the", "▁a"]}))
    texts = ["The movie was a good movie, the end!", "", "VERY bad 123"]
    tokenizer = tx.load_sentencepiece("en", str(tmp_path), "test")
    pieces = [tokenizer.encode(t) for t in texts]
    common = {"tokenization": True, "sp_model_dir": str(tmp_path)}
    assert stats_of(make_op("words_num_filter", **common), texts)["num_words"] == [
        len(dj_refine(p, SPECIAL)) for p in pieces
    ]
    refined = [dj_refine(p, SPECIAL, lower_case=True) for p in pieces]
    assert stats_of(make_op("word_repetition_filter", rep_len=1, **common), texts)["word_rep_ratio"] == [
        dj_word_rep_ratio(w, 1) for w in refined
    ]
    ratios = stats_of(make_op("stopwords_filter", stopwords_dir=str(tmp_path), **common), texts)["stopwords_ratio"]
    assert ratios == [(sum(w in ("▁the", "▁a") for w in ws) / len(ws)) if ws else 0.0 for ws in refined]
