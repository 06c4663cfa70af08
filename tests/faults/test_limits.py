"""Bad media (decompression bomb, missing, corrupt images), a huge document, and back-pressure:
the run completes, the bad rows are set aside with the reason, and a slow consumer bounds what
is in flight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dj_ops.engine import LocalExecutor, sinks
from dj_ops.engine.source import ChunkSource
from dj_ops.core.recipe import load_recipe
from tests.faults.helpers import read_jsonl, write_recipe


def run(tmp_path: Path, dataset: Path, name: str, process: list, **keys) -> tuple[list[dict], list[dict]]:
    out = tmp_path / name
    recipe = load_recipe(write_recipe(tmp_path / f"{name}.yaml", dataset, out, process, **keys))
    LocalExecutor(recipe, progress=False, log=lambda m: None).run()
    bad = out / "bad_rows.jsonl"
    return read_jsonl(out / "out.jsonl"), read_jsonl(bad) if bad.exists() else []


def test_bad_images_are_set_aside(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    for k, size in enumerate([(64, 48), (30, 90), (200, 100)]):
        Image.new("RGB", size, (k * 40, 90, 60)).save(media / f"ok{k}.png")
    # 10000 x 10000 1-bit pixels: a few KB of PNG, 100 M pixels once decoded (over Pillow's limit)
    Image.new("1", (10000, 10000)).save(media / "bomb.png", optimize=True)
    assert (media / "bomb.png").stat().st_size < 100_000
    (media / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    images = ["ok0.png", "bomb.png", "ok1.png", "missing.png", "ok2.png", "corrupt.jpg", "ok0.png"]
    rows = [{"id": i + 1, "text": f"row {i + 1}", "images": [str(media / name)]} for i, name in enumerate(images)]
    clean_rows = [r for r, name in zip(rows, images) if name.startswith("ok")]
    process = [{"image_shape_filter": {"min_width": 40}}, {"image_aspect_ratio_filter": {"min_ratio": 0.5}}]
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in clean_rows))
    (tmp_path / "faulty").mkdir()
    (tmp_path / "faulty" / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    clean, clean_bad = run(tmp_path, tmp_path / "clean", "clean_out", process, batch_size=3)
    kept, bad = run(tmp_path, tmp_path / "faulty", "faulty_out", process, batch_size=3)
    assert clean_bad == [] and [r["id"] for r in clean] == [1, 5, 7]
    assert kept == clean  # the clean run's rows, minus exactly the bad ones
    reasons = {b["line"]: b["reason"] for b in bad}
    assert sorted(reasons) == [2, 4, 6]
    assert "decompression bomb" in reasons[2] and "100000000 pixels" in reasons[2]
    assert "not found" in reasons[4]
    assert "cannot open image" in reasons[6] or "not an image" in reasons[6]


@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "jsonl.gz"])
def test_huge_document_is_set_aside_without_loading_it(tmp_path, gz):
    """A 50 MB single-line record over ``max_record_bytes`` becomes a bad row with its size; the
    records after it keep their line numbers and are processed."""
    import gzip

    dataset = tmp_path / "data"
    dataset.mkdir()
    rows = [{"id": i + 1, "text": f"an ordinary review number {i + 1}"} for i in range(30)]
    huge = json.dumps({"id": 11, "text": "word " * 10_000_000}).encode()  # 50 MB
    lines = [json.dumps(r).encode() for r in rows]
    lines[10] = huge
    data = b"\n".join(lines) + b"\n"
    name = "data.jsonl.gz" if gz else "data.jsonl"
    (dataset / name).write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    kept, bad = run(tmp_path, dataset, "out", [{"text_length_filter": {"min_len": 5}}],
                    batch_size=7, max_record_bytes=10_000_000)
    assert [r["id"] for r in kept] == [r["id"] for r in rows if r["id"] != 11]
    assert len(bad) == 1 and bad[0]["line"] == 11
    assert bad[0]["reason"] == f"record of {len(huge) + 1} bytes is over max_record_bytes"
    assert bad[0]["raw"].startswith('{"id": 11, "text": "word word')


def test_huge_document_within_the_limit_is_processed(tmp_path):
    dataset = tmp_path / "data"
    dataset.mkdir()
    text = "word " * 10_000_000  # 50 MB, alone in its chunk (chunks are cut at 8 MB)
    rows = [{"id": 1, "text": "short one"}, {"id": 2, "text": text}, {"id": 3, "text": "another short row"}]
    (dataset / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept, bad = run(tmp_path, dataset, "out", [{"whitespace_normalization_mapper": None},
                                               {"text_length_filter": {"min_len": 1}}])
    assert bad == [] and [r["id"] for r in kept] == [1, 2, 3]
    assert kept[1]["text"] == text.strip()


def test_slow_consumer_bounds_chunks_in_flight(tmp_path, monkeypatch):
    """Writing slowly on the coordinator holds back the reader: never more than the executor's
    bound of chunks are read ahead of the writer."""
    import time

    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "data.jsonl").write_text("".join(json.dumps({"text": f"row number {i}"}) + "\n" for i in range(800)))
    read, written, ahead = [0], [0], []
    real_chunks, real_write = ChunkSource.__iter__, sinks.Outputs.write

    def counting_chunks(self):
        for chunk in real_chunks(self):
            read[0] += 1
            ahead.append(read[0] - written[0])
            yield chunk

    def slow_write(self, res, keep_pos):
        time.sleep(0.02)
        written[0] += 1
        return real_write(self, res, keep_pos)

    monkeypatch.setattr(ChunkSource, "__iter__", counting_chunks)
    monkeypatch.setattr(sinks.Outputs, "write", slow_write)
    kept, bad = run(tmp_path, dataset, "out", [{"text_length_filter": {"min_len": 1}}], batch_size=10, np=2)
    assert len(kept) == 800 and written[0] == read[0] == 80
    # 2 * np + 2 submitted chunks, plus the one being handed to the pool
    assert max(ahead) <= 2 * 2 + 2 + 1
