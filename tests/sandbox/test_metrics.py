"""Data metrics of EvaluateData, by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sandbox_jobs.metrics import diversity, stat_shift


def test_diversity_by_hand():
    d = diversity(["The cat sat.", "the cat ran"], max_n=2)
    # words: the cat sat | the cat ran -> 6 unigrams, 4 distinct; bigrams: the-cat, cat-sat, the-cat, cat-ran
    assert d == {"rows": 2, "mean_chars": pytest.approx((12 + 11) / 2), "words": 6, "vocab_size": 4,
                 "distinct_1": pytest.approx(4 / 6), "distinct_2": pytest.approx(3 / 4)}
    assert diversity([], 1) == {"rows": 0, "mean_chars": 0.0, "words": 0, "vocab_size": 0, "distinct_1": 0.0}


def test_stat_shift_in_standard_deviations_of_the_probe():
    before = pd.DataFrame({"text_len": {"mean": 100.0, "std": 20.0}, "lang": {"mean": float("nan"), "std": float("nan")}})
    after = {"text_len": {"mean": 90.0, "std": 10.0}}  # watched results come back as dicts
    s = stat_shift(before, after)
    assert list(s) == ["text_len"]
    assert s["text_len"] == {"mean_before": 100.0, "mean_after": 90.0, "std_before": 20.0, "std_after": 10.0,
                             "shift_sigma": -0.5}
    assert math.isnan(stat_shift({"x": {"mean": 1.0, "std": 0.0}}, {"x": {"mean": 2.0, "std": 0.0}})["x"]["shift_sigma"])
