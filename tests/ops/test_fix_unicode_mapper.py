"""fix_unicode_mapper: the skip path and the swapped ftfy internals never change a result."""

from __future__ import annotations

import random
import re
import threading

import ftfy
import pytest
from ftfy import badness, chardata, fixes

from dj_ops.core.batch import Batch
from dj_ops.ops.common.mapper_utils import (
    FirstCharSearch,
    WindowedSearch,
    first_chars,
    whole_text_class,
    windowed_search_profile,
)
from dj_ops.ops.mapper import fix_unicode_mapper as fum
from tests.helpers_ops import make_op, run_op

# Data-Juicer's own unit-test pairs (tests/ops/mapper/test_fix_unicode_mapper.py)
DJ_PAIRS = [
    ("âœ” No problems", "✔ No problems"),
    ("The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows.", "The Mona Lisa doesn't have eyebrows."),
    ("No problems", "No problems"),
    ("阿里巴巴", "阿里巴巴"),
]

# pieces that make ftfy act, or sit right at the edge of what it acts on
INSERTS = [
    # mojibake (UTF-8 read as Latin-1 / Windows-1252 / MacRoman, doubly encoded, cut short)
    "Ã©", "Ã¨", "Ã ", "Ã\xa0", "â€™", "â€œ", "â€", "Ã¢â‚¬â„¢", "ÃƒÂ©", "Ã", "Â", "Â ", " Â ", "Ã\x85", "Ð¿Ñ€Ð¸", "Ã§a", "Ãº",
    "ã\x83\x84", "Ã¼ber", "Ã¶", "Ã©Ã©", "â€¦", "Î±Î²", "ÐŸ", "Ã—", "Ã·", "Ã¯Â¿Â½", "\x1a", "Ã?", "ÃƒÂ¢Ã¢â€šÂ¬",
    # C1 controls, Windows-1252 punctuation read as Latin-1, next-line
    "\x80", "\x85", "\x91", "\x92", "\x93", "\x94", "\x96", "\x97", "\x9f",
    # HTML entities and near misses
    "&amp;", "&lt;", "&gt;", "&#x2019;", "&#8217;", "&eacute;", "&EACUTE;", "&ntilde;", "&nTILDE;", "&nbsp", "& ", "&;",
    "&#;", "&#xZZ;", "&aaaaaaaaaaaaaaaaaaaaaaaaaa;", "<", "<b>", "<br />",
    # control characters, line breaks, terminal escapes, BOM
    "\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0e", "\x1b", "\x1b[36;44m", "\x1b[0m", "\x7f", "\r", "\r\n", "\n", "\n\n",
    "\u2028", "\u2029", "\ufeff", "\ufff9", "\ufffc", "\u206a", "\t",
    # ligatures, width forms, curly quotes
    "ﬁ", "ﬂ", "ﬃ", "ĳ", "Ǆ", "ŉ", "Ｌ", "ＯＵＤ", "　", "ｱ", "ﾀｰﾝ", "‘", "’", "“", "”", "„", "ʼ", "‛", "‟",
    # surrogates, lone and paired, and astral characters
    "\ud800", "\udc00", "\ud83d\udca9", "\udca9\ud83d", "😀", "𝒥",
    # normalization: combining marks, precomposed, compatibility characters
    "e\u0301", "\u0301", "é", "Å", "Å", "ﬀ", "①", "²", "½", "µ", "K", "ſ", "ǅ",
    # symbols from the badness categories next to letters
    "©", "®", "™", "€", "£", "¥", "°", "±", "×", "÷", "¡", "¿", "«", "»", "·", "´", "¨", "¬", "¯", "¸", "ƒ", "ˆ", "†", "‡",
    "‰", "•", "–", "—", "…", "│", "═", "▀", "√", "≈", "Œ", "œ", "Ø", "Ù", "à²", "вЂ", "ВГ", "ΒΓ", "ā€",
]


def mutate(text: str, rng: random.Random) -> str:
    chars = list(text[: rng.randint(0, 300)])
    for _ in range(rng.randint(1, 6)):
        chars.insert(rng.randint(0, len(chars)), rng.choice(INSERTS))
    return "".join(chars)


def random_text(rng: random.Random) -> str:
    pool = INSERTS + list("abc XYZ .,;'\"-")
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 25)))


def mapped(op, texts: list[str]) -> list[str]:
    return op.process_batched(Batch({"text": list(texts)})).columns["text"]


def test_dj_pairs():
    rows, _ = run_op(make_op("fix_unicode_mapper"), [{"text": t} for t, _ in DJ_PAIRS])
    assert [r["text"] for r in rows] == [expected for _, expected in DJ_PAIRS]


def test_normalization_param():
    assert make_op("fix_unicode_mapper").normalization == "NFC"
    assert make_op("fix_unicode_mapper", normalization="").normalization == "NFC"
    assert make_op("fix_unicode_mapper", normalization="nfkd").normalization == "NFKD"
    with pytest.raises(ValueError):
        make_op("fix_unicode_mapper", normalization="NFX")
    assert mapped(make_op("fix_unicode_mapper", normalization="NFKC"), ["ﬁ ① ＬＯＵＤ e\u0301"]) == ["fi 1 LOUD é"]
    assert mapped(make_op("fix_unicode_mapper", normalization="NFD"), ["é"]) == ["e\u0301"]


@pytest.mark.parametrize("normalization", ["NFC", "NFKC", "NFD", "NFKD"])
def test_equals_plain_ftfy(imdb_texts, normalization):
    rng = random.Random(normalization)
    n = 300 if normalization == "NFC" else 100
    texts = imdb_texts[: 4 * n] + [mutate(t, rng) for t in imdb_texts[:n]] + [random_text(rng) for _ in range(n)]
    texts += ["", "\n", "a\nb", "&amp;\n<b>\n&amp;", "<b>\n&amp;", "x\r\ny", "Ã \nÃ ", "\nÃ ©"]
    expected = [ftfy.fix_text(t, normalization=normalization) for t in texts]
    assert mapped(make_op("fix_unicode_mapper", normalization=normalization), texts) == expected


def test_skip_test_is_never_wrong(imdb_texts):
    rng = random.Random(7)
    texts = imdb_texts[:500] + [mutate(t, rng) for t in imdb_texts[:300]] + [random_text(rng) for _ in range(500)]
    skipped = [t for t in texts if fum.unchanged_by_ftfy(t, "NFC")]
    assert len(skipped) > 500  # the skip path is in use
    assert all(ftfy.fix_text(t) == t for t in skipped)


def test_segments_follow_ftfy(monkeypatch):
    # "auto" HTML unescaping stops for good at the first line holding "<"; segments are lines
    assert fum.unchanged_by_ftfy("<b>\n&amp;", "NFC")
    assert not fum.unchanged_by_ftfy("&amp;\n<b>", "NFC")
    monkeypatch.setattr(fum, "_SEGMENT_MAX", 4)
    assert list(fum._segments("abcdefghij\nxy\n")) == ["abcd", "efgh", "ij\n", "xy\n"]
    assert list(fum._segments("")) == []


def test_is_bad_equals_ftfy():
    assert fum._BADNESS_SEARCH is not None, "windowed badness search disabled for this ftfy version"
    rng = random.Random(1)
    pool = INSERTS + list("abcdefghijklmnopqrstuvwxyz ABC.,\n\t")
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 60))) for _ in range(4000)]
    texts += ["Ã ", " Ã ", "xÃ ", "\nÃ ", "a" * 50 + "Ã ", "Ã " + "a" * 50, "é" * 30 + "Ã", "×²", "× ²"]
    assert [fum.is_bad(t) for t in texts] == [badness.is_bad(t) for t in texts]


def test_detector_searches_equal_ftfy():
    rng = random.Random(2)
    pool = INSERTS + list("abc .\n")
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    detector = chardata.UTF8_DETECTOR_RE
    fast = FirstCharSearch.for_pattern(detector)
    assert [_span(fast.search(t)) for t in texts] == [_span(detector.search(t)) for t in texts]
    altered = chardata.ALTERED_UTF8_RE
    fast = FirstCharSearch.for_pattern(altered)
    byte_pool = b"\xc2\xc3\xc5\xe0\xe2\xe3\xf0\x80\x85\xa1\xbf a"
    blobs = [bytes(rng.choice(byte_pool) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    assert [_span(fast.search(b)) for b in blobs] == [_span(altered.search(b)) for b in blobs]


# synthetic patterns (with the alphabet random texts are drawn from) whose anchors sit at the very
# ends of the longest matches, so that a window one character too short on either side shows up
SYNTHETIC = [
    (r"é[ab]{0,5}[xy]|[xy][ab]{5}ç|^ç[ab]?|\sé\s", "éçabxy \n"),
    (r"z[ab]{8}é|é[ab]{8}z", "zzabababababé"),
    (r"[éç]..........z|z.{3}[éç]", "éçaz\n"),
    (r"(?:é|ç)(?:ab|ba){0,3}", "éçab"),
]


@pytest.mark.parametrize("pattern, alphabet", SYNTHETIC)
def test_windowed_search_equals_search(pattern, alphabet):
    pattern = re.compile(pattern)
    search = WindowedSearch.for_pattern(pattern)
    assert search is not None
    rng = random.Random(pattern.pattern)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(3000)]
    assert [search(t) for t in texts] == [bool(pattern.search(t)) for t in texts]


@pytest.mark.parametrize("pattern", [r"(?<![ab])(?:é[ab]|ç[ab]{2})+", r"(?:é|ç)(?=a)|\bç[ab]", r"^é|é$"])
def test_first_char_search_equals_search(pattern):
    pattern = re.compile(pattern)
    fast = FirstCharSearch.for_pattern(pattern)
    assert fast is not None
    rng = random.Random(pattern.pattern)
    texts = ["".join(rng.choice("éçab \n") for _ in range(rng.randint(0, 20))) for _ in range(3000)]
    assert [_span(fast.search(t)) for t in texts] == [_span(pattern.search(t)) for t in texts]


def _span(match):
    return None if match is None else match.span()


def test_possible_encoding_equals_ftfy():
    rng = random.Random(3)
    pool = INSERTS + [chr(c) for c in range(0x100)]
    texts = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 20))) for _ in range(1500)] + ["", "\n", "a\n"]
    fast = fum._fast_possible_encoding(chardata.possible_encoding)
    for encoding in chardata.ENCODING_REGEXES:
        assert whole_text_class(chardata.ENCODING_REGEXES[encoding]) is not None
        assert [fast(t, encoding) for t in texts] == [chardata.possible_encoding(t, encoding) for t in texts], encoding


def test_structure_checks_refuse_what_they_cannot_prove():
    assert windowed_search_profile(re.compile(r"a\b")) is None  # looks outside the match
    assert windowed_search_profile(re.compile(r"x|\w")) is None  # an alternative without a plain class
    assert windowed_search_profile(re.compile(r"é+")) is None  # unbounded
    assert windowed_search_profile(re.compile(r"(?i)é")) is None
    assert windowed_search_profile(re.compile(r"a(?=b)")) is None
    # per alternative one mandatory element, the rarest kind (here: fewest letters, then smallest)
    assert windowed_search_profile(re.compile(r"ab|[cd]e")) == (frozenset(map(ord, "ae")), 2)
    assert first_chars(re.compile(r"a?b")) is None
    assert first_chars(re.compile(r"(?<!x)(ab|[cd]e)+")) == frozenset(map(ord, "acd"))
    assert whole_text_class(re.compile(r"^[ab]*$")) is None  # "\n" not in the class: "$" also matches before a final "\n"
    assert whole_text_class(re.compile(r"^[ab\n]*$")) == frozenset(map(ord, "ab\n"))


def test_ftfy_is_restored_after_each_batch_and_across_threads():
    originals = (ftfy.is_bad, fixes.is_bad, chardata.UTF8_DETECTOR_RE, chardata.possible_encoding, dict(ftfy.FIXERS))
    op = make_op("fix_unicode_mapper")
    texts = ["Ã©t\x96\x85", "plain"]
    expected = [ftfy.fix_text(t) for t in texts]
    barrier = threading.Barrier(4)
    errors = []

    def work():
        try:
            barrier.wait()
            for _ in range(20):
                assert mapped(op, texts) == expected
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert (ftfy.is_bad, fixes.is_bad, chardata.UTF8_DETECTOR_RE, chardata.possible_encoding, dict(ftfy.FIXERS)) == originals
    assert ftfy.is_bad is badness.is_bad
    with fum.fast_ftfy_internals:
        assert ftfy.is_bad is fum.is_bad and chardata.possible_encoding is not originals[3]
    assert ftfy.is_bad is badness.is_bad
