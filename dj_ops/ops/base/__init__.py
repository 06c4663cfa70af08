"""The OP contract, all in one place: what an OP is and what the engine asks of it.

- :mod:`.op`: :class:`OP` (every hook the executor, planner and placement use, with defaults),
  :class:`Mapper`, :class:`Filter`;
- :mod:`.text`: :class:`TextMapper`;
- :mod:`.dedup`: :class:`Deduplicator` and its coordinator-side :class:`DedupIndex`;
- :mod:`.intermediates`: how OPs share intermediates through ``batch.cache`` (keys, lifetimes, slices);
- :mod:`.model`: :class:`ModelOP`, the base of OPs that run a model (resolution, placement, slices).
"""

from .dedup import SAMPLE_PAIRS, DedupIndex, Deduplicator, ExactDedupIndex
from .op import MAXSIZE, OP, Filter, Mapper
from .text import TextMapper

__all__ = ["MAXSIZE", "OP", "SAMPLE_PAIRS", "DedupIndex", "Deduplicator", "ExactDedupIndex", "Filter", "Mapper",
           "TextMapper"]
