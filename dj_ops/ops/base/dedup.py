"""Deduplicators: keys computed per batch in the workers, decided in input order by an index.

A :class:`Deduplicator` computes one key per row (``compute_hash``) where the rows are (worker
processes, in parallel); the coordinator feeds the keys to the :class:`DedupIndex` made by
``new_index`` strictly in input order, so the first occurrence survives whatever the number of
workers.  Indexes whose keys can be stored (``stored_keys``) let a partition be keyed once and
decided later against other partitions (:mod:`dj_ops.engine.dedup_store`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Hashable, Sequence

from dj_ops.core.batch import Batch

from .op import OP

#: duplicate pairs listed in an index summary
SAMPLE_PAIRS = 10


class DedupIndex:
    """Coordinator-side state of a deduplicator: sees every row's keys in input order.

    A *streaming* index (exact duplicates: clusters are equal keys) decides each row on arrival:
    ``check`` returns, per row, ``None`` when the row is the first of its cluster (kept) or the
    row id of an earlier row it duplicates.  Rows are fed strictly in input order, so "the first
    occurrence survives" holds across batches and worker processes.

    A non-streaming index (near duplicates: clusters are connected components, which a later row
    can join) collects every key with ``add`` and decides once with ``finalize``, which returns
    ``{removed row id: row id of the cluster's survivor}``; the survivor of each cluster is its
    first row in input order.  The executor holds the rows back (spilled to disk) until then.
    """

    streaming: ClassVar[bool] = True
    #: duplicate pairs (survivor, removed, similarity) the summary samples, the first removed rows
    sample_size: int = SAMPLE_PAIRS

    def check(self, row_ids: Sequence[int], keys: Sequence[Any]) -> list[int | None]:
        raise NotImplementedError

    def add(self, row_ids: Sequence[int], keys: Sequence[Any]) -> None:
        raise NotImplementedError

    def finalize(self) -> dict[int, int]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        return {}

    # Keys can be stored with a partition and fed to a later index (deduplication across
    # partitions without recomputing them): ``stored_keys`` returns the keys ``add`` received, in
    # order, as one Arrow array; ``keys_from_stored`` turns such an array back into keys for
    # ``add`` / ``check``.  An index without them is not storable.

    def stored_keys(self) -> Any:
        raise NotImplementedError

    def keys_from_stored(self, keys: Any) -> Sequence[Any]:
        raise NotImplementedError

    @classmethod
    def storable(cls) -> bool:
        return cls.stored_keys is not DedupIndex.stored_keys


class ExactDedupIndex(DedupIndex):
    """First occurrence of each hashable key wins; a ``None`` key is never a duplicate."""

    def __init__(self) -> None:
        self.first: dict[Hashable, int] = {}
        self.survivors: set[int] = set()  # first occurrences that have a duplicate (one per cluster)
        self.removed = 0
        self.sample_pairs: list[dict[str, Any]] = []
        self.held: list[Hashable] = []  # keys collected by ``add`` (to be stored)

    def check(self, row_ids: Sequence[int], keys: Sequence[Hashable]) -> list[int | None]:
        first = self.first
        out: list[int | None] = []
        for rid, key in zip(row_ids, keys):
            prev = rid if key is None else first.setdefault(key, rid)
            if prev == rid:
                out.append(None)
                continue
            out.append(prev)
            self.removed += 1
            self.survivors.add(prev)
            if len(self.sample_pairs) < self.sample_size:
                self.sample_pairs.append({"survivor": int(prev), "removed": int(rid), "similarity": 1.0})
        return out

    def add(self, row_ids: Sequence[int], keys: Sequence[Hashable]) -> None:
        self.held.extend(keys)

    def stored_keys(self) -> Any:
        """Compact JSON bytes of each key (one encoding whatever the partition holds), null for None.

        The standard library's encoder: orjson gives each small result a buffer of a few KiB that
        the allocator cannot hand back, so a partition's keys took hundreds of MiB of resident
        memory (bench/RESULTS.md)."""
        import json

        import pyarrow as pa

        def encode(key: Hashable) -> bytes:
            return json.dumps(key, ensure_ascii=False, separators=(",", ":")).encode()

        return pa.array([None if k is None else encode(k) for k in self.held], type=pa.binary())

    def keys_from_stored(self, keys: Any) -> Sequence[Any]:
        return keys.to_pylist()

    def summary(self) -> dict[str, Any]:
        return {"distinct_keys": len(self.first), "clusters": len(self.survivors), "removed_rows": self.removed,
                "sample_pairs": self.sample_pairs}


class Deduplicator(OP):
    """Removes duplicate samples across the whole dataset.

    ``compute_hash`` runs in the workers (parallel, per batch) and returns one key per row; the
    coordinator feeds those keys in input order to the index made by ``new_index``.
    """

    #: ``compute_hash`` reads only the ``text_key`` column: a row with a string text always gets
    #: a key (so an earlier stage that reads the text can compute the keys of its output rows)
    text_keys: ClassVar[bool] = False
    #: ... and costs little per row (a digest, not MinHash): keys of rows already in a file can be
    #: computed in the coordinator
    light_text_keys: ClassVar[bool] = False

    def compute_hash(self, batch: Batch) -> list:
        raise NotImplementedError

    def new_index(self) -> DedupIndex:
        return ExactDedupIndex()
