"""document_simhash_deduplicator: Data-Juicer's cases, simhash values equal to simhash-pybind's
(known values and a plain hashlib restatement), exact ``find_all`` pairs, cluster semantics."""

from __future__ import annotations

import hashlib
from collections import deque

import numpy as np
import pytest

from dj_ops.ops.common import dedup_hashing as dh
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op
from tests.ops.dj_case_asserts import assert_dj_case
from tests.ops.test_document_minhash_deduplicator import ADVERSARIAL, batch_of, dedup, near_duplicates, reference_shingles

OP = "document_simhash_deduplicator"


def reference_simhash(text: str, tokenization: str, window: int, lowercase: bool = True,
                      ignore_pattern: str | None = None) -> int:
    """simhash.compute(map(simhash.unsigned_hash, shingles)) over Data-Juicer's shingle *list*."""
    shingles = reference_shingle_list(text, tokenization, window, lowercase, ignore_pattern)
    hashes = np.array([int.from_bytes(hashlib.md5(s).digest()[:8], "big") for s in shingles], dtype=np.uint64)
    bits = (hashes[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    votes = 2 * bits.astype(np.int64).sum(axis=0) - len(hashes)  # (+1 per set bit) + (-1 per clear bit)
    return sum(1 << bit for bit in range(64) if votes[bit] > 0)


def reference_shingle_list(text, tokenization, window, lowercase, ignore_pattern) -> list[bytes]:
    # the MinHash reference builds a set; SimHash keeps repeats, so rebuild the list from the same rules
    if lowercase:
        text = text.lower()
    if ignore_pattern:
        import regex

        text = regex.compile(ignore_pattern).sub("", text)
    if tokenization == "character":
        toks, sep = list(text), ""
    elif tokenization == "punctuation":
        import regex

        toks, sep = regex.compile(r"\p{P}").split(text), " "
    else:
        toks, sep = [t for t in text.split(" ") if t], " "
    return [sep.join(toks[i:i + window]).encode("utf-8", "surrogatepass") for i in range(len(toks) - window + 1)]


def reference_kept(hashes: list[int], max_distance: int) -> list[int]:
    """Data-Juicer's process(): find_all pairs, BFS clusters over hashes, first row per cluster,
    exact-hash dedup for hashes in no pair."""
    unique = sorted(set(hashes))
    graph: dict[int, set[int]] = {}
    for i, x in enumerate(unique):
        for y in unique[i + 1:]:
            if (x ^ y).bit_count() <= max_distance:
                graph.setdefault(x, set()).add(y)
                graph.setdefault(y, set()).add(x)
    cluster_of: dict[int, int] = {}
    for start in graph:
        if start in cluster_of:
            continue
        cluster_of[start] = start
        queue = deque([start])
        while queue:
            for nxt in graph[queue.popleft()]:
                if nxt not in cluster_of:
                    cluster_of[nxt] = start
                    queue.append(nxt)
    seen: set = set()
    kept = []
    for i, h in enumerate(hashes):
        key = ("cluster", cluster_of[h]) if h in cluster_of else ("hash", h)
        if key not in seen:
            seen.add(key)
            kept.append(i)
    return kept


@pytest.mark.parametrize("case", dj_cases_for(OP), ids=lambda c: c["source"].split("::")[-1])
def test_dj_cases(case):
    assert_dj_case(case)


def test_known_simhash_pybind_values():
    # simhash-pybind 0.0.3: compute(map(unsigned_hash, shingles)) of 3-word shingles
    known = {
        "today is sunday and its a happy day": 12971786984770650148,
        "the quick brown fox jumps over the lazy dog again and again": 660938462196276682,
        "ünïcödé 日本語 🙂 text with emoji and more words here": 307216778172892604,
        "too short": 0,
    }
    op = make_op(OP, window_size=3)
    assert op.compute_hash(batch_of(list(known))).tolist() == list(known.values())
    spans = dh.TokenSpans(np.frombuffer(b"abc", np.uint8).copy(), np.array([0, 3]), np.array([3, 3]),
                          np.array([0, 1, 2]), np.zeros(0, np.uint8))
    assert dh.shingle_hashes(spans, 1, md5=True)[0].tolist() == [10376663631224000432, 15284527576400310788]


@pytest.mark.parametrize("tokenization,window,n_imdb", [("space", 6, 300), ("space", 1, 50), ("punctuation", 3, 150),
                                                        ("character", 4, 40)])
def test_simhashes_equal_reference(imdb_texts, tokenization, window, n_imdb):
    texts = imdb_texts[:n_imdb] + ADVERSARIAL
    op = make_op(OP, tokenization=tokenization, window_size=window)
    got = op.compute_hash(batch_of(texts))
    assert got.dtype == np.uint64
    assert got.tolist() == [reference_simhash(t, tokenization, window) for t in texts]


def test_lowercase_and_ignore_pattern_equal_reference(imdb_texts):
    texts = imdb_texts[:60] + ADVERSARIAL
    op = make_op(OP, lowercase=False, ignore_pattern=r"\p{P}")
    expected = [reference_simhash(t, "space", 6, lowercase=False, ignore_pattern=r"\p{P}") for t in texts]
    assert op.compute_hash(batch_of(texts)).tolist() == expected


def test_reference_shingles_agree_with_the_minhash_reference():
    text = "A b, c. d! A b, c. d! e"
    for tokenization in ("space", "punctuation", "character"):
        assert set(reference_shingle_list(text, tokenization, 3, True, None)) == reference_shingles(text, tokenization, 3)


@pytest.mark.parametrize("num_blocks,distance", [(6, 4), (5, 3), (4, 1), (8, 2)])
def test_pairs_are_exactly_those_within_the_distance(num_blocks, distance):
    rng = np.random.default_rng(num_blocks)
    base = rng.integers(0, 2**63, size=120, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 120, dtype=np.uint64)
    hashes = [int(h) for h in base]
    for h in hashes[:80]:  # plant neighbours at distances 0..distance+2
        bits = rng.choice(64, size=int(rng.integers(0, distance + 3)), replace=False)
        hashes.append(h ^ sum(1 << int(b) for b in bits))
    order = rng.permutation(len(hashes))
    hashes = [hashes[i] for i in order]
    index = dh.SimHashIndex(num_blocks, distance)
    index.add(list(range(len(hashes))), np.array(hashes, dtype=np.uint64))
    removed = index.finalize()
    assert [i for i in range(len(hashes)) if i not in removed] == reference_kept(hashes, distance)


def test_kept_rows_equal_reference_on_near_duplicates(imdb_texts):
    texts = near_duplicates(imdb_texts[:200], 100, seed=2) + ADVERSARIAL
    op = make_op(OP)
    removed = dedup(op, texts, splits=(7, 150, 151))
    expected = reference_kept([reference_simhash(t, "space", 6) for t in texts], 4)
    assert [i for i in range(len(texts)) if i not in removed] == expected
    assert len(removed) > 15


def test_chain_and_first_row_survives():
    h0 = 0x0123456789ABCDEF
    h1 = h0 ^ 0b1111  # 4 bits from h0
    h2 = h1 ^ (0b1111 << 40)  # 4 bits from h1, 8 from h0
    index = dh.SimHashIndex(6, 4)
    index.add([3, 5, 8], [h2, 0xFFFF000000000000, h1])
    index.add([9, 12], [h0, h2])
    # h2 ~ h1 ~ h0: one component over rows 3, 8, 9, 12 (row 12 repeats h2); its first row survives
    assert index.finalize() == {8: 3, 9: 3, 12: 3}
    summary = index.summary()
    assert summary["clusters"] == 1 and summary["removed_rows"] == 3
    assert summary["sample_pairs"][0] == {"survivor": 3, "removed": 8, "hamming_distance": 4, "similarity": 0.9375}


def test_identical_result_across_batch_splits(imdb_texts):
    texts = near_duplicates(imdb_texts[:200], 80, seed=4)
    op = make_op(OP)
    whole = dedup(op, texts)
    assert whole and dedup(op, texts, splits=(1, 64, 65, 199)) == whole
    assert all(survivor < removed for removed, survivor in whole.items())


def test_empty_batch_and_empty_index():
    op = make_op(OP)
    assert op.compute_hash(batch_of([])).shape == (0,)
    assert op.new_index().finalize() == {}


@pytest.mark.parametrize("params", [{"tokenization": "sentencepiece"}, {"window_size": 0}, {"num_blocks": 0},
                                    {"num_blocks": 65}, {"num_blocks": 4, "hamming_distance": 4},
                                    {"hamming_distance": 0}])
def test_invalid_params(params):
    with pytest.raises(ValueError, match=OP):
        make_op(OP, **params)
