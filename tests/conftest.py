"""Shared fixtures: Data-Juicer's own test cases (tests/fixtures) and the shared corpora and media
of ../shared (tests needing those skip with a reason when it is absent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DJ_SHARED_DIR", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
DJ_CASES = Path(__file__).resolve().parent / "fixtures" / "dj_cases.json"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with a clear reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p} (set DJ_SHARED_DIR or place ../shared beside the repo)")
    return p


def dj_cases_for(op_name: str) -> list[dict]:
    """Data-Juicer's unit-test cases for ``op_name`` (tests/fixtures/dj_cases.json); an OP
    without any is an error, not a skip (the cases are in the repository)."""
    data = json.loads(DJ_CASES.read_text())
    cases = [c for c in data["cases"] + data["extra_cases"] if c["op"] == op_name]
    if not cases:
        raise LookupError(f"no Data-Juicer case for {op_name} in {DJ_CASES}")
    return cases


@pytest.fixture
def imdb_texts():
    """First 2,000 IMDB reviews (real web text) as a list of strings."""
    import gzip

    import orjson

    path = shared_path("text", "imdb_reviews_100k.jsonl.gz")
    out = []
    with gzip.open(path, "rb") as f:
        for line in f:
            out.append(orjson.loads(line)["text"])
            if len(out) >= 2000:
                break
    return out
