"""Header-based image filters (aspect ratio, shape, size) and the shared image loading.

The Data-Juicer cases are ported from its unit tests (tests/ops/filter/test_image_*_filter.py) and
run on its own test images from ../shared."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dj_ops.core.batch import Batch
from dj_ops.ops.base.intermediates import is_slice_key, row_slices
from dj_ops.ops.common import images
from dj_ops.ops.filter.image_size_filter import size_to_bytes
from tests.conftest import shared_path
from tests.helpers_ops import make_op, run_op


@pytest.fixture
def dj_images():
    d = shared_path("dj_testdata", "tests", "ops", "data")
    return {name: str(d / name) for name in ("img1.png", "img2.jpg", "img3.jpg", "cat.jpg", "lena.jpg")}


def kept(op, rows):
    out, _ = run_op(op, rows)
    return [r["images"] for r in out]


def three(dj):
    return [{"images": [dj["img1.png"]]}, {"images": [dj["img2.jpg"]]}, {"images": [dj["img3.jpg"]]}]


def pairs(dj):
    a, b, c = dj["img1.png"], dj["img2.jpg"], dj["img3.jpg"]
    return [{"images": [a, b]}, {"images": [b, c]}, {"images": [a, c]}]


# -- Data-Juicer's cases ---------------------------------------------------------------------------


def test_aspect_ratio_dj_cases(dj_images):
    a, b, c = dj_images["img1.png"], dj_images["img2.jpg"], dj_images["img3.jpg"]
    assert kept(make_op("image_aspect_ratio_filter", min_ratio=0.8, max_ratio=1.2), three(dj_images)) == [[a]]
    assert kept(make_op("image_aspect_ratio_filter", min_ratio=0.8), three(dj_images)) == [[a], [b]]
    assert kept(make_op("image_aspect_ratio_filter", max_ratio=1.2), three(dj_images)) == [[a], [c]]
    assert kept(make_op("image_aspect_ratio_filter", min_ratio=0.8, max_ratio=1.2, any_or_all="any"),
                pairs(dj_images)) == [[a, b], [a, c]]
    assert kept(make_op("image_aspect_ratio_filter", min_ratio=0.8, max_ratio=1.2, any_or_all="all"),
                pairs(dj_images)) == []


def test_aspect_ratio_stats_are_per_listed_image(dj_images):
    a, b = dj_images["img1.png"], dj_images["img2.jpg"]
    _, batch = run_op(make_op("image_aspect_ratio_filter"), [{"images": [a, b, a]}, {"images": []}, {"text": "x"}])
    assert batch.stats["aspect_ratios"] == [[1.0, 640 / 480, 1.0], [], []]


def test_shape_dj_cases(dj_images):
    a, b, c = dj_images["img1.png"], dj_images["img2.jpg"], dj_images["img3.jpg"]
    assert kept(make_op("image_shape_filter", min_width=400, min_height=400), three(dj_images)) == [[b]]
    assert kept(make_op("image_shape_filter", max_width=500, max_height=500), three(dj_images)) == [[a], [c]]
    assert kept(make_op("image_shape_filter"), three(dj_images)) == [[a], [b], [c]]
    assert kept(make_op("image_shape_filter", min_width=400, min_height=400, any_or_all="any"),
                pairs(dj_images)) == [[a, b], [b, c]]
    assert kept(make_op("image_shape_filter", min_width=400, min_height=400, any_or_all="all"), pairs(dj_images)) == []


def test_shape_keeps_an_image_only_when_both_sides_pass(dj_images):
    # img2 is 640x480: width passes min_width=500, height does not pass min_height=500
    op = make_op("image_shape_filter", min_width=500, min_height=500)
    assert kept(op, three(dj_images)) == []
    # reversed_range flips each side's test on its own, as Data-Juicer's get_keep_boolean does
    op = make_op("image_shape_filter", min_width=100, max_width=400, min_height=100, max_height=400,
                 reversed_range=True)
    _, batch = run_op(op, three(dj_images))
    assert batch.stats["image_width"] == [[336], [640], [342]]
    assert op.keep(batch).tolist() == [False, True, False]  # 342x500: width inside, so not kept


def test_size_dj_cases(dj_images):
    a, b, c = dj_images["img1.png"], dj_images["img2.jpg"], dj_images["img3.jpg"]
    assert kept(make_op("image_size_filter", min_size="120kb", max_size="180KB"), three(dj_images)) == [[a]]
    assert kept(make_op("image_size_filter", min_size="120kib"), three(dj_images)) == [[a], [b]]
    assert kept(make_op("image_size_filter", max_size="180KiB"), three(dj_images)) == [[a], [c]]
    assert kept(make_op("image_size_filter", min_size="120kb", max_size="180KB", any_or_all="any"),
                pairs(dj_images)) == [[a, b], [a, c]]
    assert kept(make_op("image_size_filter", min_size="120kb", max_size="180KB", any_or_all="all"),
                pairs(dj_images)) == []


def test_size_to_bytes_matches_data_juicer():
    assert size_to_bytes("0") == 0
    assert size_to_bytes("1TB") == 1 << 40
    assert size_to_bytes("120kb") == size_to_bytes("120KiB") == 120 << 10
    assert size_to_bytes("1.5MB") == 15 << 20  # Data-Juicer keeps the digits only
    for bad in ("MB", "12 parsecs", "3b"):
        with pytest.raises(ValueError):
            size_to_bytes(bad)


def test_size_uses_bytes_when_given_for_every_image(dj_images):
    rows = [{"images": ["a.jpg", "b.jpg"], "image_bytes": [b"x" * 10, b"y" * 20]},
            {"images": [dj_images["img3.jpg"]], "image_bytes": []}]
    _, batch = run_op(make_op("image_size_filter"), rows)
    assert batch.stats["image_sizes"] == [[10, 20], [113695]]


# -- loading: EXIF orientation, bytes, bad images --------------------------------------------------


def _jpeg_bytes(size=(40, 20), orientation=None) -> bytes:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def test_exif_rotation_applies_to_paths_not_bytes(tmp_path):
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_jpeg_bytes(orientation=6))
    assert images.decode(str(path)).size == (20, 40)
    assert images.read_header(str(path)).width == 20
    assert images.decode(path.read_bytes()).size == (40, 20)  # Data-Juicer's bytes path skips EXIF
    _, batch = run_op(make_op("image_aspect_ratio_filter"), [{"images": [str(path)]},
                                                             {"images": ["x.jpg"], "image_bytes": [path.read_bytes()]}])
    assert batch.stats["aspect_ratios"] == [[0.5], [2.0]]


def test_header_and_decode_agree_on_real_images(dj_images):
    for p in dj_images.values():
        h = images.read_header(p)
        assert (h.width, h.height) == images.decode(p).size


@pytest.fixture
def bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg_bytes((64, 48)))
    truncated = tmp_path / "truncated.jpg"
    full = _jpeg_bytes((256, 256))
    truncated.write_bytes(full[: len(full) // 2])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not an image")
    big = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(big)
    return {"good": str(good), "truncated": str(truncated), "not_image": str(not_image), "big": str(big),
            "missing": str(tmp_path / "missing.jpg")}


@pytest.fixture
def small_pixel_limit():
    old = images.limits()
    images.set_limits(images.ImageLimits(max_pixels=50_000))
    yield
    images.set_limits(old)


def test_bad_images_are_reported_with_reasons(bad_files, small_pixel_limit):
    for key, expected in [("missing", "not found"), ("not_image", "not an image"), ("big", "decompression bomb")]:
        with pytest.raises(images.ImageError, match=expected):
            images.read_header(bad_files[key])
    with pytest.raises(images.ImageError, match="truncated"):
        images.decode(bad_files["truncated"])
    assert images.decode(bad_files["good"]).size == (64, 48)


def test_truncated_images_decode_when_allowed(bad_files):
    old = images.limits()
    try:
        images.set_limits(images.ImageLimits(load_truncated=True))
        assert images.decode(bad_files["truncated"]).size == (256, 256)
    finally:
        images.set_limits(old)


def test_header_filter_marks_rows_bad_and_keeps_going(bad_files, small_pixel_limit):
    rows = [{"images": [bad_files[k]]} for k in ("good", "missing", "not_image", "big", "good")]
    batch = Batch.from_rows(rows)
    op = make_op("image_aspect_ratio_filter")
    op.compute_stats(batch)
    assert sorted(batch.bad) == [1, 2, 3]
    assert "not found" in batch.bad[1] and "not an image" in batch.bad[2] and "decompression bomb" in batch.bad[3]
    assert batch.stats["aspect_ratios"][0] == [64 / 48] and batch.stats["aspect_ratios"][1] == []


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "0")
    monkeypatch.setenv(images.TRUNCATED_ENV, "1")
    assert images._limits_from_env() == images.ImageLimits(None, True)
    monkeypatch.setenv(images.MAX_PIXELS_ENV, "lots")
    with pytest.raises(ValueError, match=images.MAX_PIXELS_ENV):
        images._limits_from_env()


def test_distinct_references_load_once_and_bytes_win(dj_images):
    a = dj_images["img1.png"]
    batch = Batch.from_rows([{"images": [a, "mem.jpg", a], "image_bytes": [None, _jpeg_bytes(), b"ignored"]}])
    src = images.row_sources(batch, "images", "image_bytes")[0]
    assert list(src) == [a, "mem.jpg"] and src[a] == a and isinstance(src["mem.jpg"], bytes)


def test_row_slices_do_not_leak_heavy_caches(dj_images):
    batch = Batch.from_rows([{"images": [p]} for p in dj_images.values()])
    op = make_op("image_aspect_ratio_filter")
    images.headers(batch, op)  # batch-lived: carried into the slices
    for offset, part in row_slices(batch, 2):
        assert any(k.startswith("__dj__image_headers") for k in part.cache)
        images.decoded(part, op, images.image_items(images.sources(part, op)))
        assert len(part) <= 2 and any(is_slice_key(k) for k in part.cache)
    assert not any(is_slice_key(k) for k in batch.cache)
    np.testing.assert_equal([o for o, _ in row_slices(batch, 2)], [0, 2, 4])
    batch.shared_slice = True  # a fused group's slice is used as it is
    assert [part for _, part in row_slices(batch, 2)] == [batch]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels but carries almost no data:
    a decompression bomb's shape, 60-odd bytes on disk."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_set_aside_without_allocating_pixels(tmp_path):
    import resource

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(50_000, 50_000))  # 7.5 GB of RGB pixels if decoded
    good = tmp_path / "good.jpg"
    good.write_bytes(_jpeg_bytes())
    assert images.limits().max_pixels == images.DEFAULT_MAX_PIXELS
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    for source in (str(bomb), bomb.read_bytes()):
        with pytest.raises(images.ImageError, match="decompression bomb.*2500000000 pixels"):
            images.read_header(source)
        with pytest.raises(images.ImageError, match="decompression bomb"):
            images.decode(source)
    batch = Batch.from_rows([{"images": [str(good)]}, {"images": [str(bomb)]},
                             {"images": ["in-memory.png"], "image_bytes": [bomb.read_bytes()]}])
    make_op("image_aspect_ratio_filter").compute_stats(batch)
    assert sorted(batch.bad) == [1, 2] and all("decompression bomb" in batch.bad[i] for i in (1, 2))
    assert batch.stats["aspect_ratios"][0] == [2.0]
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 200, f"peak memory grew by {grown_mib:.0f} MiB: the pixels were allocated"
