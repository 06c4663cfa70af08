"""Tiny synthetic videos written with PyAV (no shared data needed) and the paths of Data-Juicer's
test videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import shared_path


def write_video(path: Path, seconds: float = 2.0, fps: int = 12, size: tuple[int, int] = (64, 48),
                gop: int = 6) -> Path:
    """An MPEG-4 video of a white square moving right on a gradient, a key frame every ``gop``
    frames."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        base = np.tile(np.linspace(0, 200, width, dtype=np.uint8), (height, 1))
        for i in range(int(seconds * fps)):
            img = np.stack([base, base[::-1, ::-1], np.full_like(base, 40 + 3 * i)], axis=-1).copy()
            x = (3 * i) % (width - 8)
            img[10:18, x:x + 8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def dj_video(name: str) -> str:
    """A video of Data-Juicer's tests/ops/data (skips the test when the shared data is absent)."""
    return str(shared_path("dj_testdata", "tests", "ops", "data", name))
