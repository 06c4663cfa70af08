"""expand_macro_mapper: Data-Juicer's unit-test pair and a reference written from its rules."""

from __future__ import annotations

import random

import regex

from tests.helpers_ops import make_op, run_op

# Data-Juicer's unit test (tests/ops/mapper/test_expand_macro_mapper.py): \theHalgorithm and
# \alambic are defined without arguments and expanded (their own definitions included); \cmark
# and \xmark end in "%" so their definitions do not end the line; \binke takes an argument;
# \Zerocost and \imagenet use the brace-less \newcommand form
HEAD = (
    "\\documentclass{article}\n% Recommended, but optional, packages for figures and better typesetting:\n"
    "\\usepackage{microtype}\n\\usepackage{graphicx}\n\n% Attempt to make hyperref and algorithmic work together better:\n"
)
MIDDLE = (
    "% For theorems and such\n\\usepackage{amsmath}\n\n%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n% THEOREMS\n"
    "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n\\theoremstyle{plain}\n\\newtheorem{lemma}[theorem]{Lemma}\n"
    "\\newtheorem{corollary}[theorem]{Corollary}\n\\theoremstyle{definition}\n\n\\usepackage[textsize=small]{todonotes}\n"
    "\\setuptodonotes{inline}\n\n\\usepackage{makecell}\n\\newcommand{\\cmark}{\\ding{51}\\xspace}%\n"
    "\\newcommand{\\xmark}{\\ding{55}\\xspace}%\n\n"
)
TAIL = (
    "\n\n\\newcommand\\binke[1]{{\\color{blue} \\footnote{\\color{blue}binke: #1}} }\n\\newcommand\\Zerocost{Zero-cost}\n"
    "\\newcommand\\imagenet{ImageNet}\n\n\\begin{document}\n\n\\begin{abstract}\nThe wide\n\\end{abstract}\n"
    "\\section{Introduction}\n\\label{introduction}\nThe main contributions are summarized as follows:\n"
    "\\section{Background and Related Work}\\label{background}\n\\subsection{One-Shot NAS} In one-shot NAS\n"
    "\\section{PreNAS}\\label{method}In this\n\\subsection{One-Shot NAS with Preferred Learning}\n"
    "In the specialization stage, the optimal architectures under given  resource constraints can be directly obtained:\n"
    "\\begin{equation}\n\\widetilde{\\mathcal{A}}^* = \\widetilde{\\mathcal{A}} .\n\\end{equation}\n"
    "\\subsection{Zero-Cost Transformer Selector}\\label{sub:layerNorm}\n\\subsection{Performance Balancing} We discuss\n"
    "\\section{Experiments}\\label{experiments}\n\\subsection{Setup}\n\\subsection{Main Results}\\label{sec:sota}\n"
    "\\subsection{Analysis and Ablation study}\\label{ablation}\n\\begin{figure}[t]\n\\vskip 0.1in\n    \\centering\n"
    "    \\subfigure[Search spaces]{\\includegraphics[width=0.36\\linewidth]{img/search_space.pdf}\\label{fg:search_space:a}}%\n"
    "    \\hfil%\n"
    "    \\subfigure[Error distributions]{\\includegraphics[width=0.58\\linewidth]{img/cumulation.pdf}\\label{fg:search_space:b}}\n"
    "    \\caption{Model quality}\n\\vskip -0.1in\n\\end{figure}\n\\paragraph{Effect of Performance Balancing} During\n"
    "\\subsection{Transfer Learning Results}\n\\subsection{CNN Results} in terms of similar FLOPs.\n\\FloatBarrier\n"
    "\\section{Conclusion}\\label{conclusion} In this\n% Acknowledgements should only appear in the accepted version.\n"
    "\\bibliography{ref}\n\\bibliographystyle{icml2023}\n\\clearpage\n\\appendix\n\\onecolumn\n\\section{Statistical}\n"
    "\\label{appendix:snipAnalysis} We analyze\n\\section{The Greedy Algorithm}\n\\label{appendix:greedy}\n"
    "\\section{Regularization \\& Data Augmentation}\\label{appendix:aug}\n\\renewcommand{\\arraystretch}{1.2}\n\\end{document}\n"
)
ALAMBIC = "\\includegraphics[height=1.52ex]{img/alembic-crop.pdf}\\xspace"
DJ_INPUT = (
    HEAD + "\\newcommand{\\theHalgorithm}{\\arabic{algorithm}}\n" + MIDDLE + "\\def \\alambic {" + ALAMBIC + "}" + TAIL
)
DJ_EXPECTED = (
    HEAD + "\\newcommand{\\arabic{algorithm}}{\\arabic{algorithm}}\n" + MIDDLE + "\\def " + ALAMBIC + " {" + ALAMBIC + "}" + TAIL
)


def mapped(op, texts: list[str]) -> list[str]:
    rows, _ = run_op(op, [{"text": t} for t in texts])
    return [r["text"] for r in rows]


def test_dj_pair():
    assert mapped(make_op("expand_macro_mapper"), [DJ_INPUT]) == [DJ_EXPECTED]


def reference(text: str) -> str:
    definitions = [
        r"\\\bnewcommand\b\*?\{(\\[a-zA-Z0-9]+?)\}\{(.*?)\}$",
        r"\\def\s*(\\[a-zA-Z0-9]+?)\s*\{(.*?)\}$",
    ]
    macros = {}
    for definition in definitions:
        for m in regex.finditer(definition, text, flags=regex.MULTILINE):
            name, value = (g.encode("unicode-escape").decode("utf-8") for g in m.groups())
            macros[name] = value
    for name, value in macros.items():
        text = regex.sub("(" + name + ")([^a-zA-Z0-9])", value + r"\2", text)
    return text


def test_equals_reference(imdb_texts):
    pieces = [
        "\\newcommand{\\foo}{bar}", "\\newcommand*{\\x1}{y\\z}", "\\def\\baz{qux}", "\\def \\baz {é}", "\\newcommand{\\foo}{b2}",
        "\\foo", "\\foox", "\\baz", "\\x1", " ", ".", "\n", "{", "}", "%", "中", "\\\\",
    ]  # fmt: skip
    rng = random.Random(0)
    texts = imdb_texts[:300] + [""] + ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(1500)]
    assert mapped(make_op("expand_macro_mapper"), texts) == [reference(t) for t in texts]
