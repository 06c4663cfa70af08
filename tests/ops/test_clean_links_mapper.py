"""clean_links_mapper: Data-Juicer's cases, and the pre-check against a plain regex sub."""

from __future__ import annotations

import random

import pytest
import regex

from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op

DJ_PATTERN = (
    r"(?i)\b((?:[a-z][\w-]+:(?:\/{1,3}|[a-z0-9%])|www\d{0,3}[.]|[a-z0-9.\-]+[.][a-z]{2,4}\/)"
    r"(?:[^\s()<>]+|\(([^\s()<>]+|(\([^\s()<>]+\)))*\))+(?:\(([^\s()<>]+|(\([^\s()<>]+\)))*\)|"
    r"[^\s`!()\[\]{};:\'\".,<>?«»“”‘’]))"
)


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def test_dj_cases():
    for case in dj_cases_for("clean_links_mapper"):
        op = make_op(case["op"], **case["params"])
        assert mapped(op, [s["text"] for s in case["input_samples"]]) == [s["text"] for s in case["expected_output_samples"]]


def test_pattern_is_data_juicers():
    assert make_op("clean_links_mapper").pattern == DJ_PATTERN


# Data-Juicer's other unit tests (tests/ops/mapper/test_clean_links_mapper.py), all with repl=""
REMOVED_ENTIRELY = [
    "ftp://user:password@ftp.example.com:21/", "ftp://www.example.com/path/to/file.txt", "ftp://example.com/my-page.html",
    "ftp://example.com", "FTP://user:password@ftp.example.COm:21/", "FTP://www.example.com/path/to/file.txt",
    "Ftp://example.com/my-page.HTMl", "FTP://EXAMPLE.COM", "https://www.example.com/file.html?param1=value1&param2=value2",
    "https://example.com/my-page.html?param1=value1&param2=value2", "https://example.com",
    "hTTps://www.example.com/file.html?param1=value1&param2=value2",
    "HttpS://example.Com/my-page.HTML?param1=value1&param2=value2", "HTTPS://EXAMPLE.COM",
    "http://example.com/my-page.html?param1=value1&param2=value2",
    "http://www.example.com/file.html?param1=value1&param2=value2",
    "HTTP://example.com/my-page.html?param1=value1&param2=value2",
    "hTTp://www.example.com/file.html?param1=value1&param2=value2",
]  # fmt: skip
DJ_PAIRS = [
    ("This is a test,http://www.example.com/file.html?param1=value1&param2=value2", "This is a test,"),
    ("这是个测试,http://example.com/my-page.html?param1=value1&param2=value2", "这是个测试,"),
    ("这是个测试,https://example.com", "这是个测试,"),
    ("This is a sample@example for test", "This is a sample@example for test"),
    ("这是一个测试, sample@example", "这是一个测试, sample@example"),
    ("abcd:/e f is a sample for test", "abcd:/e f is a sample for test"),
    ("abcd://ef is a sample for test", " is a sample for test"),
    ("This is a test,http测试://www.example.com/file.html?param1=value1", "This is a test,"),
    ("This is a test,http://www.测试.com/path/file.html?param1=value1&param2=value2", "This is a test,"),
    ("This is a sample for test", "This is a sample for test"),
    ("这是一个测试", "这是一个测试"),
    ("，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►", "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"),
]


def test_dj_unit_pairs():
    op = make_op("clean_links_mapper")
    assert mapped(op, REMOVED_ENTIRELY) == [""] * len(REMOVED_ENTIRELY)
    assert mapped(op, [t for t, _ in DJ_PAIRS]) == [expected for _, expected in DJ_PAIRS]
    op = make_op("clean_links_mapper", repl="<LINKS>")
    texts = [
        "ftp://user:password@ftp.example.com:21/", "This is a sample for test", "abcd://ef is a sample for test",
        "HTTP://example.com/my-page.html?param1=value1&param2=value2",
    ]  # fmt: skip
    assert mapped(op, texts) == ["<LINKS>", "This is a sample for test", "<LINKS> is a sample for test", "<LINKS>"]


# pieces at the edges of the pre-check: case folding (ſ, K, İ match [a-z] case-insensitively),
# digits after "www", ":" before spaces, host.tld/ with odd letters
PIECES = [
    "http", "HTTP", "hTtP", "ftp", "mailto", "x", "a-b", "_", ":", "://", ":/", ": ", ":\t", ":%", ":9", ":ſ", ":K", ":İ",
    "www", "WWW", "wWw", "Www.", "www1.", "www123.", "www1234.", "w ww.", ".com/", ".CoM/", ".ſK/", ".a/", ".abcde/",
    "example", "EXAMPLE", ".", "/", "(", ")", "(x)", "<", ">", "«", "»", "“", "”", "'", '"', " ", "\n", "中", "é", "?",
    "!", ";", "[", "]", "{", "}", "`", "%20", "#frag", "=", "&",
]  # fmt: skip


@pytest.mark.parametrize("repl", ["", "<L>"])
def test_equals_plain_sub(imdb_texts, repl):
    rng = random.Random(repl)
    texts = imdb_texts[:600] + [""] + ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14))) for _ in range(2500)]
    expected = [regex.sub(DJ_PATTERN, repl, t, flags=regex.DOTALL) for t in texts]
    assert mapped(make_op("clean_links_mapper", repl=repl), texts) == expected


def test_custom_pattern_has_no_precheck():
    op = make_op("clean_links_mapper", pattern=r"r'\d+'", repl="#")
    assert mapped(op, ["a 12 b 3", "none"]) == ["a # b #", "none"]
