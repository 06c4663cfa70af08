"""Plots across trials for the Dagster UI: small PNGs embedded in Markdown as data URIs."""

from __future__ import annotations

import base64
import io
import math
from typing import Any


def _png_md(fig, title: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def trials_markdown(rows: list[dict[str, Any]], metric: str, goal: str | None) -> str:
    """The objective of every trial with the best so far, and one scatter per numeric parameter.

    ``rows`` are :meth:`SandboxRunner.trial_rows` entries; without HPO (``goal`` None) the metric
    is plotted as it is.
    """
    scored = [(i, r) for i, r in enumerate(rows) if _finite(r["metrics"].get(metric)) and r["state"] == "COMPLETE"]
    if not scored:
        return f"_no trial has a finite {metric} yet_"
    plt = _pyplot()
    xs = [i for i, _ in scored]
    ys = [r["metrics"][metric] for _, r in scored]
    fig, ax = plt.subplots(figsize=(4.2, 2.6))
    ax.plot(xs, ys, "o", color="#4670c8", label="trial")
    if goal:
        pick = max if goal == "maximize" else min
        best = [pick(ys[: k + 1]) for k in range(len(ys))]
        ax.step(xs, best, where="post", color="#d2553c", label="best so far")
        ax.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial", fontsize=8)
    ax.set_ylabel(metric, fontsize=8)
    ax.tick_params(labelsize=7)
    parts = [f"**{metric} per trial**", "", _png_md(fig, metric)]
    names = sorted({k for _, r in scored for k, v in r["params"].items() if _finite(v)})
    for name in names:
        pts = [(r["params"][name], r["metrics"][metric]) for _, r in scored if _finite(r["params"].get(name))]
        fig, ax = plt.subplots(figsize=(3.2, 2.2))
        ax.plot([p for p, _ in pts], [v for _, v in pts], "o", color="#4670c8")
        ax.set_xlabel(name, fontsize=7)
        ax.set_ylabel(metric, fontsize=7)
        ax.tick_params(labelsize=6)
        parts += ["", f"**{name}** vs {metric}", "", _png_md(fig, name)]
    return "\n".join(parts)


def trials_table_md(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    """A Markdown table: trial, state, parameters, the chosen scores."""
    names = sorted({k for r in rows for k in r["params"]})
    head = ["trial", "state", *names, *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["trial"], r["state"], *(_fmt(r["params"].get(n)) for n in names),
                 *(_fmt(r["metrics"].get(m)) for m in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)
