import hashlib

import regex

from dj_ops.core.batch import Batch
from dj_ops.ops.deduplicator.document_deduplicator import NON_CHARACTER_PATTERN, remove_non_characters

from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case
from tests.ops.text_samples import all_unicode_texts

SUNDAY = "Today is Sunday and it's a happy day!"
SUNDAY_LOWER = "Today is sunday and it's a happy day!"
SUNDAY_QUESTION = "Today is sunday and it's a happy day?"
COFFEE = "Do you need a cup of coffee?"
PAPER = "This paper proposed a novel method on LLM pretraining."
MEETING = (
    "第九届会议\n2003年7月28日至8月8日\n牙买加金斯敦\n为来自发展中国家的法"
    "律和技术委员会以及财务委员会成员\n参加委员会会议支付费用的方式\n1."
)
MEETING_TIME = MEETING.replace("第九届会议\n", "第九届会议\n时间：")


def kept_texts(texts, **params):
    kept, _ = run_op(make_op("document_deduplicator", **params), [{"text": t} for t in texts])
    return [s["text"] for s in kept]


def test_dj_cases():
    for case in dj_cases_for("document_deduplicator"):
        assert_dj_case(case)


def test_dj_unit_tests():
    """Data-Juicer's tests/ops/deduplicator/test_document_deduplicator.py."""
    texts = [SUNDAY, COFFEE, SUNDAY_LOWER, SUNDAY_QUESTION, PAPER, PAPER]
    assert kept_texts(texts, lowercase=True, ignore_non_character=True) == [SUNDAY, COFFEE, PAPER]
    texts = ["你好，请问你是谁", "欢迎来到阿里巴巴！", MEETING, MEETING, MEETING_TIME]
    assert kept_texts(texts) == ["你好，请问你是谁", "欢迎来到阿里巴巴！", MEETING, MEETING_TIME]


def test_keys_are_data_juicers_md5_of_stripped_text():
    op = make_op("document_deduplicator")
    assert (op.lowercase, op.ignore_non_character) == (False, False)
    texts = ["  padded \n", "padded", "", "\ud800"]
    keys = op.compute_hash(Batch({"text": texts}))
    assert keys[:3] == [hashlib.md5(t.strip().encode()).hexdigest() for t in texts[:3]]
    assert keys[0] == keys[1] and len(set(keys)) == 3


def test_options_normalise_before_hashing():
    # whitespace runs, digit runs and ASCII punctuation go; other symbols and letters stay
    texts = ["A b, c 12!", "ab c", "abc", "a\tb\u3000c ３", "abc…", "ABC"]
    assert kept_texts(texts, ignore_non_character=True) == ["A b, c 12!", "ab c", "abc…", "ABC"]
    assert kept_texts(texts, lowercase=True, ignore_non_character=True) == ["A b, c 12!", "abc…"]
    assert kept_texts(texts, lowercase=True) == texts[:5]


def test_non_character_removal_equals_data_juicers_regex(imdb_texts):
    """The table-driven removal against ``regex.sub`` with Data-Juicer's pattern, over all of
    Unicode (4096 code points a text, empty texts between) and real text."""
    pattern = regex.compile(NON_CHARACTER_PATTERN)
    texts = all_unicode_texts() + imdb_texts + ["\ud800 x 1", " \u3000３ "]
    assert remove_non_characters(texts) == [pattern.sub("", t) for t in texts]
