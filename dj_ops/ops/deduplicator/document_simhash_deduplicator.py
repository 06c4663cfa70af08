"""document_simhash_deduplicator: near-duplicate removal with SimHash, as Data-Juicer.

Each document (lowercased, ``ignore_pattern`` removed) is cut into shingles of ``window_size``
tokens (space, punctuation or character tokenization); the 64-bit simhash sets bit i when more
shingle hashes (``simhash.unsigned_hash``: first 8 MD5 bytes, big-endian; repeated shingles count
again) have bit i set than not.  Documents whose simhashes differ in at most
``hamming_distance`` bits (``simhash.find_all`` with ``num_blocks``; equal hashes included) are
near-duplicates; clusters are connected components and only each cluster's first document (input
order) is kept.  Invalid ``num_blocks`` / ``hamming_distance`` fail at construction instead of at
the first batch.
"""

from __future__ import annotations

import numpy as np

from dj_ops.ops.base import Deduplicator
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common.dedup_hashing import Shingler, SimHashIndex, check_shingling, simhashes

OP_NAME = "document_simhash_deduplicator"
SIMHASH_TOKENIZATIONS = ("space", "punctuation", "character")


@register(OP_NAME)
class DocumentSimhashDeduplicator(Deduplicator):
    text_keys = True

    def __init__(
        self,
        tokenization: str = "space",
        window_size: int = 6,
        lowercase: bool = True,
        ignore_pattern: str | None = None,
        num_blocks: int = 6,
        hamming_distance: int = 4,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_shingling(OP_NAME, tokenization, SIMHASH_TOKENIZATIONS, window_size, ignore_pattern)
        if not 0 < num_blocks <= 64:
            raise ValueError(f"{OP_NAME}: num_blocks must be in 1..64, got {num_blocks}")
        if not 0 < hamming_distance < num_blocks:
            raise ValueError(f"{OP_NAME}: hamming_distance ({hamming_distance}) must be positive and less "
                             f"than num_blocks ({num_blocks})")
        self.tokenization = tokenization
        self.window_size = window_size
        self.lowercase = lowercase
        self.ignore_pattern = ignore_pattern
        self.num_blocks = num_blocks
        self.hamming_distance = hamming_distance
        self.shingler = Shingler(tokenization, lowercase, ignore_pattern)

    def compute_hash(self, batch: Batch) -> np.ndarray:
        """The simhash of each sample, uint64 (rows,)."""
        return simhashes(self.shingler.spans(self.texts(batch)), self.window_size)

    def new_index(self) -> SimHashIndex:
        return SimHashIndex(self.num_blocks, self.hamming_distance)
