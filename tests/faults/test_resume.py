"""Kill -9 of the run or of a worker at seeded random points: the re-run resumes from the
checkpoint and writes byte-identical output (rows, stats, bad rows), recomputing only what was
not finished."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import psutil
import pytest

from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import load_recipe
from tests.faults import fault_ops  # noqa: F401  (registers the test OPs)
from tests.faults.helpers import kill_after, run, start, write_dataset, write_recipe

CHAIN = [
    {"test_slow_mapper": {"seconds": 0.04}},
    {"whitespace_normalization_mapper": None},
    {"test_poisoned_mapper": None},
    {"text_length_filter": {"min_len": 20}},
    {"document_deduplicator": None},
    {"words_num_filter": {"min_num": 4}},
]
NEAR_DUP = [{"document_minhash_deduplicator": {"tokenization": "space", "jaccard_threshold": 0.6}}]


def outputs(out_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out_dir.iterdir()) if p.is_file() and not p.name.startswith(".")
            and p.name != "run_report.json"}


def clean_outputs(tmp_path: Path, dataset: Path, process: list) -> dict[str, bytes]:
    out = tmp_path / "clean"
    recipe = write_recipe(tmp_path / "clean.yaml", dataset, out, process)
    LocalExecutor(load_recipe(recipe), progress=False, log=lambda m: None).run()
    return outputs(out)


def chunks_recorded(ckpt: Path) -> int:
    return sum(1 for _ in ckpt.rglob("chunk-*.pkl"))


@pytest.mark.parametrize("process", [CHAIN, CHAIN + NEAR_DUP], ids=["exact", "near_dup"])
def test_kill_run_at_random_points_then_resume(tmp_path, process):
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=1)
    expected = clean_outputs(tmp_path, dataset, process)
    assert b"poisoned row" in expected["bad_rows.jsonl"]  # the OP raised on some rows

    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    recipe = write_recipe(tmp_path / "r.yaml", dataset, out, process, use_checkpoint=True,
                          checkpoint_dir=str(ckpt))
    rng = random.Random(7)
    recorded = []
    for _ in range(4):
        rc = kill_after(recipe, rng.uniform(0.0, 1.5), ready=lambda: chunks_recorded(ckpt) > 0)
        recorded.append(chunks_recorded(ckpt))
        assert not (out / "out.jsonl").exists() or rc == 0  # a killed run never leaves an output
        if rc is not None:
            break
    assert max(recorded) > 0  # some kill came after finished chunks were recorded
    res = run(recipe)
    assert res.returncode == 0, res.stderr
    assert outputs(out) == expected


def test_resume_recomputes_only_unfinished_chunks(tmp_path):
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=2)
    expected = clean_outputs(tmp_path, dataset, CHAIN)
    out, ckpt, log = tmp_path / "out", tmp_path / "ckpt", tmp_path / "computed.log"
    recipe = write_recipe(tmp_path / "r.yaml", dataset, out,
                          [{"test_slow_mapper": {"seconds": 0.04, "log_path": str(log)}}] + CHAIN[1:],
                          use_checkpoint=True, checkpoint_dir=str(ckpt))
    assert kill_after(recipe, 0.0, ready=lambda: chunks_recorded(ckpt) >= 3) is None
    done_before = chunks_recorded(ckpt)
    computed_before = len(log.read_text().splitlines()) if log.exists() else 0
    assert 0 < done_before
    res = run(recipe)
    assert res.returncode == 0, res.stderr
    assert "replayed, not recomputed" in res.stderr
    total = chunks_recorded(ckpt)
    computed_after = len(log.read_text().splitlines()) - computed_before
    assert computed_after == total - done_before  # no finished chunk ran again
    assert outputs(out) == expected


def test_killed_worker_fails_fast_and_rerun_resumes(tmp_path):
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=3)
    expected = clean_outputs(tmp_path, dataset, CHAIN)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    recipe = write_recipe(tmp_path / "r.yaml", dataset, out, CHAIN, use_checkpoint=True, checkpoint_dir=str(ckpt))
    p = start(recipe)
    try:
        deadline = time.monotonic() + 30
        while chunks_recorded(ckpt) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = psutil.Process(p.pid).children()
        assert workers, "no worker processes"
        random.Random(3).choice(workers).send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=30)  # must not hang
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 3, err
    assert b"worker process died" in err and b"re-run the same command to resume" in err
    assert not (out / "out.jsonl").exists()
    res = run(recipe)
    assert res.returncode == 0, res.stderr
    assert outputs(out) == expected


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_repeated_random_kills_of_run_and_workers(tmp_path, seed):
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=10 + seed, n_per_file=250)
    process = CHAIN + NEAR_DUP
    expected = clean_outputs(tmp_path, dataset, process)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    recipe = write_recipe(tmp_path / "r.yaml", dataset, out, process, use_checkpoint=True, checkpoint_dir=str(ckpt))
    rng = random.Random(seed)
    for _ in range(6):
        if rng.random() < 0.5:
            if kill_after(recipe, rng.uniform(0.0, 2.0), ready=lambda: chunks_recorded(ckpt) > 0) is not None:
                break
            continue
        p = start(recipe)
        while chunks_recorded(ckpt) == 0 and p.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        workers = psutil.Process(p.pid).children() if p.poll() is None else []
        if workers:
            rng.choice(workers).send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        if p.returncode == 0:
            break
    res = run(recipe)
    assert res.returncode == 0, res.stderr
    assert outputs(out) == expected


def test_checkpoints_of_another_recipe_or_engine_are_not_replayed_and_said_so(tmp_path):
    """A checkpoint recorded for another recipe, input or engine version (its fingerprint differs)
    is never replayed: the run starts afresh and says so."""
    dataset = tmp_path / "data"
    write_dataset(dataset, seed=3, n_per_file=30)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    stale = ckpt / "0123456789abcdef0123"
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text('{"engine": "an older one"}')
    (stale / "chunk-00000000.pkl").write_bytes(b"not a chunk of this run")
    recipe = write_recipe(tmp_path / "r.yaml", dataset, out, [{"text_length_filter": {"min_len": 20}}],
                          use_checkpoint=True, checkpoint_dir=str(ckpt))
    said: list[str] = []
    LocalExecutor(load_recipe(recipe), progress=False, log=said.append).run()
    assert any("1 earlier checkpoint(s)" in m and "not used" in m for m in said)
    assert outputs(out) == clean_outputs(tmp_path, dataset, [{"text_length_filter": {"min_len": 20}}])
