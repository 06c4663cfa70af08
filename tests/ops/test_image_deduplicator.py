"""image_deduplicator: Data-Juicer's unit-test cases on its test images, and the hashes of the
``imagededup`` library it calls (golden values computed with imagededup 0.3.3 on the same images).

The hashes are computed here rather than by a library on purpose: Data-Juicer calls imagededup,
which cannot be installed next to the pinned CPU torch (it requires torchvision, which pulls another
torch), and ``imagehash`` hashes differently (its phash thresholds the 8x8 DCT block at the median
*including* the DC term with ``>``; imagededup excludes it and uses ``>=``), which would break parity
with Data-Juicer's duplicate decisions.  Re-checked on 2026-12-02 against imagededup 0.3.3.post2
(installed aside, its torchvision/matplotlib imports stubbed): all four methods agree on these 5
images and on the first 60 ImageNet photos of ../shared/data/images."""

from __future__ import annotations

import pytest
from PIL import Image

from dj_ops.ops.common import images
from dj_ops.ops.deduplicator.image_deduplicator import image_hash
from tests.conftest import shared_path
from tests.helpers_ops import make_op, run_op

# imagededup 0.3.3: Hashing.encode_image(image_array=np.array(<Data-Juicer's RGB image>))
GOLDEN = {
    "img1.png": {"phash": "83fa7ca5f08a63a5", "dhash": "5151c9c9c6cee0f0", "whash": "e900387c7f3f3f00",
                 "ahash": "fd89397c7f7f3f00"},
    "img2.jpg": {"phash": "95bfb4c08a7ccd32", "dhash": "381c7478d9d61cfc", "whash": "ffcf0e18447a060f",
                 "ahash": "ff8f06080478040e"},
    "img3.jpg": {"phash": "969899d62dc98e9e", "dhash": "3cfc7c7c6cecec6c", "whash": "bf1e1f0606263e1e",
                 "ahash": "1e1e1e0606261e06"},
    "lena.jpg": {"phash": "99c6562d7533a696", "dhash": "7670795b33135a38", "whash": "be98bd890b0b8f8c",
                 "ahash": "b69cbd890b0b8f8e"},
    "blip.jpg": {"phash": "a1de562593f96c13", "dhash": "e0c8a4d2d69696f8", "whash": "fffffffb01000000",
                 "ahash": "ffffffff03020000"},
}


@pytest.fixture
def data_dir():
    return shared_path("dj_testdata", "tests", "ops", "data")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_hashes_match_imagededup(data_dir, name):
    img = images.decode(str(data_dir / name))
    assert {m: image_hash(img, m) for m in GOLDEN[name]} == GOLDEN[name]


@pytest.fixture
def paths(data_dir):
    # img4..img7 are byte-identical copies of img1, img2, img3, img3 (Data-Juicer's test uses symlinks)
    return {i: str(data_dir / f) for i, f in enumerate(
        ["img1.png", "img2.jpg", "img3.jpg", "img4.png", "img5.jpg", "img6.jpg", "img7.jpg"], start=1)}


def dedup(rows, **params):
    out, _ = run_op(make_op("image_deduplicator", **params), [{"images": r} for r in rows])
    return [r["images"] for r in out]


def test_dj_cases_single_images(paths):
    p = paths
    assert dedup([[p[1]], [p[2]], [p[3]]]) == [[p[1]], [p[2]], [p[3]]]
    assert dedup([[p[1]], [p[2]], [p[2]]]) == [[p[1]], [p[2]]]
    assert dedup([[p[i]] for i in range(1, 8)]) == [[p[1]], [p[2]], [p[3]]]


def test_dj_case_several_images(paths):
    p = paths
    rows = [[p[1], p[2], p[3]], [p[4], p[5], p[6]], [p[7]], [p[6]]]
    assert dedup(rows) == [[p[1], p[2], p[3]], [p[7]]]


@pytest.mark.parametrize("method", ["phash", "dhash", "whash", "ahash"])
def test_dj_cases_order_and_repeats(paths, method):
    # a path listed twice in a sample is hashed once (Data-Juicer keys loaded images by path)
    p = paths
    rows = [[p[1], p[2]], [p[2], p[1]], [p[4], p[5]], [p[7], p[7]], [p[6], p[6]]]
    assert dedup(rows, method=method) == [[p[1], p[2]], [p[2], p[1]], [p[7], p[7]]]


def test_samples_without_images_are_never_duplicates(paths):
    rows = [{"images": []}, {"images": []}, {"text": "x"}, {"images": [paths[1]]}]
    out, _ = run_op(make_op("image_deduplicator"), rows)
    assert len(out) == 4


def test_consider_text(paths):
    rows = [{"images": [paths[1]], "text": "a"}, {"images": [paths[4]], "text": "b"},
            {"images": [paths[4]], "text": "a"}, {"images": [], "text": "t"}, {"images": [], "text": "t"}]
    out, _ = run_op(make_op("image_deduplicator", consider_text=True), rows)
    # with text, samples without images are deduplicated on the text alone (as upstream)
    assert [(r["images"], r["text"]) for r in out] == [([paths[1]], "a"), ([paths[4]], "b"), ([], "t")]


def test_unreadable_image_marks_the_row_bad(paths, tmp_path):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    op = make_op("image_deduplicator")
    from dj_ops.core.batch import Batch

    batch = Batch.from_rows([{"images": [paths[1]]}, {"images": [str(tmp_path / "junk.png")]}])
    keys = op.compute_hash(batch)
    assert keys[0] == GOLDEN["img1.png"]["phash"] and list(batch.bad) == [1]


def test_grey_images_hash_like_their_rgb_conversion(tmp_path):
    img = Image.radial_gradient("L").resize((64, 48))
    img.save(tmp_path / "g.png")
    assert image_hash(images.decode(str(tmp_path / "g.png"))) == image_hash(img.convert("RGB"))
