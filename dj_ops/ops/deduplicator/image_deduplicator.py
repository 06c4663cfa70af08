"""image_deduplicator: exact deduplication on the concatenated perceptual hashes of a sample's
distinct images (Data-Juicer's ``__dj__imagehash``), optionally together with the md5 of the text
(``consider_text``); the first occurrence is kept and samples without images are never removed
(with ``consider_text`` they are deduplicated on the text hash alone, as upstream).

The hashes are those of ``imagededup`` (the library Data-Juicer calls), recomputed here: the RGB
image is resized with Lanczos to the method's size (phash 32x32, dhash 9x8, whash 256x256,
ahash 8x8), converted to grey levels, then
phash: 2-D DCT-II, top-left 8x8 block >= its median without the DC term;
dhash: each pixel > its left neighbour; whash: Haar wavelet (5 levels) approximation on
pixels/255 >= its median; ahash: pixel >= mean.  The 64 bits are packed row-major into 16 hex
digits.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dj_ops.ops.base import Deduplicator
from dj_ops.core.batch import Batch
from dj_ops.core.registry import register
from dj_ops.ops.base.intermediates import row_slices
from dj_ops.ops.common import images
from dj_ops.ops.deduplicator.document_deduplicator import DocumentDeduplicator

HASH_SIZES = {"phash": (32, 32), "dhash": (9, 8), "whash": (256, 256), "ahash": (8, 8)}
ROWS_PER_SLICE = 64


def _grey(img: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(img.resize(size, Image.LANCZOS).convert("L"), dtype=np.uint8)


def _phash(pixels: np.ndarray) -> np.ndarray:
    from scipy.fftpack import dct

    coef = dct(dct(pixels, axis=0), axis=1)[:8, :8]
    return coef >= np.median(coef.ravel()[1:])


def _dhash(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, 1:] > pixels[:, :-1]


def _whash(pixels: np.ndarray) -> np.ndarray:
    import pywt

    low = pywt.wavedec2(data=pixels / 255, wavelet="haar", level=5)[0]
    return low >= np.median(low.ravel())


def _ahash(pixels: np.ndarray) -> np.ndarray:
    return pixels >= np.mean(pixels)


_BITS = {"phash": _phash, "dhash": _dhash, "whash": _whash, "ahash": _ahash}


def image_hash(img: Image.Image, method: str = "phash") -> str:
    """imagededup's ``encode_image`` of a decoded RGB image: 16 hex digits."""
    bits = _BITS[method](_grey(img, HASH_SIZES[method]))
    return np.packbits(bits).tobytes().hex()


@register("image_deduplicator")
class ImageDeduplicator(Deduplicator):
    intermediates = ("images",)
    uses_text = False

    def __init__(self, method: str = "phash", consider_text: bool = False, **kwargs):
        super().__init__(**kwargs)
        if method not in HASH_SIZES:
            raise ValueError(f"method must be one of {sorted(HASH_SIZES)}, got {method!r}")
        self.method = method
        self.consider_text = consider_text
        self.uses_text = consider_text

    def compute_hash(self, batch: Batch) -> list:
        hashes: list[str] = []
        for offset, part in row_slices(batch, ROWS_PER_SLICE):
            srcs = images.sources(part, self)
            items = images.image_items(srcs)
            decoded = dict(zip(items, images.decoded(part, self, items)))
            for r, src in enumerate(srcs):
                err = next((d for k in src if isinstance(d := decoded[(r, k)], images.ImageError)), None)
                if err is not None:
                    batch.mark_bad(offset + r, str(err))
                    hashes.append("")
                else:
                    hashes.append("".join(image_hash(decoded[(r, k)], self.method) for k in src))
        if self.consider_text:
            text_hashes = DocumentDeduplicator(text_key=self.text_key).compute_hash(batch)
            return list(zip(hashes, text_hashes))
        # a sample without images is never a duplicate: its key is None
        return [h or None for h in hashes]
