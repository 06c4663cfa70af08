"""clean_html_mapper: Data-Juicer's unit-test pairs, and the plain-text skip against the parser."""

from __future__ import annotations

import random

from selectolax.lexbor import LexborHTMLParser

from dj_ops.ops.mapper.clean_html_mapper import _is_plain
from tests.helpers_ops import make_op, run_op

# Data-Juicer's unit-test pairs (tests/ops/mapper/test_clean_html_mapper.py; its None input is set
# aside by the executor here)
DJ_PAIRS = [
    (
        '<header><nav><ul><tile>测试</title><li><a href="#">Home</a></li><li><a href="#">About</a></li>'
        '<li><a href="#">Services</a></li><li><a href="#">Contact</a></li></ul></nav></header>'
        "<main><h1>Welcome to My Website</h1><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit."
        "<button>Learn More</button></main><footer><p>&copy; 2021 My Website. All Rights Reserved.</p></footer>",
        "测试\n*Home\n*About\n*Services\n*ContactWelcome to My WebsiteLorem ipsum dolor sit amet, "
        "consectetur adipiscing elit.Learn More© 2021 My Website. All Rights Reserved.",
    ),
    ("<p>This is a test</p>", "This is a test"),
    ("<a href='https://www.example.com/file.html?;name=Test' rel='noopener noreferrer' target='_blank'>Test</a>", "Test"),
    (
        '<p>This is a test</p><div class="article-content"><div><p>This is a test</p><p>This is a test</p>'
        "<p><span>Test</span>：This is a test</p><p><span>Test</span>：This is a test</p></div></div><p></p><div></div>",
        "This is a testThis is a testThis is a testTest：This is a testTest：This is a test",
    ),
    ("<p>这是个测试</p>", "这是个测试"),
    ("<a href='https://www.example.com/file.html?;name=Test' rel='noopener noreferrer' target='_blank'>测试</a>", "测试"),
    (
        '<p>这是1个测试。</p><div class="article-content"><div><p>这是2个测试。</p><p>这是3个测试。</p>'
        "<p><span>测试</span>：这是4个测试。</p><p><span>测试</span>：这是5个测试。</p></div></div><p></p><div></div>",
        "这是1个测试。这是2个测试。这是3个测试。测试：这是4个测试。测试：这是5个测试。",
    ),
    ("This is a test", "This is a test"),
    ("这是个测试", "这是个测试"),
    ("12345678", "12345678"),
    ("This is a test</p>", "This is a test"),
    ("<p>这是个测试", "这是个测试"),
    ("<kkkeabcd>hello</kkkeabcd>", "hello"),
    ("<a1bcd>这是个测试</a1bcd>", "这是个测试"),
    ("<测试>这是个测试</测试>", "<测试>这是个测试"),
    ('abc="https://www.example.com/file.html?name=Test" 测试', 'abc="https://www.example.com/file.html?name=Test" 测试'),
    ('href="https://www.example.com/file.html;name=Test">测试', 'href="https://www.example.com/file.html;name=Test">测试'),
    ('<abc="https://www.example.com/file.html?name=Test">测试', "测试"),
    ("    ", ""),
    ("", ""),
    ("    This is a test", "This is a test"),
    ("    This is a test  ", "This is a test  "),
    ("<li>Apple</li>", "*Apple"),
    ("<li>苹果</li>", "*苹果"),
    ("<ol>Apple</ol>", "*Apple"),
    ("<ol>苹果</ol>", "*苹果"),
]


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def parsed(text: str) -> str:
    """Data-Juicer's steps, always through the parser."""
    text = text.replace("<li>", "\n*").replace("</li>", "").replace("<ol>", "\n*").replace("</ol>", "")
    return LexborHTMLParser(text).text()


def test_dj_pairs():
    assert mapped(make_op("clean_html_mapper"), [t for t, _ in DJ_PAIRS]) == [expected for _, expected in DJ_PAIRS]


PLAIN_PIECES = [
    " ", "\t", "\n", "\x0c", "\x0b", "\r", "\r\n", "\x00", "\x01", "\x1f", "\x7f", "\x85", "\xa0", "\u2028", "\u3000",
    "\ufeff", "\ufffe", "\uffff", "\ud800", "\udfff", "\U0010ffff", "😀", "é", "中", "a", "b", ".", ";", "&", "&amp;",
    "&lt", "&#169;", "&#0;", "<", ">", "<br />", "<b>", "</b>", "<!-- c -->", "<li>", "<ol>", "=", '"', "'", "/",
]  # fmt: skip


def test_plain_text_skip_equals_parser(imdb_texts):
    rng = random.Random(0)
    texts = imdb_texts[:800] + ["", " ", "\x0c\n\t x", "\x0b x", "\ufeffx", " \ufeff", "\xa0 x", "a\r\nb", "x\x00y"]
    plain_pieces = [p for p in PLAIN_PIECES if _is_plain(p)]
    for pool in (PLAIN_PIECES, plain_pieces):
        texts += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 12))) for _ in range(2000)]
    assert sum(map(_is_plain, texts)) > 2000  # the skip is in use
    assert mapped(make_op("clean_html_mapper"), texts) == [parsed(t) for t in texts]
