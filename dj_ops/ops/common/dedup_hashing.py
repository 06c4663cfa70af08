"""Shingle hashing and near-duplicate indexes for the MinHash and SimHash deduplicators.

Both OPs hash every *shingle* (``window_size`` consecutive tokens of a document, encoded as
UTF-8) exactly as Data-Juicer does: MinHash with ``sha1_hash32`` (the first 4 bytes of SHA-1 read
little-endian), SimHash with ``simhash.unsigned_hash`` (the first 8 bytes of MD5 read
big-endian).  A Python loop over ``hashlib`` per shingle would cost more than all the MinHash
arithmetic (bench/RESULTS.md), so the hashes, the MinHash permutations and the SimHash bit votes
run in numba kernels over a whole batch:

* a batch becomes one UTF-8 byte buffer plus (start, end) byte offsets of every token
  (:class:`TokenSpans`); a shingle is a run of ``window`` tokens joined by a separator;
* SHA-1 / MD5 are computed on 64 messages at once, one per SIMD lane (messages are grouped by
  their number of 64-byte blocks), and checked bit for bit against ``hashlib`` in the tests;
* MinHash values are ``((h * a + b) mod 2**64 mod (2**61 - 1)) & (2**32 - 1)`` with Data-Juicer's
  ``RandomState(42)`` permutations, the uint64 wrap-around included.

numba is imported on first use only, so loading the OP registry does not pay for it.

The indexes are non-streaming: they collect one key per row and decide at ``finalize``, where
near-duplicate clusters are connected components (``scipy.sparse.csgraph``) and every row but
the first of its cluster is removed, which is what Data-Juicer's ``UnionFind`` (union to the
smaller root, keep ``find(i) == i``) keeps.  ``finalize`` runs in numpy/scipy: the coordinating
process never loads numba (whose resident memory would count in every run).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import pyarrow as pa
import regex

from dj_ops.ops.base import DedupIndex
from dj_ops.ops.common.models import ModelLoadError

MERSENNE_PRIME = (1 << 61) - 1
MAX_HASH = (1 << 32) - 1
MINHASH_SEED = 42
TOKENIZATIONS = ("space", "punctuation", "character", "sentencepiece")
#: messages hashed side by side by the SHA-1 / MD5 kernels (64 x uint32 = 8 AVX2 registers)
LANES = 64

_PUNCTUATION = regex.compile(r"\p{P}")


# --------------------------------------------------------------------------- parameters


@functools.lru_cache(maxsize=None)
def optimal_lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5,
                       fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows per band) minimising ``fp_weight * FP + fn_weight * FN`` (datasketch's rule).

    FP is the area under the LSH candidate probability ``1 - (1 - s**r)**b`` below the threshold,
    FN the area above it under the miss probability.  The integrals use ``scipy.integrate.quad``
    and candidates are scanned in the same order (b ascending, then r) with a strict ``<``, as
    Data-Juicer does, so ties and rounding resolve to the same (b, r).
    """
    from scipy.integrate import quad

    def candidate(s: float, rows: float, bands: float) -> float:
        return 1 - (1 - s**rows) ** bands

    def missed(s: float, rows: float, bands: float) -> float:
        return 1 - (1 - (1 - s**rows) ** bands)

    best, best_error = (0, 0), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            args = (float(rows), float(bands))
            false_pos, _ = quad(candidate, 0.0, threshold, args=args)
            false_neg, _ = quad(missed, threshold, 1.0, args=args)
            error = false_pos * fp_weight + false_neg * fn_weight
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def minhash_permutations(num_perm: int, seed: int = MINHASH_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) coefficients of the MinHash permutations, drawn as Data-Juicer draws them:
    per permutation ``a = randint(1, P)`` then ``b = randint(0, P)`` from one ``RandomState``."""
    gen = np.random.RandomState(seed=seed)
    prime = np.uint64(MERSENNE_PRIME)
    pairs = [(gen.randint(1, prime, dtype=np.uint64), gen.randint(0, prime, dtype=np.uint64))
             for _ in range(num_perm)]
    a, b = np.array(pairs, dtype=np.uint64).reshape(num_perm, 2).T
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


# --------------------------------------------------------------------------- tokenization


@dataclass
class TokenSpans:
    """Tokens of a batch of documents: byte ranges into one UTF-8 buffer.

    Document ``d`` owns tokens ``doc_ptr[d]:doc_ptr[d + 1]``; token ``t`` is
    ``buf[start[t]:end[t]]``; a shingle joins ``window`` consecutive tokens with ``sep``.
    """

    buf: np.ndarray  # uint8
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    doc_ptr: np.ndarray  # int64, n_docs + 1
    sep: np.ndarray  # uint8

    def __len__(self) -> int:
        return len(self.doc_ptr) - 1


def _encode(text: str) -> bytes:
    # a lone surrogate is legal in a str; hash it instead of failing the batch
    return text.encode("utf-8", "surrogatepass")


def _u8(data: bytes) -> np.ndarray:
    # a writable copy: numba compiles read-only arrays (np.frombuffer) as a separate signature
    return np.frombuffer(data, dtype=np.uint8).copy()


class Shingler:
    """Turns texts into :class:`TokenSpans` the way Data-Juicer's dedup OPs tokenize.

    ``space``: ``text.split(" ")`` without empty strings, joined by a space; ``punctuation``:
    ``regex.split(r"\\p{P}", text)`` (empty pieces kept), joined by a space; ``character``:
    single characters, joined by nothing; ``sentencepiece``: the model's pieces, joined by
    nothing.  Text is lowercased first (``lowercase``), then ``ignore_pattern`` matches removed.
    """

    def __init__(self, tokenization: str, lowercase: bool, ignore_pattern: str | None,
                 sentencepiece_model: str | None = None):
        self.tokenization = tokenization
        self.lowercase = lowercase
        self.ignore = regex.compile(ignore_pattern) if ignore_pattern else None
        self.sentencepiece_model = sentencepiece_model

    def prepare(self, texts: Sequence[str]) -> list[str]:
        if self.lowercase:
            texts = [t.lower() for t in texts]
        if self.ignore is not None:
            sub = self.ignore.sub
            texts = [sub("", t) for t in texts]
        return list(texts)

    def spans(self, texts: Sequence[str]) -> TokenSpans:
        texts = self.prepare(texts)
        if self.tokenization == "space":
            return _space_spans(texts)
        if self.tokenization == "character":
            return _character_spans(texts)
        if self.tokenization == "punctuation":
            split = _PUNCTUATION.split
            return _token_list_spans([split(t) for t in texts], b" ")
        if self.tokenization == "sentencepiece":
            model = load_sentencepiece(self.sentencepiece_model)
            return _token_list_spans([model.encode(t, out_type=str) for t in texts], b"")
        raise ValueError(f"unknown tokenization {self.tokenization!r}")


def _doc_offsets(encoded: list[bytes], gap: int) -> np.ndarray:
    """Start of each document in ``gap.join(encoded)`` plus the total length (n + 1 values)."""
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths + gap, out=offsets[1:])
    return offsets


def _space_spans(texts: list[str]) -> TokenSpans:
    # byte 0x20 is U+0020 and nothing else in UTF-8, so splitting the bytes splits the text
    encoded = [_encode(t) for t in texts]
    doc_start = _doc_offsets(encoded, 1)
    buf = _u8(b" ".join(encoded) + b" ")
    is_word = buf != 0x20
    edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    start = np.flatnonzero(edges == 1)
    end = np.flatnonzero(edges == -1)
    return TokenSpans(buf, start, end, np.searchsorted(start, doc_start), _u8(b" "))


def _character_spans(texts: list[str]) -> TokenSpans:
    encoded = [_encode(t) for t in texts]
    doc_start = _doc_offsets(encoded, 0)
    buf = _u8(b"".join(encoded))
    start = np.flatnonzero((buf & 0xC0) != 0x80)  # every byte but UTF-8 continuation bytes
    end = np.append(start[1:], len(buf)).astype(np.int64)
    return TokenSpans(buf, start, end, np.searchsorted(start, doc_start), _u8(b""))


def _token_list_spans(docs: list[list[str]], sep: bytes) -> TokenSpans:
    tokens = [t for doc in docs for t in doc]
    joined = "".join(tokens)
    if joined.isascii():
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        buf = joined.encode("ascii")
    else:
        encoded = [_encode(t) for t in tokens]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        buf = b"".join(encoded)
    end = np.cumsum(lengths)
    doc_ptr = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, docs), dtype=np.int64, count=len(docs)), out=doc_ptr[1:])
    return TokenSpans(_u8(buf), end - lengths, end, doc_ptr, _u8(sep))


def check_shingling(op_name: str, tokenization: str, allowed: tuple[str, ...], window_size: int,
                    ignore_pattern: str | None) -> None:
    """Validate the shingling parameters shared by the MinHash and SimHash OPs."""
    if tokenization not in allowed:
        raise ValueError(f"{op_name}: tokenization must be one of {', '.join(allowed)}; got {tokenization!r}")
    if window_size < 1:
        raise ValueError(f"{op_name}: window_size must be a positive integer, got {window_size}")
    if ignore_pattern and tokenization == "punctuation":
        logging.getLogger(__name__).warning(
            "%s: tokenization='punctuation' does not work if ignore_pattern removes punctuation", op_name)


def check_sentencepiece_model(path: str | None, *, op_name: str) -> None:
    """Fail at construction, naming the OP and parameter, when the model file is unusable."""
    if path is None:
        raise ValueError(f"{op_name}: tokenization='sentencepiece' needs `tokenizer_model`, "
                         "the path of a local sentencepiece .model file")
    if not Path(path).is_file():
        raise ModelLoadError(f"{op_name}: `tokenizer_model` {path!r} is not a file (a local "
                             "sentencepiece .model file is needed; models are not downloaded)")
    try:
        load_sentencepiece(path)
    except ImportError as exc:
        raise ModelLoadError(f"{op_name}: tokenization='sentencepiece' needs the `sentencepiece` "
                             "package (pip install sentencepiece)") from exc
    except Exception as exc:
        raise ModelLoadError(f"{op_name}: cannot load `tokenizer_model` {path!r}: {exc}") from exc


@functools.lru_cache(maxsize=None)
def load_sentencepiece(path: str) -> Any:
    """A sentencepiece processor, loaded once per process (never stored on the OP)."""
    import sentencepiece

    model = sentencepiece.SentencePieceProcessor()
    model.load(path)
    return model


# --------------------------------------------------------------------------- public hashing


def shingle_hashes(spans: TokenSpans, window: int, md5: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hash of every shingle in document order (``sha1_hash32``, or ``unsigned_hash`` when
    ``md5``) and the (n_docs + 1) offsets of each document's shingles."""
    _compile_kernels()
    joined, msg_start, msg_len, doc_sh_ptr, order, group_start = _shingle_layout(
        spans.buf, spans.start, spans.end, spans.doc_ptr, window, spans.sep)
    out = np.empty(len(msg_start), dtype=np.uint64)
    kernel = _md5_shingles if md5 else _sha1_shingles
    kernel(joined, msg_start, msg_len, order, group_start, out)
    return out, doc_sh_ptr


def minhash_signatures(spans: TokenSpans, window: int, perm_a: np.ndarray,
                       perm_b: np.ndarray) -> np.ndarray:
    """Data-Juicer's MinHash signature of every document: uint32 array (n_docs, num_perm).

    A document with fewer than ``window`` tokens has no shingle and gets all ``2**32 - 1``.
    """
    hashes, doc_sh_ptr = shingle_hashes(spans, window, md5=False)
    out = np.empty((len(spans), len(perm_a)), dtype=np.uint32)
    _minhash_min(hashes, doc_sh_ptr, perm_a, perm_b, out)
    return out


def lsh_band_keys(signatures: np.ndarray, num_bands: int, rows_per_band: int) -> np.ndarray:
    """One uint64 fingerprint per LSH band: uint64 array (n_docs, num_bands).

    Data-Juicer buckets on the band's raw bytes; a 64-bit fingerprint of them (a chain of
    MurmurHash3 finalizers) keeps 8 bytes per band instead of ``4 * rows_per_band``.  Two
    different bands share a fingerprint with probability 2**-64: about 10**-6 expected spurious
    bucket collisions over all bands of 10**6 documents.
    """
    _compile_kernels()
    sig = np.ascontiguousarray(signatures, dtype=np.uint32)
    out = np.empty((len(sig), num_bands), dtype=np.uint64)
    _band_fingerprints(sig, num_bands, rows_per_band, out)
    return out


def simhashes(spans: TokenSpans, window: int) -> np.ndarray:
    """``simhash.compute`` over ``simhash.unsigned_hash`` of every shingle (duplicates count):
    bit i of the result is set when more shingle hashes have bit i set than not."""
    hashes, doc_sh_ptr = shingle_hashes(spans, window, md5=True)
    out = np.empty(len(spans), dtype=np.uint64)
    _simhash_votes(hashes, doc_sh_ptr, out)
    return out


# --------------------------------------------------------------------------- indexes


def _first_of_component(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For each of ``n`` nodes, the smallest node of its connected component (edges src-dst)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(src), dtype=bool), (src, dst)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)  # components are numbered 0..k-1
    return first[labels]


def _popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (SWAR; ``np.bitwise_count`` needs numpy 2)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


def _removed_map(survivor_pos: np.ndarray, row_ids: np.ndarray) -> dict[int, int]:
    """{removed row id: survivor row id} from each row's survivor position."""
    removed = np.flatnonzero(survivor_pos != np.arange(len(survivor_pos)))
    return dict(zip(row_ids[removed].tolist(), row_ids[survivor_pos[removed]].tolist()))


def _positions(row_ids: np.ndarray, wanted: Sequence[int]) -> np.ndarray:
    """Positions of the ``wanted`` row ids in ``row_ids`` (ids are unique)."""
    order = np.argsort(row_ids, kind="stable")
    return order[np.searchsorted(row_ids, np.asarray(wanted, dtype=np.int64), sorter=order)]


def _cluster_count(removed: dict[int, int]) -> int:
    return len(set(removed.values()))


class _KeyColumns:
    """Per-row fixed-width uint64 keys appended batch by batch and read back one column at a time.

    Kept in memory up to ``SPILL_ROWS`` rows, then in one file per column under ``spill_dir``
    (default: the system temp folder), so memory stays flat however many rows arrive.
    """

    SPILL_ROWS = 1 << 18

    def __init__(self, width: int, spill_dir: str | None):
        self.width = width
        self.rows = 0
        self.blocks: list[np.ndarray] = []
        self.spill_dir = spill_dir
        self.dir: Path | None = None

    def append(self, keys: np.ndarray) -> None:
        self.rows += len(keys)
        self.blocks.append(keys)
        if self.dir is not None or self.rows > self.SPILL_ROWS:
            self._spill()

    def _spill(self) -> None:
        if self.dir is None:
            if self.spill_dir:
                os.makedirs(self.spill_dir, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix="dedup-keys-", dir=self.spill_dir))
        for k in range(self.width):
            with open(self.dir / f"{k}.u64", "ab") as fh:
                for block in self.blocks:
                    fh.write(np.ascontiguousarray(block[:, k]).tobytes())
        self.blocks = []

    def column(self, k: int) -> np.ndarray:
        if self.dir is not None:
            return np.fromfile(self.dir / f"{k}.u64", dtype=np.uint64)
        if not self.blocks:
            return np.zeros(0, dtype=np.uint64)
        return np.concatenate([b[:, k] for b in self.blocks])

    def row(self, i: int) -> np.ndarray:
        if self.dir is not None:
            return np.array([np.fromfile(self.dir / f"{k}.u64", dtype=np.uint64, count=1, offset=8 * i)[0]
                             for k in range(self.width)], dtype=np.uint64)
        for block in self.blocks:
            if i < len(block):
                return block[i]
            i -= len(block)
        raise IndexError(i)

    def close(self) -> None:
        """Drop the keys (and their files)."""
        if self.dir is not None:
            for k in range(self.width):
                (self.dir / f"{k}.u64").unlink(missing_ok=True)
            os.rmdir(self.dir)
            self.dir = None
        self.blocks = []


class MinHashLSHIndex(DedupIndex):
    """Rows sharing any LSH band key are near-duplicates; clusters are connected components.

    Keys are the (num_bands,) uint64 band fingerprints of each row.  ``finalize`` sorts one band
    column at a time and links rows with equal neighbours, folding the links into components
    whenever they outnumber the rows, so its extra memory is O(rows); it returns
    ``{removed row id: survivor row id}`` with the smallest row id surviving each cluster.  The
    keys are dropped after ``finalize``; the summary's sample pairs are taken before.
    """

    streaming: ClassVar[bool] = False

    def __init__(self, num_bands: int, rows_per_band: int, num_permutations: int,
                 jaccard_threshold: float, spill_dir: str | None = None):
        self.num_bands = num_bands
        self.rows_per_band = rows_per_band
        self.num_permutations = num_permutations
        self.jaccard_threshold = jaccard_threshold
        self.keys = _KeyColumns(num_bands, spill_dir)
        self.row_ids: list[np.ndarray] = []
        self.removed: dict[int, int] | None = None
        self.sample_pairs: list[dict[str, Any]] = []

    def add(self, row_ids: Sequence[int], keys: Sequence[Any]) -> None:
        ids = np.asarray(row_ids, dtype=np.int64)
        block = np.asarray(keys, dtype=np.uint64).reshape(len(ids), self.num_bands)
        self.row_ids.append(ids)
        self.keys.append(block)

    def finalize(self) -> dict[int, int]:
        if self.removed is None:
            row_ids = np.concatenate(self.row_ids) if self.row_ids else np.zeros(0, dtype=np.int64)
            self.row_ids = [row_ids]
            n = len(row_ids)
            src: list[np.ndarray] = []
            dst: list[np.ndarray] = []
            n_edges = 0
            for k in range(self.num_bands):
                col = self.keys.column(k)
                order = np.argsort(col)
                same = np.flatnonzero(col[order[1:]] == col[order[:-1]])  # neighbours in one bucket
                src.append(order[same])
                dst.append(order[same + 1])
                n_edges += len(same)
                if n_edges > n:  # fold the edges so far into one per clustered row: memory stays O(rows)
                    first = _first_of_component(n, np.concatenate(src), np.concatenate(dst))
                    moved = np.flatnonzero(first != np.arange(n))
                    src, dst, n_edges = [moved], [first[moved]], len(moved)
            edges = (np.concatenate(src), np.concatenate(dst)) if src else (np.zeros(0, np.int64),) * 2
            self.removed = _removed_map(_first_of_component(n, *edges), row_ids)
            sample = list(self.removed.items())[:self.sample_size]
            pos = _positions(row_ids, [i for pair in sample for i in pair]).reshape(-1, 2)
            self.sample_pairs = [
                {"survivor": s, "removed": r, "estimated_jaccard": self._estimated_jaccard(ps, pr)}
                for (r, s), (pr, ps) in zip(sample, pos.tolist())]
            self.keys.close()
        return self.removed

    def stored_keys(self) -> pa.Array:
        """Each row's band keys, as a fixed-size list of ``num_bands`` uint64."""
        cols = [self.keys.column(k) for k in range(self.num_bands)]
        flat = np.stack(cols, axis=1).reshape(-1) if cols else np.zeros(0, dtype=np.uint64)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.uint64()), self.num_bands)

    def keys_from_stored(self, keys: pa.Array) -> np.ndarray:
        if not isinstance(keys.type, pa.FixedSizeListType) or keys.type.list_size != self.num_bands:
            raise ValueError(f"stored MinHash keys are {keys.type}, expected {self.num_bands} band keys per row")
        return keys.flatten().to_numpy(zero_copy_only=False).reshape(-1, self.num_bands)

    def _estimated_jaccard(self, pos_a: int, pos_b: int) -> float:
        """Jaccard estimate from the share m/b of equal bands: P(band equal) = s**r, so
        s ≈ (m / b) ** (1 / r)."""
        same = int((self.keys.row(pos_a) == self.keys.row(pos_b)).sum())
        return round((same / self.num_bands) ** (1.0 / self.rows_per_band), 4)

    def summary(self) -> dict[str, Any]:
        removed = self.finalize()
        return {
            "rows": int(sum(len(r) for r in self.row_ids)),
            "clusters": _cluster_count(removed),
            "removed_rows": len(removed),
            "num_permutations": self.num_permutations,
            "jaccard_threshold": self.jaccard_threshold,
            "num_bands": self.num_bands,
            "num_rows_per_band": self.rows_per_band,
            "sample_pairs": self.sample_pairs,
        }


class SimHashIndex(DedupIndex):
    """Rows whose 64-bit simhashes differ in at most ``hamming_distance`` bits are
    near-duplicates (equal hashes included); clusters are connected components.

    Pairs are found as ``simhash.find_all`` does: split 64 bits into ``num_blocks`` blocks; two
    hashes within the distance agree on at least ``num_blocks - hamming_distance`` blocks, so for
    every such choice of blocks the unique hashes are sorted on those bits and the hashes of each
    equal run are compared pairwise.  The pairs are exactly those within the distance.
    """

    streaming: ClassVar[bool] = False

    def __init__(self, num_blocks: int, hamming_distance: int):
        self.num_blocks = num_blocks
        self.hamming_distance = hamming_distance
        self.row_ids: list[np.ndarray] = []
        self.hashes: list[np.ndarray] = []
        self.removed: dict[int, int] | None = None

    def add(self, row_ids: Sequence[int], keys: Sequence[Any]) -> None:
        self.row_ids.append(np.asarray(row_ids, dtype=np.int64))
        self.hashes.append(np.asarray(keys, dtype=np.uint64).reshape(-1))

    def _columns(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.row_ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
        return np.concatenate(self.row_ids), np.concatenate(self.hashes)

    def stored_keys(self) -> pa.Array:
        return pa.array(self._columns()[1], type=pa.uint64())

    def keys_from_stored(self, keys: pa.Array) -> np.ndarray:
        return keys.to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)

    def block_masks(self) -> list[int]:
        """Bit masks of the blocks, as simhash-cpp cuts them: bits [i*64//n, (i+1)*64//n)."""
        n = self.num_blocks
        return [((1 << ((i + 1) * 64 // n)) - 1) ^ ((1 << (i * 64 // n)) - 1) for i in range(n)]

    def finalize(self) -> dict[int, int]:
        if self.removed is None:
            row_ids, hashes = self._columns()
            unique, row_to_unique = np.unique(hashes, return_inverse=True)
            src: list[np.ndarray] = []
            dst: list[np.ndarray] = []
            for chosen in itertools.combinations(self.block_masks(), self.num_blocks - self.hamming_distance):
                prefix = unique & np.uint64(sum(chosen))
                order = np.argsort(prefix, kind="stable")
                a, b = self._close_pairs_in_runs(unique, order, prefix[order])
                src.append(a)
                dst.append(b)
            edges = (np.concatenate(src), np.concatenate(dst)) if src else (np.zeros(0, np.int64),) * 2
            # nodes: rows, then unique hashes; each row is linked to its hash, so the smallest
            # node of a component is its first row, the survivor
            n_rows = len(row_ids)
            src_all = np.concatenate([np.arange(n_rows), n_rows + edges[0]])
            dst_all = np.concatenate([n_rows + row_to_unique.reshape(-1), n_rows + edges[1]])
            first = _first_of_component(n_rows + len(unique), src_all, dst_all)
            self.removed = _removed_map(first[:n_rows], row_ids)
        return self.removed

    def _close_pairs_in_runs(self, unique: np.ndarray, order: np.ndarray,
                             sorted_prefix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pair (order[j], order[j + d]) inside a run of equal prefixes whose hashes differ
        in at most ``hamming_distance`` bits (all pairs of a run, as simhash-cpp compares them)."""
        n = len(order)
        new_run = np.ones(n, dtype=bool)
        new_run[1:] = sorted_prefix[1:] != sorted_prefix[:-1]
        starts = np.flatnonzero(new_run)
        sizes = np.diff(np.append(starts, n))
        run_end = np.repeat(starts + sizes, sizes)
        j = np.flatnonzero(np.repeat(sizes, sizes) > 1)
        src, dst = [], []
        d = 1
        while len(j):
            j = j[j + d < run_end[j]]
            a, b = order[j], order[j + d]
            close = _popcount64(unique[a] ^ unique[b]) <= np.uint64(self.hamming_distance)
            src.append(a[close])
            dst.append(b[close])
            d += 1
        if not src:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(src), np.concatenate(dst)

    def summary(self) -> dict[str, Any]:
        removed = self.finalize()
        row_ids, hashes = self._columns()
        sample = list(removed.items())[:self.sample_size]
        pos = _positions(row_ids, [i for pair in sample for i in pair]).reshape(-1, 2)
        pairs = []
        for (r, s), (pr, ps) in zip(sample, pos.tolist()):
            distance = (int(hashes[pr]) ^ int(hashes[ps])).bit_count()
            pairs.append({"survivor": s, "removed": r, "hamming_distance": distance,
                          "similarity": round(1 - distance / 64, 4)})
        return {
            "rows": int(len(row_ids)),
            "clusters": _cluster_count(removed),
            "removed_rows": len(removed),
            "num_blocks": self.num_blocks,
            "hamming_distance": self.hamming_distance,
            "sample_pairs": pairs,
        }


# --------------------------------------------------------------------------- numba kernels
#
# Plain Python functions registered with @_kernel are replaced by their numba-compiled versions
# (cached on disk) the first time _compile_kernels() runs; kernels call each other through the
# module globals, so they see the compiled versions.  Integer constants are typed explicitly:
# numba turns uint64-with-int64 arithmetic into float64.

_KERNELS: list[str] = []


def _kernel(fn):
    _KERNELS.append(fn.__name__)
    return fn


_compile_lock = threading.Lock()
_compiled = False


def _compile_kernels() -> None:
    global _compiled
    if _compiled:
        return
    with _compile_lock:  # wrapping a kernel twice (two threads) would fail
        if not _compiled:
            import numba

            module = globals()
            for name in _KERNELS:
                module[name] = numba.njit(cache=True)(module[name])
            _compiled = True


_U32 = np.uint32
_U64 = np.uint64
_SHA1_INIT = np.array([0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0], dtype=np.uint32)
_SHA1_K = np.array([0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6], dtype=np.uint32)
_MD5_INIT = np.array([0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476], dtype=np.uint32)
# RFC 1321: K[i] = floor(2**32 * |sin(i + 1)|) (exact in float64 for all 64 entries)
_MD5_K = np.floor(np.abs(np.sin(np.arange(1, 65))) * 2.0**32).astype(np.uint32)
_MD5_SHIFT = np.array([7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4,
                      dtype=np.uint32)
_MD5_WORD = np.array(list(range(16)) + [(5 * i + 1) % 16 for i in range(16, 32)]
                     + [(3 * i + 5) % 16 for i in range(32, 48)] + [(7 * i) % 16 for i in range(48, 64)],
                     dtype=np.int64)


@_kernel
def _shingle_layout(buf, tok_start, tok_end, doc_tok_ptr, window, sep):
    """Lay every shingle out as one contiguous message.

    Returns ``joined`` (all tokens, consecutive ones separated by ``sep``), each shingle's message
    ``joined[msg_start[s]:msg_start[s] + msg_len[s]]`` in document order, the offsets of each
    document's shingles, and the shingles grouped by the number of 64-byte blocks of their
    padded message: group ``nb`` is ``order[group_start[nb]:group_start[nb + 1]]``.
    """
    n_tok = tok_start.shape[0]
    sep_len = sep.shape[0]
    size = 0
    for t in range(n_tok):
        size += tok_end[t] - tok_start[t]
    joined = np.empty(size + sep_len * max(n_tok - 1, 0), dtype=np.uint8)
    j_start = np.empty(n_tok, dtype=np.int64)
    p = 0
    for t in range(n_tok):
        if t > 0:
            for q in range(sep_len):
                joined[p] = sep[q]
                p += 1
        j_start[t] = p
        for q in range(tok_start[t], tok_end[t]):
            joined[p] = buf[q]
            p += 1
    n_docs = doc_tok_ptr.shape[0] - 1
    doc_sh_ptr = np.zeros(n_docs + 1, dtype=np.int64)
    for d in range(n_docs):
        doc_sh_ptr[d + 1] = doc_sh_ptr[d] + max(0, doc_tok_ptr[d + 1] - doc_tok_ptr[d] - window + 1)
    n_sh = doc_sh_ptr[n_docs]
    msg_start = np.empty(n_sh, dtype=np.int64)
    msg_len = np.empty(n_sh, dtype=np.int64)
    n_blocks = np.empty(n_sh, dtype=np.int64)
    max_blocks = 0
    m = 0
    for d in range(n_docs):
        for i in range(doc_tok_ptr[d], doc_tok_ptr[d + 1] - window + 1):
            last = i + window - 1
            msg_start[m] = j_start[i]
            msg_len[m] = j_start[last] + tok_end[last] - tok_start[last] - j_start[i]
            n_blocks[m] = (msg_len[m] + 8) // 64 + 1  # + the 0x80 byte and the 8-byte bit length
            max_blocks = max(max_blocks, n_blocks[m])
            m += 1
    group_start = np.zeros(max_blocks + 2, dtype=np.int64)
    for m in range(n_sh):
        group_start[n_blocks[m] + 1] += 1
    for nb in range(1, max_blocks + 2):
        group_start[nb] += group_start[nb - 1]
    order = np.empty(n_sh, dtype=np.int64)
    fill = group_start.copy()
    for m in range(n_sh):
        order[fill[n_blocks[m]]] = m
        fill[n_blocks[m]] += 1
    return joined, msg_start, msg_len, doc_sh_ptr, order, group_start


@_kernel
def _fill_block(w, joined, msg_start, msg_len, shingles, blk, n_blocks, big_endian):
    """Rows 0-15 of column l of ``w`` := block ``blk`` (16 uint32 words) of the padded message of
    shingle ``shingles[l]``: its bytes, 0x80, zeros and, ending the last block, its 64-bit bit
    length; words and length big-endian for SHA-1, little-endian for MD5.  Unused columns are
    zero.  One block at a time keeps memory at 4 KB however long a shingle is."""
    first = blk * 16
    for l in range(shingles.shape[0]):
        start = msg_start[shingles[l]]
        length = msg_len[shingles[l]]
        n_full = min(max((length >> 2) - first, 0), 16)  # words made of 4 message bytes
        for k in range(n_full):
            q = start + 4 * (first + k)
            if big_endian:
                w[k, l] = ((_U32(joined[q]) << _U32(24)) | (_U32(joined[q + 1]) << _U32(16))
                           | (_U32(joined[q + 2]) << _U32(8)) | _U32(joined[q + 3]))
            else:
                w[k, l] = (_U32(joined[q]) | (_U32(joined[q + 1]) << _U32(8))
                           | (_U32(joined[q + 2]) << _U32(16)) | (_U32(joined[q + 3]) << _U32(24)))
        k = n_full
        if k < 16 and first + k == length >> 2:
            # 0-3 last message bytes, then the 0x80 terminator
            tail = _U32(0)
            for r in range((length & 3) + 1):
                byte = _U32(joined[start + 4 * (first + k) + r]) if r < (length & 3) else _U32(0x80)
                tail |= byte << _U32(8 * (3 - r) if big_endian else 8 * r)
            w[k, l] = tail
            k += 1
        for z in range(k, 16):
            w[z, l] = 0
        if blk == n_blocks - 1:
            bits = _U64(length) * _U64(8)
            high, low = _U32(bits >> _U64(32)), _U32(bits & _U64(0xFFFFFFFF))
            w[14, l] = high if big_endian else low
            w[15, l] = low if big_endian else high
    for l in range(shingles.shape[0], LANES):
        for k in range(16):
            w[k, l] = 0


@_kernel
def _bswap32(x):
    return _U32((x << _U32(24)) | ((x & _U32(0xFF00)) << _U32(8)) | ((x >> _U32(8)) & _U32(0xFF00))
                | (x >> _U32(24)))


# The hash kernels run one message per lane: every inner loop is over LANES, a compile-time
# constant (a run-time lane count doubles the compile time).  The working variables rotate
# roles between rounds instead of being moved.


@_kernel
def _sha1_shingles(joined, msg_start, msg_len, order, group_start, out):
    """out[s] = ``sha1_hash32`` of shingle s: the first SHA-1 digest word read little-endian."""
    state = np.empty((5, LANES), dtype=np.uint32)
    h = np.empty((5, LANES), dtype=np.uint32)
    w = np.empty((80, LANES), dtype=np.uint32)
    for nb in range(1, group_start.shape[0] - 1):
        for base in range(group_start[nb], group_start[nb + 1], LANES):
            shingles = order[base:min(base + LANES, group_start[nb + 1])]
            for r in range(5):
                for l in range(LANES):
                    h[r, l] = _SHA1_INIT[r]
            for blk in range(nb):
                _fill_block(w, joined, msg_start, msg_len, shingles, blk, nb, True)
                for t in range(16, 80):
                    for l in range(LANES):
                        x = w[t - 3, l] ^ w[t - 8, l] ^ w[t - 14, l] ^ w[t - 16, l]
                        w[t, l] = (x << _U32(1)) | (x >> _U32(31))
                for r in range(5):
                    for l in range(LANES):
                        state[r, l] = h[r, l]
                for t in range(80):
                    ia = (5 - t % 5) % 5  # row holding a; b, c, d, e follow cyclically
                    a_ = state[ia]
                    b_ = state[(ia + 1) % 5]
                    c_ = state[(ia + 2) % 5]
                    d_ = state[(ia + 3) % 5]
                    e_ = state[(ia + 4) % 5]
                    wt = w[t]
                    k = _SHA1_K[t // 20]
                    phase = t // 20
                    if phase == 0:
                        for l in range(LANES):
                            a, b, c, d = a_[l], b_[l], c_[l], d_[l]
                            e_[l] = e_[l] + ((a << _U32(5)) | (a >> _U32(27))) + (d ^ (b & (c ^ d))) + k + wt[l]
                            b_[l] = (b << _U32(30)) | (b >> _U32(2))
                    elif phase == 2:
                        for l in range(LANES):
                            a, b, c, d = a_[l], b_[l], c_[l], d_[l]
                            e_[l] = (e_[l] + ((a << _U32(5)) | (a >> _U32(27))) + ((b & c) | (d & (b | c)))
                                     + k + wt[l])
                            b_[l] = (b << _U32(30)) | (b >> _U32(2))
                    else:
                        for l in range(LANES):
                            a, b, c, d = a_[l], b_[l], c_[l], d_[l]
                            e_[l] = e_[l] + ((a << _U32(5)) | (a >> _U32(27))) + (b ^ c ^ d) + k + wt[l]
                            b_[l] = (b << _U32(30)) | (b >> _U32(2))
                for r in range(5):
                    for l in range(LANES):
                        h[r, l] = h[r, l] + state[r, l]
            for l in range(shingles.shape[0]):
                out[shingles[l]] = _U64(_bswap32(h[0, l]))


@_kernel
def _md5_shingles(joined, msg_start, msg_len, order, group_start, out):
    """out[s] = ``simhash.unsigned_hash`` of shingle s: the first 8 MD5 digest bytes read
    big-endian."""
    state = np.empty((4, LANES), dtype=np.uint32)
    h = np.empty((4, LANES), dtype=np.uint32)
    m = np.empty((16, LANES), dtype=np.uint32)
    for nb in range(1, group_start.shape[0] - 1):
        for base in range(group_start[nb], group_start[nb + 1], LANES):
            shingles = order[base:min(base + LANES, group_start[nb + 1])]
            for r in range(4):
                for l in range(LANES):
                    h[r, l] = _MD5_INIT[r]
            for blk in range(nb):
                _fill_block(m, joined, msg_start, msg_len, shingles, blk, nb, False)
                for r in range(4):
                    for l in range(LANES):
                        state[r, l] = h[r, l]
                for i in range(64):
                    # (a, b, c, d) <- (d, new, b, c): the row holding a receives the new value
                    ia = (4 - i % 4) % 4
                    a_ = state[ia]
                    b_ = state[(ia + 1) % 4]
                    c_ = state[(ia + 2) % 4]
                    d_ = state[(ia + 3) % 4]
                    mg = m[_MD5_WORD[i]]
                    k = _MD5_K[i]
                    s = _MD5_SHIFT[i]
                    rs = _U32(32) - s
                    phase = i // 16
                    if phase == 0:
                        for l in range(LANES):
                            b, c, d = b_[l], c_[l], d_[l]
                            f = _U32(a_[l] + (d ^ (b & (c ^ d))) + k + mg[l])
                            a_[l] = b + ((f << s) | (f >> rs))
                    elif phase == 1:
                        for l in range(LANES):
                            b, c, d = b_[l], c_[l], d_[l]
                            f = _U32(a_[l] + (c ^ (d & (b ^ c))) + k + mg[l])
                            a_[l] = b + ((f << s) | (f >> rs))
                    elif phase == 2:
                        for l in range(LANES):
                            b, c, d = b_[l], c_[l], d_[l]
                            f = _U32(a_[l] + (b ^ c ^ d) + k + mg[l])
                            a_[l] = b + ((f << s) | (f >> rs))
                    else:
                        for l in range(LANES):
                            b, c, d = b_[l], c_[l], d_[l]
                            f = _U32(a_[l] + (c ^ (b | (d ^ _U32(0xFFFFFFFF)))) + k + mg[l])
                            a_[l] = b + ((f << s) | (f >> rs))
                for r in range(4):
                    for l in range(LANES):
                        h[r, l] = h[r, l] + state[r, l]
            for l in range(shingles.shape[0]):
                out[shingles[l]] = (_U64(_bswap32(h[0, l])) << _U64(32)) | _U64(_bswap32(h[1, l]))


@_kernel
def _minhash_min(hashes, doc_sh_ptr, perm_a, perm_b, out):
    """out[d, k] = min over the shingles of d of ((h * a_k + b_k) mod 2**64 mod P) & MAX_HASH."""
    prime = _U64(MERSENNE_PRIME)
    num_perm = perm_a.shape[0]
    sig = np.empty(num_perm, dtype=np.uint32)
    for d in range(doc_sh_ptr.shape[0] - 1):
        for k in range(num_perm):
            sig[k] = _U32(MAX_HASH)
        for j in range(doc_sh_ptr[d], doc_sh_ptr[d + 1]):
            h = hashes[j]
            for k in range(num_perm):
                x = h * perm_a[k] + perm_b[k]
                # x mod P for x < 2**64: r = (x & P) + (x >> 61) is x mod P or x mod P + P (< P + 8),
                # and in the second case r + 1 = 2**61 + (r - P), whose low 32 bits are those of r - P
                r = (x & prime) + (x >> _U64(61))
                sig[k] = min(sig[k], _U32(r + ((r + _U64(1)) >> _U64(61))))
        for k in range(num_perm):
            out[d, k] = sig[k]


@_kernel
def _fmix64(k):
    k ^= k >> _U64(33)
    k *= _U64(0xFF51AFD7ED558CCD)
    k ^= k >> _U64(33)
    k *= _U64(0xC4CEB9FE1A85EC53)
    k ^= k >> _U64(33)
    return k


@_kernel
def _band_fingerprints(sig, num_bands, rows_per_band, out):
    num_perm = sig.shape[1]
    for d in range(sig.shape[0]):
        for band in range(num_bands):
            h = _fmix64(_U64(band + 1))
            # bands past the signature's end are short or empty, as Python slicing makes them
            for j in range(min(band * rows_per_band, num_perm), min((band + 1) * rows_per_band, num_perm)):
                h = _fmix64(h ^ _U64(sig[d, j]))
            out[d, band] = h


@_kernel
def _simhash_votes(hashes, doc_sh_ptr, out):
    votes = np.empty(64, dtype=np.int64)
    for d in range(doc_sh_ptr.shape[0] - 1):
        for bit in range(64):
            votes[bit] = 0
        for j in range(doc_sh_ptr[d], doc_sh_ptr[d + 1]):
            h = hashes[j]
            for bit in range(64):
                votes[bit] += np.int64((h >> _U64(bit)) & _U64(1)) * 2 - 1
        result = _U64(0)
        for bit in range(64):
            if votes[bit] > 0:
                result |= _U64(1) << _U64(bit)
        out[d] = result
