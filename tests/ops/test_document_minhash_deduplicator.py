"""document_minhash_deduplicator: Data-Juicer's cases, its exact signatures (checked against a
plain hashlib/numpy restatement of Data-Juicer's code), LSH parameters, and cluster semantics."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import regex

from dj_ops.core.batch import Batch
from dj_ops.ops.common import dedup_hashing as dh
from dj_ops.ops.common.models import ModelLoadError
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case

OP = "document_minhash_deduplicator"
P = np.uint64(dh.MERSENNE_PRIME)
LOW = np.uint64(dh.MAX_HASH)

ADVERSARIAL = [
    "", " ", "a", "a b c d", "a b c d e", "  a  b   c d    e  f ", "\ttabs\tand\nnewlines\nare\tnot split by space",
    "Ünïcödé ÇA va TRÈS bien, merci beaucoup!", "İstanbul İİİ ΣΊΣΥΦΟΣ straße", "日本語のテキストです。 これは 重複の テスト です。",
    "🙂🙃 emoji 👍🏽 family 👨‍👩‍👧 flags 🇫🇷 ok", "x" * 300 + " long token then a few words", "a\u0301 e\u0301 combining marks here ok",
    "nul\x00 byte\x00 inside the text here", "lone \ud800 surrogate in the text ok", "...!!!???,,,;;;", "end.with.dots.only.here.ok",
    # shingles of 55, 56, 63, 64 and 119 bytes: SHA-1 block boundaries
    " ".join(["abcdefghij"] * 5) + "abcde", " ".join(["abcdefghi"] * 5) + "abcdefghijk",
    " ".join(["q" * 12] * 5) + "xyz", " ".join(["w" * 12] * 5) + "wxyz", " ".join(["z" * 23] * 5),
]


def reference_shingles(text: str, tokenization: str, window: int, lowercase: bool = True,
                       ignore_pattern: str | None = None, sp_model=None) -> set[bytes]:
    """Data-Juicer's DocumentMinhashDeduplicator.compute_hash tokenization, restated."""
    if lowercase:
        text = text.lower()
    if ignore_pattern:
        text = regex.compile(ignore_pattern).sub("", text)
    enc = lambda s: s.encode("utf-8", "surrogatepass")  # noqa: E731
    if tokenization == "character":
        return {enc(text[i:i + window]) for i in range(len(text) - window + 1)}
    if tokenization == "punctuation":
        toks = regex.compile(r"\p{P}").split(text)
        return {enc(" ".join(toks[i:i + window])) for i in range(len(toks) - window + 1)}
    if tokenization == "space":
        toks = [t for t in text.split(" ") if t]
        return {enc(" ".join(toks[i:i + window])) for i in range(len(toks) - window + 1)}
    toks = sp_model.encode(text, out_type=str)
    return {enc("".join(toks[i:i + window])) for i in range(len(toks) - window + 1)}


def reference_signature(shingles: set[bytes], perm_a: np.ndarray, perm_b: np.ndarray) -> np.ndarray:
    hv = np.array([int.from_bytes(hashlib.sha1(s).digest()[:4], "little") for s in shingles], dtype=np.uint64)
    if len(hv) == 0:
        return np.full(len(perm_a), LOW, dtype=np.uint64)
    return np.bitwise_and((hv[:, None] * perm_a + perm_b) % P, LOW).min(axis=0)


def reference_kept(signatures: np.ndarray, bands: int, rows: int) -> list[int]:
    """Data-Juicer's process(): buckets on band bytes, UnionFind to the min index, keep roots."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        if parent[x] != x:
            parent[x] = find(parent[x])
        return parent[x]

    for b in range(bands):
        table: dict[bytes, set[int]] = {}
        for i, sig in enumerate(signatures):
            table.setdefault(sig[b * rows:(b + 1) * rows].astype(np.uint64).byteswap().tobytes(), set()).add(i)
        for cluster in table.values():
            if len(cluster) > 1:
                low = min(cluster)
                for x in cluster:
                    px, py = find(x), find(low)
                    parent[px] = parent[py] = min(px, py)
    return [i for i in range(len(signatures)) if find(i) == i]


def batch_of(texts: list[str], first_id: int = 0) -> Batch:
    return Batch({"text": list(texts)}, row_ids=np.arange(first_id, first_id + len(texts)))


def dedup(op, texts: list[str], splits: tuple[int, ...] = ()) -> dict[int, int]:
    index = op.new_index()
    bounds = [0, *splits, len(texts)]
    for lo, hi in zip(bounds, bounds[1:]):
        batch = batch_of(texts[lo:hi], lo)
        index.add(batch.row_ids.tolist(), op.compute_hash(batch))
    return index.finalize()


def near_duplicates(texts: list[str], n: int, seed: int = 0) -> list[str]:
    """``texts`` plus ``n`` copies with a few words dropped, shuffled deterministically."""
    rng = np.random.default_rng(seed)
    out = list(texts)
    for _ in range(n):
        words = out[rng.integers(len(out))].split(" ")
        drop = set(rng.integers(0, len(words), size=int(rng.integers(1, 6))).tolist())
        out.append(" ".join(w for i, w in enumerate(words) if i not in drop))
    rng.shuffle(out)
    return out


@pytest.mark.parametrize("case", dj_cases_for(OP), ids=lambda c: c["source"].split("::")[-1])
def test_dj_cases(case):
    assert_dj_case(case)


# LSH (bands, rows) from Data-Juicer 1.6.1's own optimal_param(threshold, num_perm)
DJ_OPTIMAL_PARAMS = {
    (0.1, 16): (15, 1), (0.1, 64): (15, 1), (0.1, 128): (64, 2), (0.1, 256): (117, 2),
    (0.3, 16): (8, 2), (0.3, 64): (21, 3), (0.3, 128): (37, 3), (0.3, 256): (64, 4),
    (0.5, 16): (5, 3), (0.5, 64): (14, 4), (0.5, 128): (25, 5), (0.5, 256): (42, 6),
    (0.6, 16): (4, 4), (0.6, 64): (10, 6), (0.6, 128): (18, 7), (0.6, 256): (32, 8),
    (0.7, 16): (3, 5), (0.7, 64): (8, 8), (0.7, 128): (14, 9), (0.7, 256): (25, 10),
    (0.75, 16): (2, 6), (0.75, 64): (7, 9), (0.75, 128): (11, 11), (0.75, 256): (21, 12),
    (0.8, 16): (2, 8), (0.8, 64): (5, 11), (0.8, 128): (9, 13), (0.8, 256): (17, 15),
    (0.85, 16): (2, 8), (0.85, 64): (4, 15), (0.85, 128): (8, 16), (0.85, 256): (13, 19),
    (0.9, 16): (1, 15), (0.9, 64): (3, 21), (0.9, 128): (5, 25), (0.9, 256): (9, 28),
    (0.95, 16): (1, 16), (0.95, 64): (2, 32), (0.95, 128): (3, 42), (0.95, 256): (5, 51),
}


def test_optimal_params_equal_data_juicer():
    got = {key: dh.optimal_lsh_params(*key) for key in DJ_OPTIMAL_PARAMS}
    assert got == DJ_OPTIMAL_PARAMS


def test_bands_from_optimal_params_unless_both_given():
    assert (make_op(OP).num_bands, make_op(OP).num_rows_per_band) == (25, 10)
    op = make_op(OP, num_bands=20)  # one of the two alone is ignored, as upstream
    assert (op.num_bands, op.num_rows_per_band) == (25, 10)
    op = make_op(OP, num_bands=16, num_rows_per_band=16)
    assert (op.num_bands, op.num_rows_per_band) == (16, 16)


def test_permutations_are_data_juicers_draws():
    gen = np.random.RandomState(seed=42)
    expected = [(gen.randint(1, P, dtype=np.uint64), gen.randint(0, P, dtype=np.uint64)) for _ in range(5)]
    a, b = dh.minhash_permutations(5)
    assert list(zip(a.tolist(), b.tolist())) == [(int(x), int(y)) for x, y in expected]


def message_spans(messages: list[bytes]) -> dh.TokenSpans:
    """One single-token document per message: its only shingle (window 1) is the message."""
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    end = np.cumsum(lengths)
    buf = np.frombuffer(b"".join(messages) or b"\0", dtype=np.uint8).copy()
    return dh.TokenSpans(buf, end - lengths, end, np.arange(len(messages) + 1, dtype=np.int64),
                         np.zeros(0, np.uint8))


def test_sha1_and_md5_kernels_equal_hashlib():
    rng = np.random.default_rng(1)
    lengths = [0, 1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 127, 128, 200, 1000] + rng.integers(0, 300, 150).tolist()
    messages = [rng.integers(0, 256, size=n, dtype=np.uint8).tobytes() for n in lengths]
    spans = message_spans(messages)
    sha, ptr = dh.shingle_hashes(spans, 1, md5=False)
    md5, _ = dh.shingle_hashes(spans, 1, md5=True)
    assert ptr.tolist() == list(range(len(messages) + 1))
    assert sha.tolist() == [int.from_bytes(hashlib.sha1(m).digest()[:4], "little") for m in messages]
    assert md5.tolist() == [int.from_bytes(hashlib.md5(m).digest()[:8], "big") for m in messages]


@pytest.mark.parametrize("tokenization,window,n_imdb", [("space", 5, 300), ("space", 1, 50), ("punctuation", 3, 150),
                                                        ("character", 5, 40)])
def test_signatures_equal_reference(imdb_texts, tokenization, window, n_imdb):
    texts = imdb_texts[:n_imdb] + ADVERSARIAL
    op = make_op(OP, tokenization=tokenization, window_size=window)
    sig = op.signatures(batch_of(texts))
    assert sig.dtype == np.uint32 and sig.shape == (len(texts), 256)
    for i, text in enumerate(texts):
        expected = reference_signature(reference_shingles(text, tokenization, window), op.perm_a, op.perm_b)
        assert (sig[i] == expected).all(), (tokenization, i, text[:60])


def test_lowercase_and_ignore_pattern_equal_reference(imdb_texts):
    texts = imdb_texts[:80] + ADVERSARIAL
    op = make_op(OP, lowercase=False, ignore_pattern=r"\p{P}|\d+", num_permutations=64)
    sig = op.signatures(batch_of(texts))
    for i, text in enumerate(texts):
        shingles = reference_shingles(text, "space", 5, lowercase=False, ignore_pattern=r"\p{P}|\d+")
        assert (sig[i] == reference_signature(shingles, op.perm_a, op.perm_b)).all(), i


def test_kept_rows_equal_reference_on_near_duplicates(imdb_texts):
    texts = near_duplicates(imdb_texts[:400], 200) + ADVERSARIAL
    op = make_op(OP)
    signatures = np.array([reference_signature(reference_shingles(t, "space", 5), op.perm_a, op.perm_b) for t in texts])
    removed = dedup(op, texts, splits=(1, 250, 251, 400))
    kept = [i for i in range(len(texts)) if i not in removed]
    assert kept == reference_kept(signatures, op.num_bands, op.num_rows_per_band)
    assert 100 < len(removed) < 250


def test_chain_joins_dissimilar_ends_and_first_row_survives():
    # window 1, one value per band: rows share a band when their token sets share the minimum
    # of a permutation.  A~B and B~C share tokens; A and C share none, yet C joins A's cluster.
    op = make_op(OP, window_size=1, num_permutations=64, num_bands=64, num_rows_per_band=1)
    a, b, c, other = "alpha beta", "beta gamma", "gamma delta", "omega psi"
    keys = op.compute_hash(batch_of([a, b, c, other]))
    assert not (keys[0] == keys[2]).any() and (keys[0] == keys[1]).any() and (keys[1] == keys[2]).any()
    assert dedup(op, [a, b, c, other]) == {1: 0, 2: 0}
    assert dedup(op, [other, c, b, a]) == {2: 1, 3: 1}  # the cluster's first row, whichever it is


def test_index_components_on_synthetic_keys():
    index = dh.MinHashLSHIndex(num_bands=3, rows_per_band=2, num_permutations=6, jaccard_threshold=0.7)
    keys = np.array([[1, 2, 3], [9, 9, 9], [1, 5, 6], [7, 5, 8], [4, 4, 4], [10, 11, 8]], dtype=np.uint64)
    index.add([10, 11, 12], keys[:3])
    index.add([13, 14, 15], list(keys[3:]))  # per-row arrays, as the executor passes them
    # 10-12 share band 0, 12-13 band 1, 13-15 band 2: one chain; 11 and 14 stand alone
    assert index.finalize() == {12: 10, 13: 10, 15: 10}
    summary = index.summary()
    assert summary["clusters"] == 1 and summary["removed_rows"] == 3 and summary["rows"] == 6
    assert [(p["survivor"], p["removed"]) for p in summary["sample_pairs"]] == [(10, 12), (10, 13), (10, 15)]
    assert summary["sample_pairs"][0]["estimated_jaccard"] == pytest.approx((1 / 3) ** 0.5, abs=1e-4)


def test_identical_result_across_batch_splits_and_runs(imdb_texts):
    texts = near_duplicates(imdb_texts[:300], 120, seed=3)
    op = make_op(OP)
    whole = dedup(op, texts)
    assert whole and dedup(op, texts, splits=(1, 2, 99, 100, 257)) == whole
    assert dedup(make_op(OP), texts) == whole
    assert all(survivor < removed for removed, survivor in whole.items())


def test_spilled_keys_give_the_same_result(imdb_texts, tmp_path, monkeypatch):
    texts = near_duplicates(imdb_texts[:200], 100, seed=5)
    expected = dedup(make_op(OP), texts)
    monkeypatch.setattr(dh._KeyColumns, "SPILL_ROWS", 64)
    op = make_op(OP, work_dir=str(tmp_path / "work"))
    assert dedup(op, texts, splits=(50, 100, 150, 250)) == expected
    assert list((tmp_path / "work").iterdir()) == []  # key files are deleted at finalize


def test_finalize_does_not_load_numba():
    # the coordinating process only finalizes: it must not pay numba's ~170 MB
    code = ("import sys, numpy as np\n"
            "from dj_ops.ops.common.dedup_hashing import MinHashLSHIndex, SimHashIndex\n"
            "m = MinHashLSHIndex(2, 1, 2, 0.7); m.add([0, 1], np.ones((2, 2), np.uint64))\n"
            "s = SimHashIndex(6, 4); s.add([0, 1], np.array([5, 7], np.uint64))\n"
            "assert m.finalize() == {1: 0} and s.finalize() == {1: 0}\n"
            "assert 'numba' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(dh.__file__).parents[3])


def test_documents_shorter_than_the_window_form_one_cluster():
    # no shingle -> every value 2**32 - 1, as Data-Juicer: such documents are all duplicates
    texts = ["one two", "", "a long enough document with many words in it", "three four five six"]
    assert dedup(make_op(OP), texts) == {1: 0, 3: 0}


def test_bands_past_the_signature_end_are_empty_as_upstream():
    # 30 bands x 9 rows > 256 permutations: the last bands are empty and equal for every row
    texts = ["completely different words in this text", "nothing in common with the other one at all"]
    assert dedup(make_op(OP, num_bands=30, num_rows_per_band=9), texts) == {1: 0}


def test_empty_batch_and_empty_index():
    op = make_op(OP)
    assert op.compute_hash(batch_of([])).shape == (0, 25)
    index = op.new_index()
    assert index.finalize() == {} and index.summary()["clusters"] == 0


def test_sentencepiece_tokenization(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(["Today is Sunday and it's a happy day!", "Do you need a cup of coffee?",
                                 "This paper proposed a novel method on LLM pretraining.",
                                 "Sur la plateforme MT4, plusieurs manières d'accéder"] * 20))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "tiny"), vocab_size=60,
                                   model_type="unigram", minloglevel=2)
    model_path = str(tmp_path / "tiny.model")
    op = make_op(OP, tokenization="sentencepiece", tokenizer_model=model_path, num_permutations=32)
    model = dh.load_sentencepiece(model_path)
    texts = ["Today is Sunday and it's a happy day!", "A cup of coffee, maybe?", "", "日本語 🙂"]
    sig = op.signatures(batch_of(texts))
    for i, text in enumerate(texts):
        shingles = reference_shingles(text, "sentencepiece", 5, sp_model=model)
        assert (sig[i] == reference_signature(shingles, op.perm_a, op.perm_b)).all(), i


def test_sentencepiece_needs_a_local_model(tmp_path):
    with pytest.raises(ValueError, match=f"{OP}.*tokenizer_model"):
        make_op(OP, tokenization="sentencepiece")
    with pytest.raises(ModelLoadError, match=f"{OP}.*tokenizer_model"):
        make_op(OP, tokenization="sentencepiece", tokenizer_model=str(tmp_path / "missing.model"))


@pytest.mark.parametrize("params", [{"tokenization": "words"}, {"window_size": 0}, {"num_permutations": 0},
                                    {"jaccard_threshold": 1.5}, {"num_bands": 0, "num_rows_per_band": 4}])
def test_invalid_params(params):
    with pytest.raises(ValueError, match=OP):
        make_op(OP, **params)


def test_run_op_keeps_first_of_each_cluster():
    samples = [{"text": "the same review text appears here twice in a row"},
               {"text": "a different review text that is not similar"},
               {"text": "THE SAME REVIEW TEXT APPEARS HERE TWICE IN A ROW"}]
    kept, _ = run_op(make_op(OP), samples)
    assert kept == samples[:2]
