"""The OP contract, all in one place: what an OP is and what the engine asks of it.

- :mod:`.op`: :class:`OP` (every hook the executor, planner and placement use, with defaults),
  :class:`Mapper`, :class:`Filter`;
- :mod:`.text`: :class:`TextMapper`;
- :mod:`.dedup`: :class:`Deduplicator` and its coordinator-side :class:`DedupIndex`;
- :mod:`.intermediates`: how OPs share intermediates through ``batch.cache`` (keys, lifetimes, slices);
- :mod:`.model`: :class:`ModelOP`, the base of OPs that run a model (resolution, placement, slices);
  :mod:`.image_model` and :mod:`.video_model`: the filters scoring images / sampled video frames.

The contract modules import only :mod:`dj_ops.core`; the model OP bases sit on the model runtime
(:mod:`dj_ops.models`), so they are imported from their modules, not from this package.
"""

from .dedup import SAMPLE_PAIRS, DedupIndex, Deduplicator, ExactDedupIndex
from .op import MAXSIZE, OP, Filter, Mapper
from .text import TextMapper

__all__ = ["MAXSIZE", "OP", "SAMPLE_PAIRS", "DedupIndex", "Deduplicator", "ExactDedupIndex", "Filter", "Mapper",
           "TextMapper"]
