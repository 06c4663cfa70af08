"""Data metrics for EvaluateData: size, lexical diversity and stat shifts between two probes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import regex

from .ksigma import stat_moments

_WORD = regex.compile(r"\w+", regex.UNICODE)


def diversity(texts: list[str], max_n: int = 2) -> dict[str, Any]:
    """Rows, characters, vocabulary (distinct lower-cased words) and distinct-n ratios.

    distinct-n = distinct word n-grams / all word n-grams over the dataset (Li et al., 2016):
    1.0 when nothing repeats, lower for repetitive or duplicated text.  Comparable between
    datasets of similar size only (it falls as a dataset grows).
    """
    out: dict[str, Any] = {"rows": len(texts)}
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    out["mean_chars"] = float(lengths.mean()) if len(texts) else 0.0
    words = [_WORD.findall(t.lower()) for t in texts]
    total_words = sum(len(w) for w in words)
    out["words"] = total_words
    out["vocab_size"] = len({w for ws in words for w in ws})
    for n in range(1, max_n + 1):
        grams = [tuple(ws[i: i + n]) for ws in words for i in range(len(ws) - n + 1)]
        out[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else 0.0
    return out


def stat_shift(before: Any, after: Any) -> dict[str, dict[str, float]]:
    """Per stat: means before and after and the shift in standard deviations of ``before``.

    ``before`` and ``after`` are analyzer overall tables (the watched results of two probes).
    """
    mean_b, std_b = stat_moments(before)
    mean_a, std_a = stat_moments(after)
    out: dict[str, dict[str, float]] = {}
    for stat in mean_b:
        if stat not in mean_a:
            continue
        sd = std_b[stat]
        shift = (mean_a[stat] - mean_b[stat]) / sd if sd and not math.isnan(sd) else math.nan
        out[stat] = {"mean_before": mean_b[stat], "mean_after": mean_a[stat],
                     "std_before": sd, "std_after": std_a[stat], "shift_sigma": shift}
    return out
