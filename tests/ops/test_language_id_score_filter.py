import pytest

from dj_ops.ops.common.models import LID_MODEL_ENV, ModelLoadError, bundled_lid_model, fasttext_lid_model
from tests.helpers_ops import make_op, run_op

# Data-Juicer's tests/ops/filter/test_language_id_score_filter.py (made for lid.176.bin; the bundled
# lid.176.ftz gives the same decisions)
CODE = "a=1\nb\nc=1+2+3+5\nd=6"
SUNDAY = "Today is Sund Sund Sund Sunda and it's a happy day!\nYou know"
LETTERS = "a v s e e f g a qkc"
PUNCT_LONG = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
COFFEE = "Do you need a cup of coffee?"
EMOJI = "emoji表情测试下😊，😸31231\n"
BORN = "我出生于2023年12月15日"
PUNCT = "，。、„”“«»１」「《》´∶：？！（）；–—"
HARRY = "他的英文名字叫Harry Potter"
TEST_ZH = "这是一个测试"

DJ_CASES = [
    ("en", [CODE, SUNDAY, LETTERS, PUNCT_LONG, COFFEE, EMOJI], [SUNDAY, COFFEE]),
    ("zh", [CODE, SUNDAY, BORN, PUNCT, HARRY, TEST_ZH], [BORN, PUNCT, HARRY, TEST_ZH]),
    ("", [CODE, SUNDAY, BORN, PUNCT, HARRY, TEST_ZH], [SUNDAY, BORN, PUNCT, HARRY, TEST_ZH]),
    (
        ["en", "zh"],
        [CODE, BORN, HARRY, SUNDAY, LETTERS, PUNCT_LONG, COFFEE, EMOJI, TEST_ZH],
        [BORN, HARRY, SUNDAY, PUNCT_LONG, COFFEE, TEST_ZH],
    ),
]


@pytest.mark.parametrize(("lang", "texts", "expected"), DJ_CASES)
def test_dj_cases(lang, texts, expected):
    kept, _ = run_op(make_op("language_id_score_filter", lang=lang, min_score=0.8), [{"text": t} for t in texts])
    assert [s["text"] for s in kept] == expected


def test_defaults_and_stats_match_fasttext():
    op = make_op("language_id_score_filter")
    assert (op.lang, op.min_score, op.model_path) == (None, 0.8, None)
    texts = [SUNDAY, BORN, EMOJI, "", "Bonjour, je m'appelle Marie.\r\nEt toi?", "\ud800 lone surrogate"]
    _, batch = run_op(op, [{"text": t} for t in texts])
    model = fasttext_lid_model(None, op_name="test")
    for text, lang, score in zip(texts[:-1], batch.stats["lang"], batch.stats["lang_score"]):
        labels, probs = model.predict(text.lower().replace("\n", " "))
        assert (lang, score) == (labels[0].removeprefix("__label__"), probs[0])
    assert batch.stats["lang"][:2] == ["en", "zh"] and batch.stats["lang"][4] == "fr"
    assert isinstance(batch.stats["lang_score"][-1], float)


def test_reversed_range_flips_the_score_test_only():
    samples = [{"text": t} for t in (SUNDAY, COFFEE, CODE, BORN)]  # en .99, en .89, en .12, zh .87
    kept, _ = run_op(make_op("language_id_score_filter", lang="en", min_score=0.9, reversed_range=True), samples)
    assert [s["text"] for s in kept] == [COFFEE, CODE]


def test_model_path_and_env(monkeypatch, tmp_path):
    bundled = str(bundled_lid_model())
    kept, _ = run_op(make_op("language_id_score_filter", lang="en", model_path=bundled), [{"text": SUNDAY}])
    assert len(kept) == 1
    missing = str(tmp_path / "lid.176.bin")
    with pytest.raises(ModelLoadError, match="language_id_score_filter") as err:
        run_op(make_op("language_id_score_filter", model_path=missing), [{"text": SUNDAY}])
    assert missing in str(err.value) and "model_path" in str(err.value)
    monkeypatch.setenv(LID_MODEL_ENV, missing)
    with pytest.raises(ModelLoadError, match=LID_MODEL_ENV):
        run_op(make_op("language_id_score_filter"), [{"text": SUNDAY}])
