"""Loading sandbox configs (:mod:`sandbox_jobs.config`) safely and validating them up front.

Everything is checked before any data is read: unknown keys anywhere (named, with the closest
valid key), unknown hooks, every recipe (through :func:`dj_ops.core.recipe.recipe_from_dict`),
every hook's ``extra_configs`` (through the hook's own pydantic model), the ``input`` references
and the HPO config.  Relative paths are taken relative to ``base_dir`` (the current directory
for the command line, the repository root for the bundled configs).  Like recipes, a sandbox
config never loads or runs code: custom hooks are registered from Python (see
:mod:`sandbox_jobs.hooks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .config import (JOB_LISTS, PIPELINE, JobConfig, SandboxConfig, SandboxConfigError, absolute, check_keys,
                     config_target, parse_reference, pydantic_error, suggest)
from .hooks import hook_class, output_names, resolve_hook

#: Data-Juicer sandbox keys this project does not support, with the reason
UNSUPPORTED_KEYS = {
    "pipelines": "multi-pipeline configs are not supported: use the four job lists (one pipeline named 'anonymous')",
    "env_manager": "per-job environments are not supported: hooks run in this project's environment",
}


def _job_from_dict(raw: Any, list_name: str, index: int, base_dir: Path) -> JobConfig:
    where = f"{list_name}[{index}]"
    if not isinstance(raw, dict):
        raise SandboxConfigError(f"{where}: a job must be a mapping with at least 'hook', got {raw!r}")
    check_keys(raw, [k for k in JobConfig.model_fields if k not in ("where", "step")], where)
    raw = dict(raw)
    if not raw.get("hook"):
        raise SandboxConfigError(f"{where}: key 'hook' is required")
    hook_cls = resolve_hook(str(raw["hook"]), where)
    raw["hook"] = hook_cls.name
    if not raw.get("meta_name"):
        # upstream's default is 'anonymous_meta_name'; a readable unique default serves lineage better
        raw["meta_name"] = f"{hook_cls.name}_{list_name.split('_')[0]}_{index}"
    if isinstance(raw.get("output"), str):
        raw["output"] = [raw["output"]]
    if raw.get("input") is None:
        raw["input"] = {}
    if raw.get("local") is None:
        raw["local"] = {}
    for key in ("dj_configs", "extra_configs"):
        if isinstance(raw.get(key), str) and raw[key].startswith("<") and raw[key].endswith(">"):
            raw[key] = None  # upstream's '<auto_replaced_with_previous_output>' placeholder
    raw.update(where=where, step=hook_cls.step_in(list_name))
    try:
        job = JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise pydantic_error(exc, where) from None
    hook_cls.check_job(job, base_dir)
    return job


def sandbox_from_dict(data: dict[str, Any], base_dir: str | Path = ".", source: str = "sandbox config") -> SandboxConfig:
    """Validate a sandbox config mapping; relative paths are taken relative to ``base_dir``."""
    if not isinstance(data, dict):
        raise SandboxConfigError(f"{source}: a sandbox config must be a mapping, got {type(data).__name__}")
    base = Path(base_dir).resolve()
    allowed = [k for k in SandboxConfig.model_fields if k not in ("source", "base_dir")]
    check_keys(data, allowed, source, UNSUPPORTED_KEYS)
    data = dict(data)
    for key in JOB_LISTS:
        jobs = data.get(key) or []
        if not isinstance(jobs, list):
            raise SandboxConfigError(f"{source}: {key} must be a list of jobs, got {type(jobs).__name__}")
        data[key] = [_job_from_dict(job, key, i, base) for i, job in enumerate(jobs)]
    data["work_dir"] = absolute(str(data.get("work_dir") or SandboxConfig.model_fields["work_dir"].default), base)
    if isinstance(data.get("hpo_config"), str):
        data["hpo_config"] = absolute(data["hpo_config"], base)
    prep = data.get("prepare_data")
    if isinstance(prep, dict) and isinstance(prep.get("source"), str):
        data["prepare_data"] = {**prep, "source": absolute(prep["source"], base)}
    _check_execution_order(data["execution_job_configs"])
    data.update(source=source, base_dir=str(base))
    try:
        cfg = SandboxConfig.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, source) from None
    _check_references(cfg)
    if cfg.hpo_config is not None:
        if cfg.max_iter_num > 1:
            raise SandboxConfigError(f"{source}: hpo_config and max_iter_num > 1 exclude each other: "
                                     "an HPO study decides every trial's parameters itself")
        # optuna: imported only for a sandbox with an HPO study
        from .hpo import load_hpo_config

        load_hpo_config(cfg)
    return cfg


def load_sandbox_config(path: str | Path, base_dir: str | Path | None = None) -> SandboxConfig:
    """Load a sandbox config file; relative paths are relative to ``base_dir`` (default: cwd)."""
    p = Path(path)
    if not p.is_file():
        raise SandboxConfigError(f"sandbox config not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SandboxConfigError(f"{p}: invalid YAML: {exc}") from None
    return sandbox_from_dict(data, base_dir if base_dir is not None else Path.cwd(), source=str(p))


def is_sandbox_config(path: Path) -> bool:
    """Whether a YAML file is a sandbox config (it has a job list), not a recipe or HPO config."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and any(k in data for k in JOB_LISTS)


def _check_execution_order(jobs: list[JobConfig]) -> None:
    # the processed_dataset step runs the data jobs, then trained_model the model jobs
    seen_model = None
    for job in jobs:
        if job.step == "train":
            seen_model = job
        elif seen_model is not None:
            raise SandboxConfigError(
                f"{job.where}: data job {job.hook} comes after model job {seen_model.where} ({seen_model.hook}): in "
                "execution_job_configs every data job must come before the model jobs (they are two steps)")


def _check_references(cfg: SandboxConfig) -> None:
    seen: list[JobConfig] = []
    for job in cfg.jobs:
        for target, ref in job.input.items():
            where = f"{job.where}.input.{target}"
            config_target(target, where)
            pipeline, meta, path = parse_reference(ref, where)
            if meta is None:
                if not seen:
                    raise SandboxConfigError(f"{where}: '-1' refers to the previous job, but this is the first job")
                source = seen[-1]
            else:
                if pipeline != PIPELINE:
                    raise SandboxConfigError(f"{where}: unknown pipeline {pipeline!r} in {ref!r}: the four job "
                                             f"lists form the pipeline {PIPELINE!r}")
                earlier = [j for j in seen if j.meta_name == meta]
                if not earlier:
                    raise SandboxConfigError(
                        f"{where}: {ref!r} names no earlier job with meta_name {meta!r}."
                        f"{suggest(meta, [j.meta_name for j in seen])} Earlier jobs: "
                        f"{', '.join(j.meta_name for j in seen) or 'none'}")
                source = earlier[-1]
            outputs = output_names(source)
            if path[0] not in outputs:
                raise SandboxConfigError(
                    f"{where}: job {source.meta_name!r} ({source.hook}) has no result {path[0]!r}."
                    f"{suggest(path[0], outputs)} Its results: {', '.join(outputs)}")
        for key in job.local:
            config_target(key, f"{job.where}.local.{key}")
        hook_class(job.hook).check_configs(job, cfg)
        seen.append(job)
