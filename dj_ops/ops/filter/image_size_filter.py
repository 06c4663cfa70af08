"""image_size_filter: ``image_sizes`` = size in bytes of every image of a sample (the file size, or
the length of the image's bytes when the row's ``image_bytes`` list is as long as its image list),
kept when inside [min_size, max_size] for any / all images.  Nothing is decoded.

Sizes are parsed as Data-Juicer's ``size_to_bytes``: the digits of the string form the number and
its letters the unit (``KB``/``KiB`` = 2**10 ... case-insensitive), so ``"1.5MB"`` means 15 MiB, as
upstream.
"""

from __future__ import annotations

import os

from dj_ops.ops.base import Filter
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.common import images

_UNIT_SHIFTS = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60, "z": 70, "y": 80}


def size_to_bytes(size: str | int) -> int:
    text = str(size)
    digits = "".join(c for c in text if c.isdigit())
    letters = "".join(c for c in text if c.isalpha()).lower()
    if not digits:
        raise ValueError(f"size {size!r} contains no number")
    number = int(digits)
    if not letters:
        return number
    if letters in ("b",) or len(letters) > 3 or letters[0] not in _UNIT_SHIFTS or letters[1:] not in ("b", "ib"):
        raise ValueError(f"size {size!r}: unknown unit {letters!r}; use KB, MB, GB, TB, PB, EB, ZB, YB or KiB, MiB ...")
    return number << _UNIT_SHIFTS[letters[0]]


@register("image_size_filter")
class ImageSizeFilter(Filter):
    stat_bounds = {"image_sizes": ("min_size", "max_size")}
    uses_text = False

    def __init__(self, min_size: str = "0", max_size: str = "1TB", any_or_all: str = "any", **kwargs):
        super().__init__(any_or_all=any_or_all, **kwargs)
        self.min_size = size_to_bytes(min_size)
        self.max_size = size_to_bytes(max_size)

    def compute_stats(self, batch: Batch) -> None:
        refs = images.row_images(batch, self.image_key)
        blobs = batch.columns.get(self.image_bytes_key)
        out = []
        for i, row in enumerate(refs):
            row_blobs = blobs[i] if blobs is not None else None
            if isinstance(row_blobs, list) and row and len(row_blobs) == len(row):
                if all(isinstance(b, bytes) for b in row_blobs):
                    out.append([len(b) for b in row_blobs])
                else:
                    batch.mark_bad(i, f"`{self.image_bytes_key}` holds a value that is not bytes")
                    out.append([])
                continue
            try:
                out.append([os.path.getsize(p) for p in row])
            except (OSError, TypeError) as exc:
                batch.mark_bad(i, f"cannot read the size of an image: {exc}")
                out.append([])
        batch.stats["image_sizes"] = out
