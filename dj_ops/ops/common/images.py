"""Images shared by the image OPs: references, headers, decoded pixels and model pixel tensors.

Loading follows Data-Juicer's ``load_data_with_context`` + ``load_image``:

- a row's images are the paths in ``image_key``; an image whose bytes are present at the same
  position of ``image_bytes_key`` is decoded from those bytes instead of the path;
- images are keyed by their path, so a path listed twice in one row is loaded once (the OPs whose
  Data-Juicer stats are per *distinct* image rely on this);
- a file opened from a path is rotated by its EXIF orientation (``datasets``' image decoding does
  this), an image decoded from bytes is not; every image is converted to RGB.

Deliberate difference: Data-Juicer decodes truncated files silently (``LOAD_TRUNCATED_IMAGES``)
and lets ``Image.MAX_IMAGE_PIXELS`` raise inside an OP.  Here a missing, unreadable, truncated or
oversized image makes its row *bad input*: the OP marks it (``Batch.mark_bad``) with the reason
and the executor sets it aside.  The limits are explicit (:func:`set_limits`, or the environment
variables ``DJ_MAX_IMAGE_PIXELS`` — a pixel count, 0 for none — and ``DJ_LOAD_TRUNCATED_IMAGES=1``
to decode truncated files as Data-Juicer does).

Three levels of sharing, all per batch:

- :func:`headers`: width/height from the file header (no pixel decoding), cheap, kept for the
  whole batch;
- :func:`decoded`: RGB images, heavy (slice-lived, see :mod:`dj_ops.ops.base.intermediates`):
  filled lazily per image and only ever kept by short row slices (a fused group shares one slice
  between its OPs);
- :func:`pixel_values`: the tensors an HF image processor makes (resize, crop, normalise), shared
  by models whose processors have the same settings.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from dj_ops.core.batch import Batch
from dj_ops.ops.base.intermediates import slice_key

MAX_PIXELS_ENV = "DJ_MAX_IMAGE_PIXELS"
TRUNCATED_ENV = "DJ_LOAD_TRUNCATED_IMAGES"
DECODE_THREADS_ENV = "DJ_DECODE_THREADS"
#: Pillow's own default (a 1 GiB RGB image): larger images are decompression-bomb suspects
DEFAULT_MAX_PIXELS = 89_478_485
_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # rotations by 90/270 degrees: width and height swap


@dataclass(frozen=True)
class ImageLimits:
    #: images with more pixels are rejected before decoding; None = no limit
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    #: decode truncated files (filling the missing part with grey) instead of rejecting them
    load_truncated: bool = False


def _limits_from_env() -> ImageLimits:
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    try:
        max_pixels = DEFAULT_MAX_PIXELS if not raw else (int(float(raw)) or None)
    except ValueError:
        raise ValueError(f"${MAX_PIXELS_ENV} must be a pixel count (0 for no limit), got {raw!r}") from None
    truncated = os.environ.get(TRUNCATED_ENV, "").strip().lower() in ("1", "true", "yes")
    return ImageLimits(max_pixels, truncated)


_LIMITS: ImageLimits | None = None


def limits() -> ImageLimits:
    global _LIMITS
    if _LIMITS is None:
        set_limits(_limits_from_env())
    assert _LIMITS is not None
    return _LIMITS


def set_limits(new: ImageLimits) -> None:
    """Apply ``new`` to this process (Pillow's bomb check and truncated-file switch included).

    Pillow's check is set to the same limit so that it never raises below it; images over the
    limit are rejected here with a clear reason before Pillow would decode them.
    """
    global _LIMITS
    _LIMITS = new
    Image.MAX_IMAGE_PIXELS = new.max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = new.load_truncated


class ImageError(Exception):
    """An image that cannot be used; ``str(exc)`` is the reason written to the bad-rows file."""


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    format: str | None


# ---------------------------------------------------------------------------------------------
# References


def row_images(batch: Batch, image_key: str) -> list[list]:
    """The image references of every row ([] when the row has none)."""
    col = batch.columns.get(image_key)
    if col is None:
        return [[] for _ in range(len(batch))]
    return [v if isinstance(v, list) else ([] if v is None else [v]) for v in col]


def row_sources(batch: Batch, image_key: str, bytes_key: str) -> list[dict[Any, Any]]:
    """Per row: each distinct image reference -> what to decode (its bytes, else its path).

    As Data-Juicer: bytes are used when the row's bytes list holds ``bytes`` at the position of
    the reference's first occurrence.
    """
    refs = row_images(batch, image_key)
    blobs = batch.columns.get(bytes_key)
    out = []
    for i, keys in enumerate(refs):
        row_blobs = blobs[i] if blobs is not None else None
        if not isinstance(row_blobs, list):
            row_blobs = []
        src: dict[Any, Any] = {}
        for pos, key in enumerate(keys):
            if _hashable(key) not in src:
                blob = row_blobs[pos] if pos < len(row_blobs) else None
                src[_hashable(key)] = blob if isinstance(blob, bytes) else key
        out.append(src)
    return out


def _hashable(key: Any) -> Any:
    return key if isinstance(key, (str, bytes, int, float, type(None))) else repr(key)


# ---------------------------------------------------------------------------------------------
# Opening and decoding one image


def _open(source: Any) -> Image.Image:
    if isinstance(source, bytes):
        fp: Any = io.BytesIO(source)
        where = f"image bytes ({len(source)} B)"
    elif isinstance(source, str):
        fp = source
        where = source
    else:
        raise ImageError(f"image reference is not a path: {source!r}")
    try:
        with warnings.catch_warnings():
            # over-limit images are rejected below with a clear reason
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except FileNotFoundError:
        raise ImageError(f"image file not found: {where}") from None
    except IsADirectoryError:
        raise ImageError(f"image path is a directory: {where}") from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image (unknown format): {where}") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"decompression bomb: {where}: {exc} (raise ${MAX_PIXELS_ENV}, 0 = no limit)") from None
    except OSError as exc:
        raise ImageError(f"cannot open image {where}: {exc}") from None
    max_pixels = limits().max_pixels
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise ImageError(
            f"decompression bomb: {where} is {w}x{h} = {w * h} pixels, over the limit of {max_pixels} "
            f"(raise ${MAX_PIXELS_ENV}, 0 = no limit)"
        )
    return img


def _orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(_ORIENTATION_TAG)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored (as no orientation)
        return None


def read_header(source: Any) -> ImageHeader:
    """Width and height as Data-Juicer's decoded image has them, read from the header only."""
    img = _open(source)
    try:
        w, h = img.size
        if isinstance(source, str) and _orientation(img) in _TRANSPOSED_ORIENTATIONS:
            w, h = h, w
        return ImageHeader(w, h, img.format)
    finally:
        img.close()


def decode(source: Any) -> Image.Image:
    """The RGB image Data-Juicer's ``load_image`` makes, or :class:`ImageError`."""
    img = _open(source)
    where = source if isinstance(source, str) else "image bytes"
    try:
        img.load()
    except OSError as exc:
        img.close()
        if "truncated" in str(exc):
            raise ImageError(f"truncated image: {where} ({exc}; ${TRUNCATED_ENV}=1 decodes it anyway)") from None
        raise ImageError(f"cannot decode image {where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure makes the image unusable
        img.close()
        raise ImageError(f"cannot decode image {where}: {type(exc).__name__}: {exc}") from None
    if isinstance(source, str) and _orientation(img) is not None:
        img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


# ---------------------------------------------------------------------------------------------
# Per-batch caches


def _cache_suffix(image_key: str, bytes_key: str) -> str:
    return f"{image_key}:{bytes_key}"


def sources(batch: Batch, op: Any) -> list[dict[Any, Any]]:
    return batch.cached(f"__dj__image_sources:{_cache_suffix(op.image_key, op.image_bytes_key)}",
                        lambda: row_sources(batch, op.image_key, op.image_bytes_key))


def headers(batch: Batch, op: Any) -> list[dict[Any, ImageHeader | ImageError]]:
    """Per row: distinct image reference -> its header (or the error)."""

    def compute() -> list[dict]:
        out = []
        for src in sources(batch, op):
            row = {}
            for key, source in src.items():
                try:
                    row[key] = read_header(source)
                except ImageError as exc:
                    row[key] = exc
            out.append(row)
        return out

    return batch.cached(f"__dj__image_headers:{_cache_suffix(op.image_key, op.image_bytes_key)}", compute)


def _lazy_rows(batch: Batch, key: str) -> list[dict]:
    return batch.cached(key, lambda: [{} for _ in range(len(batch))])


def decoded(batch: Batch, op: Any, items: Sequence[tuple[int, Any]]) -> list[Image.Image | ImageError]:
    """The decoded images ``items`` = [(row, image reference)], decoded once per batch.

    Decoding runs on a thread pool (Pillow releases the GIL while decoding).
    """
    cache = _lazy_rows(batch, slice_key(f"loaded_images:{_cache_suffix(op.image_key, op.image_bytes_key)}"))
    srcs = sources(batch, op)
    todo = [(r, k) for r, k in dict.fromkeys(items) if k not in cache[r]]

    def load(item: tuple[int, Any]) -> None:
        r, k = item
        try:
            cache[r][k] = decode(srcs[r][k])
        except ImageError as exc:
            cache[r][k] = exc

    if len(todo) > 1 and decode_threads() > 1:
        list(_decode_pool().map(load, todo))
    else:
        for item in todo:
            load(item)
    return [cache[r][k] for r, k in items]


def put_decoded(batch: Batch, op: Any, items: Sequence[tuple[int, Any]], decoded_images: Sequence[Image.Image]) -> None:
    """Store images decoded elsewhere (sampled video frames) so that :func:`decoded` and
    :func:`pixel_values` find them under ``op``'s keys."""
    cache = _lazy_rows(batch, slice_key(f"loaded_images:{_cache_suffix(op.image_key, op.image_bytes_key)}"))
    for (r, k), img in zip(items, decoded_images):
        cache[r][k] = img


def decode_threads() -> int:
    raw = os.environ.get(DECODE_THREADS_ENV, "").strip()
    if raw:
        return max(1, int(raw))
    workers = int(os.environ.get("DJ_OPS_WORKERS", "1") or 1)
    return max(1, (os.cpu_count() or 1) // max(1, workers))


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _decode_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=decode_threads(), thread_name_prefix="dj-decode")
        return _POOL


def header_stats(batch: Batch, op: Any) -> tuple[list[list], list[dict[Any, ImageHeader]]]:
    """Image references and headers per row; rows with an unusable image are marked bad (their
    header dict is then empty)."""
    return row_images(batch, op.image_key), usable_rows(batch, headers(batch, op), ImageError)


def usable_rows(batch: Batch, rows: list[dict], error: type[Exception]) -> list[dict]:
    """``rows`` (per row: media reference -> header or ``error``) with every row holding an error
    marked bad in ``batch`` and replaced by an empty dict."""
    out = []
    for i, row in enumerate(rows):
        err = next((v for v in row.values() if isinstance(v, error)), None)
        if err is not None:
            batch.mark_bad(i, str(err))
            out.append({})
        else:
            out.append(row)
    return out


# ---------------------------------------------------------------------------------------------
# Model pixel tensors


def processor_fingerprint(image_processor: Any) -> str:
    """Identity of an HF image processor's settings: equal fingerprints make equal tensors."""
    cfg = {k: v for k, v in image_processor.to_dict().items() if k not in ("processor_class", "_processor_class")}
    return f"{type(image_processor).__name__}:{json.dumps(cfg, sort_keys=True, default=str)}"


def pixel_values(batch: Batch, op: Any, items: Sequence[tuple[int, Any]], image_processor: Any,
                 fingerprint: str, flip: tuple[bool, bool] = (False, False)) -> list[Any]:
    """Model input tensors (C, H, W) for ``items``; ImageError for unusable images.

    ``flip`` = (horizontal, vertical) is applied to the decoded image before preprocessing, as
    Data-Juicer's image_text_similarity_filter does.  Shared by every model whose processor has
    the same fingerprint.
    """
    import torch

    cache = _lazy_rows(batch, slice_key(f"pixels:{fingerprint}:{int(flip[0])}{int(flip[1])}:"
                                        f"{_cache_suffix(op.image_key, op.image_bytes_key)}"))
    todo = [(r, k) for r, k in dict.fromkeys(items) if k not in cache[r]]
    if todo:
        images = decoded(batch, op, todo)
        good = [(item, img) for item, img in zip(todo, images) if not isinstance(img, ImageError)]
        for (r, k), img in zip(todo, images):
            if isinstance(img, ImageError):
                cache[r][k] = img
        if good:
            pil = [_flipped(img, flip) for _, img in good]
            tensor = image_processor(images=pil, return_tensors="pt")["pixel_values"]
            for ((r, k), _), t in zip(good, torch.unbind(tensor)):
                cache[r][k] = t
    return [cache[r][k] for r, k in items]


def _flipped(img: Image.Image, flip: tuple[bool, bool]) -> Image.Image:
    if flip[0]:
        img = ImageOps.mirror(img)
    if flip[1]:
        img = ImageOps.flip(img)
    return img


def image_items(srcs: Sequence[dict[Any, Any]]) -> list[tuple[int, Any]]:
    """Every (row, distinct image reference) pair, in row order."""
    return [(r, k) for r, src in enumerate(srcs) for k in src]


__all__ = [
    "ImageError", "ImageHeader", "ImageLimits", "decode", "decoded", "header_stats", "headers", "image_items",
    "limits", "pixel_values", "processor_fingerprint", "put_decoded", "read_header",
    "row_images", "row_sources", "set_limits", "sources",
]
