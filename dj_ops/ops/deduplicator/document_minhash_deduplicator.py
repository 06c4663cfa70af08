"""document_minhash_deduplicator: near-duplicate removal with MinHash LSH, as Data-Juicer.

Each document (lowercased, ``ignore_pattern`` removed) is cut into shingles of ``window_size``
tokens; each shingle is hashed with ``sha1_hash32`` and permuted ``num_permutations`` times with
``((h * a + b) mod 2**64 mod (2**61 - 1)) & (2**32 - 1)`` (a, b from ``RandomState(42)``); the
signature is the per-permutation minimum.  Signature rows are cut into ``num_bands`` bands of
``num_rows_per_band`` values (both chosen by Data-Juicer's ``optimal_param`` unless both are
given); documents sharing any band are near-duplicates, clusters are connected components and
only each cluster's first document (input order) is kept.  Difference: a band is bucketed on a
64-bit fingerprint of its values instead of their bytes (a false match has probability 2**-64).
"""

from __future__ import annotations

import numpy as np

from dj_ops.ops.base import Deduplicator
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.dedup_hashing import (
    TOKENIZATIONS,
    MinHashLSHIndex,
    Shingler,
    check_sentencepiece_model,
    check_shingling,
    lsh_band_keys,
    minhash_permutations,
    minhash_signatures,
    optimal_lsh_params,
)

OP_NAME = "document_minhash_deduplicator"


@register(OP_NAME)
class DocumentMinhashDeduplicator(Deduplicator):
    text_keys = True

    def __init__(
        self,
        tokenization: str = "space",
        window_size: int = 5,
        lowercase: bool = True,
        ignore_pattern: str | None = None,
        num_permutations: int = 256,
        jaccard_threshold: float = 0.7,
        num_bands: int | None = None,
        num_rows_per_band: int | None = None,
        tokenizer_model: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_shingling(OP_NAME, tokenization, TOKENIZATIONS, window_size, ignore_pattern)
        if num_permutations < 1:
            raise ValueError(f"{OP_NAME}: num_permutations must be a positive integer, got {num_permutations}")
        if not 0 <= jaccard_threshold <= 1:
            raise ValueError(f"{OP_NAME}: jaccard_threshold must be in [0, 1], got {jaccard_threshold}")
        for name, value in (("num_bands", num_bands), ("num_rows_per_band", num_rows_per_band)):
            if value is not None and value < 1:
                raise ValueError(f"{OP_NAME}: {name} must be a positive integer or null, got {value}")
        if tokenization == "sentencepiece":
            check_sentencepiece_model(tokenizer_model, op_name=OP_NAME)
        self.tokenization = tokenization
        self.window_size = window_size
        self.lowercase = lowercase
        self.ignore_pattern = ignore_pattern
        self.num_permutations = num_permutations
        self.jaccard_threshold = jaccard_threshold
        self.tokenizer_model = tokenizer_model
        if num_bands is None or num_rows_per_band is None:
            num_bands, num_rows_per_band = optimal_lsh_params(jaccard_threshold, num_permutations)
        # bands past the signature's end are cut short (empty), as Python slicing does upstream
        self.num_bands = num_bands
        self.num_rows_per_band = num_rows_per_band
        self.perm_a, self.perm_b = minhash_permutations(num_permutations)
        self.shingler = Shingler(tokenization, lowercase, ignore_pattern, tokenizer_model)

    def signatures(self, batch: Batch) -> np.ndarray:
        """MinHash signatures, uint32 (rows, num_permutations): Data-Juicer's values."""
        spans = self.shingler.spans(self.texts(batch))
        return minhash_signatures(spans, self.window_size, self.perm_a, self.perm_b)

    def compute_hash(self, batch: Batch) -> np.ndarray:
        """Band fingerprints, uint64 (rows, num_bands): one row of keys per sample."""
        return lsh_band_keys(self.signatures(batch), self.num_bands, self.num_rows_per_band)

    def new_index(self) -> MinHashLSHIndex:
        return MinHashLSHIndex(self.num_bands, self.num_rows_per_band, self.num_permutations,
                               self.jaccard_threshold, spill_dir=self.work_dir)
