"""Text OP helpers: a mapper that rewrites the text column one string at a time."""

from __future__ import annotations

from dj_ops.core.batch import Batch

from .op import Mapper


class TextMapper(Mapper):
    """A mapper that rewrites the text column one string at a time via ``process_text``.

    Rewriting the text invalidates every shared intermediate derived from it (words, lines ...)."""

    def process_text(self, text: str) -> str:
        raise NotImplementedError

    def process_batched(self, batch: Batch) -> Batch:
        fn = self.process_text
        col = self.texts(batch)
        batch.set_column(self.text_key, [fn(t) if isinstance(t, str) else t for t in col])
        batch.invalidate_cache()
        return batch
