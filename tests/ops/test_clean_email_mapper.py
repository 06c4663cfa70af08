"""clean_email_mapper: Data-Juicer's cases, and the '@' pre-check against a plain regex sub."""

from __future__ import annotations

import random

import pytest
import regex

from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op

DJ_PATTERN = r"[A-Za-z0-9.\-+_]+@[a-z0-9.\-+_]+\.[a-z]+"


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def test_dj_cases():
    for case in dj_cases_for("clean_email_mapper"):
        op = make_op(case["op"], **case["params"])
        assert mapped(op, [s["text"] for s in case["input_samples"]]) == [s["text"] for s in case["expected_output_samples"]]


# Data-Juicer's other unit tests (tests/ops/mapper/test_clean_email_mapper.py)
@pytest.mark.parametrize(
    "params, text, expected",
    [
        ({"repl": "<EMAIL>"}, "happy day euqdh@cjqi.com", "happy day <EMAIL>"),
        ({"repl": "<EMAIL>"}, "请问你是谁dasoidhao@1264fg.45om", "请问你是谁dasoidhao@1264fg.45om"),
        ({"repl": "<EMAIL>"}, "ftp://examplema-nièrdash@hqbchd.ckdhnfes.cds", "ftp://examplema-niè<EMAIL>"),
        ({"repl": "<EMAIL>"}, "👊23da44sh12@46hqb12chd.ckdhnfes.comd.dasd.asd.dc", "👊<EMAIL>"),
        (
            {"pattern": r"r'[A-Za-z0-9.+_]+@[a-z0-9.+_]+\.[a-z]+'", "repl": "<MAIL>"},
            "Contact: user@example.org for info",
            "Contact: <MAIL> for info",
        ),
        ({}, "No emails here!", "No emails here!"),
        ({}, "hello user@test.com world", "hello  world"),
        ({}, "clean text here", "clean text here"),
    ],
)
def test_dj_unit_pairs(params, text, expected):
    assert mapped(make_op("clean_email_mapper", **params), [text]) == [expected]


def test_raw_string_wrapper_and_groups():
    assert make_op("clean_email_mapper", pattern='r"ab"').pattern == "ab"
    assert make_op("clean_email_mapper", pattern="r'").pattern == "r'"  # too short to be a wrapper
    op = make_op("clean_email_mapper", pattern=r"(\w+)@(\w+)", repl=r"\2 at \1")
    assert mapped(op, ["x me@host y", "no"]) == ["x host at me y", "no"]


def test_equals_plain_sub(imdb_texts):
    rng = random.Random(0)
    pool = list("aZ09.-+_@ \n") + ["@", "a.b@c.de", "x@y", "é@x.com", "@.a", "Ab.C@d.EF"]
    texts = imdb_texts[:1000] + [""] + ["".join(rng.choice(pool) for _ in range(rng.randint(0, 20))) for _ in range(2000)]
    for repl in ("", "<E>"):
        expected = [regex.sub(DJ_PATTERN, repl, t, flags=regex.DOTALL) for t in texts]
        assert mapped(make_op("clean_email_mapper", repl=repl), texts) == expected
