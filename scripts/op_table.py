"""Writes the README's OP list from the registry: every OP, its parameters with defaults, its stats
and the formula from its docstring.  ``python scripts/op_table.py`` rewrites the README section
between the OP-LIST markers; ``--check`` exits 1 when the README is out of date (tests call it)."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dj_ops.ops.base import Deduplicator, Filter, Mapper  # noqa: E402
from dj_ops.core.registry import load_all_ops  # noqa: E402

BEGIN, END = "<!-- OP-LIST -->", "<!-- /OP-LIST -->"
KINDS = ((Mapper, "Mappers"), (Filter, "Filters"), (Deduplicator, "Deduplicators"))


def _params(cls: type) -> str:
    from dj_ops.ops import base

    if cls.__init__ in {c.__init__ for c in vars(base).values() if isinstance(c, type)}:
        return "—"  # only the common parameters
    parts = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = "" if p.default is p.empty else f"={p.default!r}"
        if len(default) > 40:
            default = "=…"
        parts.append(f"`{p.name}{default}`")
    return ", ".join(parts) or "—"


def _summary(cls: type) -> str:
    doc = inspect.getdoc(sys.modules[cls.__module__]) or inspect.getdoc(cls) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    name = cls.name
    if first.startswith(f"{name}:"):
        first = first[len(name) + 1:].strip()
    return first.replace("|", "\\|")


def op_table() -> str:
    ops = load_all_ops()
    out = [BEGIN, "", f"{len(ops)} OPs. Parameters are Data-Juicer's, with its defaults; the common"
           " parameters listed above are accepted by every OP.", ""]
    for base, title in KINDS:
        names = sorted(n for n, c in ops.items() if issubclass(c, base))
        out += [f"### {title} ({len(names)})", "", "| OP | what it computes | stats | parameters |",
                "|---|---|---|---|"]
        for n in names:
            cls = ops[n]
            stats = ", ".join(f"`{s}`" for s in getattr(cls, "stat_bounds", {}) or {}) or "—"
            out.append(f"| `{n}` | {_summary(cls)} | {stats} | {_params(cls)} |")
        out.append("")
    out.append(END)
    return "\n".join(out)


def updated_readme(text: str) -> str:
    head, sep, rest = text.partition(BEGIN)
    if not sep:
        raise SystemExit(f"README.md has no {BEGIN} marker")
    _, sep, tail = rest.partition(END)
    return head + op_table() + (tail if sep else "\n")


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    new = updated_readme(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md's OP list is out of date: run python scripts/op_table.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
