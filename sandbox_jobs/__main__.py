"""Command line: ``python -m sandbox_jobs --config recipes/sandbox/imdb_sandbox.yaml``.

Runs every trial of a sandbox config (one, ``max_iter_num`` iterations, or an HPO study),
prints each trial's parameters and scores, and writes ``<work_dir>/sandbox_report.json`` and
``<work_dir>/best_recipe.yaml``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml

from .config import SandboxConfigError
from .loader import sandbox_from_dict
from .runner import SandboxRunner


def _param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox_jobs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="sandbox config (YAML)")
    p.add_argument("--base-dir", default=".", help="relative paths in the config are relative to this (default: cwd)")
    p.add_argument("--work-dir", help="override the config's work_dir")
    p.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                   help="run one trial with this parameter (<op>.<param> or <meta_name>.<dj_configs|extra_configs>.<key>); "
                        "repeatable; not with hpo_config")
    p.add_argument("--trials", type=int, help="HPO: override sweep_max_count")
    p.add_argument("--hook-module", action="append", default=[], metavar="MODULE",
                   help="import this module first (it registers custom hooks); repeatable")
    return p


def summary_lines(report: dict[str, Any], runner: SandboxRunner) -> list[str]:
    probe_metas = {j.meta_name for j in runner.sandbox.jobs if j.hook == "ProbeViaAnalyzer"}
    lines = []
    for row in report["trials"]:
        head = f"{row['trial']}  {row['state']}"
        if row["objective"] is not None:
            head += f"  objective={row['objective']:.6g}"
        if row["params"]:
            head += "  params: " + ", ".join(f"{k}={v}" for k, v in row["params"].items())
        lines.append(head)
        for key, value in row["metrics"].items():
            meta = key.split(".", 1)[0]
            if meta in probe_metas or (".stat_shift." in key and not key.endswith("shift_sigma")):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lines.append(f"    {key:<60} {value:.6g}")
    if report.get("best_trial"):
        lines.append(f"best trial: {report['best_trial']}  recipe: {report.get('best_recipe')}")
    lines.append(f"report: {report['report_path']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for module in args.hook_module:
        importlib.import_module(module)
    path = Path(args.config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if args.work_dir:
            data["work_dir"] = args.work_dir
        sandbox = sandbox_from_dict(data, args.base_dir, source=str(path))
        if args.trials:
            from .hpo import load_hpo_config

            hpo = load_hpo_config(sandbox)
            if hpo is None:
                raise SandboxConfigError("--trials needs a sandbox with hpo_config")
            data["hpo_config"] = {**hpo.model_dump(exclude_none=True), "sweep_max_count": args.trials}
            sandbox = sandbox_from_dict(data, args.base_dir, source=str(path))
        runner = SandboxRunner(sandbox, log=lambda m: print(m, file=sys.stderr, flush=True))
        report = runner.run(params=dict(args.param) or None)
    except (SandboxConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(report, runner)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
