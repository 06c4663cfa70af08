"""clean_ip_mapper: Data-Juicer's unit-test pairs, and the pre-check against a plain regex sub."""

from __future__ import annotations

import random

import pytest
import regex

from tests.helpers_ops import make_op, run_op

DJ_PATTERN = (
    r"(?:(?:1[0-9][0-9]\.)|(?:2[0-4][0-9]\.)|(?:25[0-5]\.)|(?:[1-9][0-9]\.)|(?:[0-9]\.)){3}"
    r"(?:(?:1[0-9][0-9])|(?:2[0-4][0-9])|(?:25[0-5])|(?:[1-9][0-9])|(?:[0-9]))|([\da-fA-F]{1,4}:){7}[\da-fA-F]{1,4}"
)

# Data-Juicer's unit tests (tests/ops/mapper/test_clean_ip_mapper.py)
DJ_PAIRS = [
    ({}, "test of ip 234.128.124.123", "test of ip "),
    ({}, "34.0.124.123", ""),
    ({}, "ftp://example.com/188.46.244.216my-page.html", "ftp://example.com/my-page.html"),
    ({}, "ft174.1421.237.246my", "ft174.1421.237.246my"),
    ({}, "dd41:cbaf:d1b4:10a0:b215:72e3:6eaf:3ecb", ""),
    ({}, "test of ip 4394:538a:3bf3:61c3:cb0d:d214:526f:70d", "test of ip "),
    ({}, "com/f770:c52e:ddce:3a9f:8c3b:a7bd:d81f:985cmy-page.html", "com/my-page.html"),
    ({}, "ft1926:43a1:fcb5:ees06:ae63:a2a4:c656:d014my", "ft1926:43a1:fcb5:ees06:ae63:a2a4:c656:d014my"),
    ({"repl": "<IP>"}, "test of ip 234.128.124.123", "test of ip <IP>"),
    ({"repl": "<IP>"}, "34.0.124.123", "<IP>"),
    ({"repl": "<IP>"}, "ftp://example.com/188.46.244.216my-page.html", "ftp://example.com/<IP>my-page.html"),
    ({"repl": "<IP>"}, "ft174.1421.237.246my", "ft174.1421.237.246my"),
]


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def test_pattern_is_data_juicers():
    assert make_op("clean_ip_mapper").pattern == DJ_PATTERN


@pytest.mark.parametrize("params, text, expected", DJ_PAIRS)
def test_dj_unit_pairs(params, text, expected):
    assert mapped(make_op("clean_ip_mapper", **params), [text]) == [expected]


# digits of other scripts match \d in the IPv6 part; ":" before a space never starts an address
PIECES = ["1", "25", "255", "256", "0", "9", ".", ".", ":", ":", " ", "a", "F", "g", "٣", "０", "\n", "x:", ": ", "1.2", "ab:cd"]


@pytest.mark.parametrize("repl", ["", "<IP>"])
def test_equals_plain_sub(imdb_texts, repl):
    rng = random.Random(repl)
    # IPv6 addresses whose every group after a ":" starts with a non-ASCII digit
    texts = imdb_texts[:600] + ["", "a:٣:٣:٣:٣:٣:٣:٣ b", "x ٣١:٣:٣:٣:٣:٣:٣:٣", "1:2:3:4:5:6:7:8"]
    texts += ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30))) for _ in range(2500)]
    expected = [regex.sub(DJ_PATTERN, repl, t, flags=regex.DOTALL) for t in texts]
    assert mapped(make_op("clean_ip_mapper", repl=repl), texts) == expected
