"""remove_header_mapper: Data-Juicer 1.6.1's unit-test pairs (drop_no_head now empties header-less
texts) and the plain regex substitution as reference."""

from __future__ import annotations

import random

import pytest
import regex

from tests.helpers_ops import make_op, run_op

HEADER_NAMES = ("chapter", "part", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
DJ_PATTERN = r"^(.*?)(" + "|".join(rf"\\\b{h}\b\*?(?:\[(.*?)\])?\{{(.*?)\}}" for h in HEADER_NAMES) + ")"

# Data-Juicer's unit test (tests/ops/mapper/test_remove_header_mapper.py::test_case): everything
# before the first \section goes
PREAMBLE = (
    "%%\n%% This is file `sample-sigconf.tex',\n%% The first command in your LaTeX source must be the \\documentclass command.\n"
    "\\documentclass[sigconf,review,anonymous]{acmart}\n%% NOTE that a single column version is required for \n"
    "%% submission and peer review. This can be done by changing\n\\input{math_commands.tex}\n"
    "%% end of the preamble, start of the body of the document source.\n\\begin{document}\n"
    '%% The "title" command has an optional parameter,\n'
    "\\title{Hierarchical Cross Contrastive Learning of Visual Representations}\n%%\n"
    '%% The "author" command and its associated commands are used to define\n%% the authors and their affiliations.\n'
    "\\author{Hesen Chen}\n\\affiliation{%\n  \\institution{Alibaba Group}\n  \\city{Beijing}\n  \\country{China}}\n"
    "\\email{hesen.chs@alibaba-inc.com}\n%% By default, the full list of authors will be used in the page\n"
    "\\begin{abstract}The rapid\n\\end{abstract}\n\\begin{CCSXML}\n\\ccsdesc[500]{Computing methodologies~Image representations}\n"
    "%% Keywords. The author(s) should pick words that accurately describe\n"
    "\\keywords{self-supervised,  ontrastive Learning, hierarchical projection, cross-level}\n%% page.\n"
    "\\begin{teaserfigure}\n\\end{teaserfigure}\n%% This command processes the author and affiliation and title\n\\maketitle\n"
)
BODY = (
    "\\section{Introduction}\n\\begin{itemize}\n\\end{itemize}\n\\section{Related Work}\n\\label{gen_inst} Self-supervised\n"
    "\\section{Method}\n\\label{method}In this section,\n\\subsection{Framework} kkk\n\\subsection{Cross Contrastive Loss}\n"
    "Since $\\sZ^n$ are extracted\n\\subsection{Implementation details}\n\\textbf{Image augmentations} We use\n"
    "\\textbf{Architecture} We use\n\\textbf{Optimization} We adapt \n\\section{Experiments}\n\\label{experiments}In this section\n"
    "\\subsection{Linear and Semi-Supervised Evaluations on ImageNet}\n\\textbf{Linear evaluation on ImageNet} We firs\n"
    "\\textbf{Semi-supervised learning on ImageNet} We simply\n\\subsection{Transfer to other datasets and tasks}\n"
    "\\textbf{Image classification with fixed features} We follow\n\\section{Ablations} We present\n"
    "\\subsection{Influence of hierarchical projection head and cross contrastive loss} get out\n"
    "\\subsection{Levels and depth of projector network}\n\\end{center}\n"
    "\\caption{\\label{figure3} \\textbf{Different way of cross-correlation on 3 level hierarchical projection head.} "
    "'=' denotes stop gradient.}\n\\end{figure}\n\\subsection{Analyze of} In this\n\\textbf{Similarity between} Using SimSiam\n"
    "\\textbf{Feature similarity} We extracted\n\\section{Conclusion}\nWe propose HCCL\n\\clearpage\n"
    "\\bibliographystyle{ACM-Reference-Format}\n\\bibliography{sample-base}\n\\end{document}\n\\endinput\n%%\n"
    "%% End of file `sample-sigconf.tex'.\n"
)
DJ_PAIRS = [
    ({}, PREAMBLE + BODY, BODY),
    ({}, "Plain text without any LaTeX header.", ""),
    ({}, "Preamble\n\\section{Intro}\nBody", "\\section{Intro}\nBody"),
    ({"drop_no_head": False}, "Plain text without any LaTeX header.", "Plain text without any LaTeX header."),
]


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


@pytest.mark.parametrize("params, text, expected", DJ_PAIRS)
def test_dj_pairs(params, text, expected):
    assert mapped(make_op("remove_header_mapper", **params), [text]) == [expected]


def test_1_6_1_fixes():
    # \paragraph and \subparagraph are separate alternatives (1.4.3 lacked the "|")
    op = make_op("remove_header_mapper")
    texts = ["x \\paragraph{P} y", "x \\subparagraph{S} y", "x \\paragraphs{P}"]
    assert mapped(op, texts) == ["\\paragraph{P} y", "\\subparagraph{S} y", ""]


@pytest.mark.parametrize("drop_no_head", [True, False])
def test_equals_plain_sub(imdb_texts, drop_no_head):
    pieces = [f"\\{h}" for h in HEADER_NAMES]
    pieces += ["\\sections", "*", "[", "]", "{", "}", "{t}", "[o]", "\\", "a", " ", "\n", "中"]
    rng = random.Random(drop_no_head)
    texts = imdb_texts[:300] + [""] + ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))) for _ in range(2000)]

    def reference(text: str) -> str:
        if not regex.search(DJ_PATTERN, text, flags=regex.DOTALL):
            return "" if drop_no_head else text
        return regex.sub(DJ_PATTERN, r"\2", text, flags=regex.DOTALL)

    assert mapped(make_op("remove_header_mapper", drop_no_head=drop_no_head), texts) == [reference(t) for t in texts]
