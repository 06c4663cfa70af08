"""Small OPs registered for engine tests (names start with ``test_``)."""

from __future__ import annotations

from dj_ops.ops.base import DedupIndex, Deduplicator, Filter, TextMapper
from dj_ops.core.registry import OPERATORS, register


class _SharedTokenIndex(DedupIndex):
    """Test index: rows sharing any token are linked; a component keeps its first row."""

    streaming = False

    def __init__(self):
        self.rows: list[tuple[int, set]] = []

    def add(self, row_ids, keys):
        self.rows.extend(zip(row_ids, keys))

    def finalize(self):
        parent = {rid: rid for rid, _ in self.rows}

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        owner: dict[str, int] = {}
        for rid, toks in self.rows:
            for t in toks:
                if t in owner:
                    a, b = find(owner[t]), find(rid)
                    parent[max(a, b)] = min(a, b)
                else:
                    owner[t] = rid
        return {rid: find(rid) for rid, _ in self.rows if find(rid) != rid}

    def summary(self):
        return {"rows": len(self.rows)}


def _register_test_ops():
    if "test_upper_mapper" in OPERATORS:
        return

    @register("test_upper_mapper")
    class UpperMapper(TextMapper):
        def process_text(self, text: str) -> str:
            return text.upper()

    @register("test_len_filter")
    class LenFilter(Filter):
        stat_bounds = {"test_len": ("min_len", "max_len")}

        def __init__(self, min_len: int = 0, max_len: int = 10**9, **kwargs):
            super().__init__(**kwargs)
            self.min_len, self.max_len = min_len, max_len

        def compute_stats(self, batch):
            batch.stats["test_len"] = [len(t) for t in self.texts(batch)]

    @register("test_exact_dedup")
    class ExactDedup(Deduplicator):
        def compute_hash(self, batch):
            return [t.strip() for t in self.texts(batch)]

    @register("test_token_dedup")
    class TokenDedup(Deduplicator):
        def compute_hash(self, batch):
            return [set(t.split()) for t in self.texts(batch)]

        def new_index(self):
            return _SharedTokenIndex()

    @register("test_picky_filter")
    class PickyFilter(Filter):
        """Marks rows containing 'corrupt' as bad input instead of raising."""

        stat_bounds = {"test_picky": ("min_v", None)}

        def __init__(self, min_v: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.min_v = min_v

        def compute_stats(self, batch):
            vals = []
            for i, t in enumerate(self.texts(batch)):
                if "corrupt" in t:
                    batch.mark_bad(i, "unreadable media")
                vals.append(len(t))
            batch.stats["test_picky"] = vals

    @register("test_raising_mapper")
    class RaisingMapper(TextMapper):
        def process_text(self, text: str) -> str:
            if "boom" in text:
                raise RuntimeError("cannot handle boom")
            return text


_register_test_ops()
