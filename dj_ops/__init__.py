"""dj_ops: Data-Juicer's operators on a streaming, multi-process engine (see the README's
Architecture section)."""

import os

# Arrow's allocator (mimalloc) keeps freed memory for a while before returning it; a streaming
# coordinator and its workers free a chunk's buffers every few milliseconds, so the delay only
# turns into resident memory (bench/RESULTS.md).  Read once, when pyarrow loads: set here, before
# any of the engine imports it; a value already in the environment wins.
os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
