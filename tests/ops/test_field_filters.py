"""suffix_filter, specified_field_filter, specified_numeric_field_filter: decisions on a field."""

import sys

from dj_ops.core.constants import Fields
from tests.conftest import dj_cases_for
from tests.helpers_ops import make_op, run_op
from tests.ops.dj_case_asserts import assert_dj_case

TEXTS = [
    "Today is Sun",
    "a v s e c s f e f g a a a  ",
    "中文也是一个字算一个长度",
    "，。、„”“«»１」「《》´∶：？！",
    "dasdasdasdasdasdasdasd",
]


def kept_texts(op_name, samples, **params):
    kept, batch = run_op(make_op(op_name, **params), samples)
    assert batch.stats == {}  # the field itself is the "stat": no stats column
    return [s["text"] for s in kept]


# --- suffix_filter: Data-Juicer's tests/ops/filter/test_suffix_filter.py ---

SUFFIX_SAMPLES = [{"text": t, Fields.suffix: s} for t, s in zip(TEXTS, [".pdf", ".docx", ".txt", ".html", ".py"])]


def test_suffix_dj_cases():
    assert kept_texts("suffix_filter", SUFFIX_SAMPLES, suffixes=[".txt", ".pdf"]) == [TEXTS[0], TEXTS[2]]
    assert kept_texts("suffix_filter", SUFFIX_SAMPLES) == TEXTS
    assert make_op("suffix_filter").has_stats is False


def test_suffix_single_string_and_reversed():
    assert kept_texts("suffix_filter", SUFFIX_SAMPLES, suffixes=".py") == [TEXTS[4]]
    assert kept_texts("suffix_filter", SUFFIX_SAMPLES, suffixes=[".txt", ".pdf"], reversed_range=True) == [
        TEXTS[1],
        TEXTS[3],
        TEXTS[4],
    ]
    assert kept_texts("suffix_filter", [{"text": "no suffix column"}], suffixes=[".txt"]) == []


# --- specified_field_filter: Data-Juicer's tests/ops/filter/test_specified_field_filter.py ---


def test_specified_field_dj_cases():
    for case in dj_cases_for("specified_field_filter"):
        assert_dj_case(case)


def test_specified_field_list_values_need_every_item_in_target():
    paths = [["txt", "json"], ["pdf", "txt", "xbs"], ["docx", "", "html"], ["json"], ["pdf", "txt", "json", "docx"]]
    samples = [{"text": t, "meta": {"path": {"test": p}}} for t, p in zip(TEXTS, paths)]
    params = {"field_key": "meta.path.test", "target_value": ["pdf", "txt", "json"]}
    assert kept_texts("specified_field_filter", samples, **params) == [TEXTS[0], TEXTS[3]]
    kept = kept_texts("specified_field_filter", samples, reversed_range=True, **params)
    assert kept == [TEXTS[1], TEXTS[2], TEXTS[4]]


def test_specified_field_without_key_or_target_keeps_all():
    samples = [{"text": t, "meta": {"suffix": ".pdf"}} for t in TEXTS[:2]]
    op = make_op("specified_field_filter")
    assert (op.field_key, op.target_value, op.has_stats) == ("", [], False)
    assert kept_texts("specified_field_filter", samples) == TEXTS[:2]
    assert kept_texts("specified_field_filter", samples, field_key="meta.suffix") == TEXTS[:2]
    assert kept_texts("specified_field_filter", samples, target_value=[".txt"], reversed_range=True) == TEXTS[:2]


def test_specified_field_top_level_and_missing_keys():
    samples = [{"text": TEXTS[0], "lang": "en"}, {"text": TEXTS[1], "lang": "zh"}, {"text": TEXTS[2]}]
    assert kept_texts("specified_field_filter", samples, field_key="lang", target_value=["en"]) == [TEXTS[0]]


# --- specified_numeric_field_filter: Data-Juicer's tests/ops/filter/test_specified_numeric_field_filter.py ---


def test_specified_numeric_dj_cases():
    stars = [50, 6, 100, 12.51, None]
    samples = [{"text": t, "meta": {"suffix": ".x", "star": s}} for t, s in zip(TEXTS, stars)]
    del samples[4]["meta"]["star"]
    params = {"field_key": "meta.star", "min_value": 10, "max_value": 70}
    assert kept_texts("specified_numeric_field_filter", samples, **params) == [TEXTS[0], TEXTS[3]]

    nested = [
        {"key2": {"count": 34}, "count": 5},
        {"key2": {"count": 243}},
        {"key2": {"count": None}},
        {"key2": {"count": 18}},
    ]
    samples = [{"text": t, "meta": {"key1": k}} for t, k in zip(TEXTS, nested)]
    params = {"field_key": "meta.key1.key2.count", "min_value": 10, "max_value": 70}
    assert kept_texts("specified_numeric_field_filter", samples, **params) == [TEXTS[0], TEXTS[3]]

    strings = ["36", "13.5", "asdkc", "441", None]
    samples = [{"text": t, "meta": {"star": s}} for t, s in zip(TEXTS, strings)]
    params = {"field_key": "meta.star", "min_value": 10, "max_value": 70}
    assert kept_texts("specified_numeric_field_filter", samples, **params) == [TEXTS[0], TEXTS[1]]


def test_specified_numeric_defaults_and_quirks():
    op = make_op("specified_numeric_field_filter")
    assert (op.field_key, op.min_value, op.max_value, op.has_stats) == ("", -sys.maxsize, sys.maxsize, False)
    values = [0, 0.0, "", False, True, "1e3", " 7 ", [1], {"a": 1}, "nan", 10**400, -5]
    samples = [{"text": str(i), "v": v} for i, v in enumerate(values)]
    assert kept_texts("specified_numeric_field_filter", samples) == [str(i) for i in range(len(values))]
    # falsy values are "not numbers" upstream, so even 0 in [-1, 1] is dropped
    kept = kept_texts("specified_numeric_field_filter", samples, field_key="v", min_value=-10, max_value=1000)
    assert kept == ["4", "5", "6", "11"]
    # reversed keeps the outside, boundaries included; a NaN fails the range, so reversed it passes
    kept = kept_texts(
        "specified_numeric_field_filter", samples, field_key="v", min_value=1, max_value=7, reversed_range=True
    )
    assert kept == ["4", "5", "6", "9", "11"]
    kept = kept_texts(
        "specified_numeric_field_filter", samples, field_key="v", min_value=1, max_value=7, min_closed_interval=False
    )
    assert kept == ["6"]
