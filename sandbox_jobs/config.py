"""Sandbox configs: Data-Juicer's sandbox YAML shape, loaded safely and validated up front.

A sandbox config names one pipeline as Data-Juicer's four job lists, run in this order:
``probe_job_configs``, ``refine_recipe_job_configs``, ``execution_job_configs``,
``evaluation_job_configs``.  Each job has ``hook``, ``meta_name``, ``dj_configs`` (a recipe: a
path or a mapping), ``extra_configs`` (the hook's own settings: a path or a mapping), ``input``
(``{config key to set: result of an earlier job}``), ``output`` (names for the hook's results)
and ``local`` (``{config key: constant}``), as upstream.

Everything is checked before any data is read: unknown keys anywhere (named, with the closest
valid key), unknown hooks, every recipe (through :func:`dj_ops.core.recipe.recipe_from_dict`),
every hook's ``extra_configs`` (through the hook's own pydantic model), the ``input`` references
and the HPO config.  Relative paths are taken relative to ``base_dir`` (the current directory
for the command line, the repository root for the bundled configs).  Like recipes, a sandbox
config never loads or runs code: custom hooks are registered from Python (see
:mod:`sandbox_jobs.hooks`).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any, Iterable, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dj_ops.core.recipe import Recipe, RecipeError, recipe_from_dict

JOB_LISTS = ("probe_job_configs", "refine_recipe_job_configs", "execution_job_configs", "evaluation_job_configs")
#: the pipeline name Data-Juicer gives the four top-level job lists (used in ``input`` references)
PIPELINE = "anonymous"
#: lineage steps (one Dagster asset each), in order
STEPS = ("probe", "refine", "process", "train", "evaluate")
#: ``iter_targets`` entries: ``<pipeline>.<meta_name>.<key...> <op> <number>``
ITER_TARGET = re.compile(r"^\s*([^\s<>=!]+)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")
#: Data-Juicer sandbox keys this project does not support, with the reason
UNSUPPORTED_KEYS = {
    "pipelines": "multi-pipeline configs are not supported: use the four job lists (one pipeline named 'anonymous')",
    "env_manager": "per-job environments are not supported: hooks run in this project's environment",
}


class SandboxConfigError(RecipeError):
    """A sandbox config that cannot run; the message names the offending key and valid choices."""


def suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_keys(data: dict, allowed: Iterable[str], where: str, unsupported: dict[str, str] | None = None) -> None:
    allowed = list(allowed)
    for key in data:
        if unsupported and key in unsupported:
            raise SandboxConfigError(f"{where}: key {key!r}: {unsupported[key]}")
        if key not in allowed:
            raise SandboxConfigError(
                f"{where}: unknown key {key!r}.{suggest(str(key), allowed)} Valid keys: {', '.join(sorted(allowed))}")


def pydantic_error(exc: ValidationError, where: str) -> SandboxConfigError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return SandboxConfigError(f"{where}{'.' + loc if loc else ''}: {err['msg']} (got {err.get('input')!r})")


def absolute(path: str, base_dir: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() or "://" in path else (base_dir / p).resolve())


def read_mapping(path: str, base_dir: Path, where: str) -> dict:
    """A YAML or JSON file holding a mapping (``dj_configs`` / ``extra_configs`` given as paths)."""
    p = Path(absolute(path, base_dir))
    if not p.is_file():
        raise SandboxConfigError(f"{where}: file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SandboxConfigError(f"{where}: {p}: invalid {p.suffix.lstrip('.') or 'YAML'}: {exc}") from None
    data = data or {}
    if not isinstance(data, dict):
        raise SandboxConfigError(f"{where}: {p} must hold a mapping, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------
# models


class PrepareSplit(BaseModel):
    """Rows of the source written to ``<work_dir>/data/<split>.jsonl`` (this project's key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rows: int = Field(gt=0)
    #: keep only records whose dotted field equals the value, e.g. ``{meta.split: test}``
    where: dict[str, Any] = Field(default_factory=dict)


class LabelBins(BaseModel):
    """``meta.label`` from a field of the file name: the bin whose first value is the greatest one
    not above the field's value (values compared as strings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    field: str
    #: {label: first value of its bin}
    bins: dict[str, str]

    @field_validator("bins")
    @classmethod
    def _bins(cls, v: dict[str, str]) -> dict[str, str]:
        if len(v) < 2:
            raise ValueError("name at least two bins")
        return v

    def label(self, value: str) -> str | None:
        below = [(start, name) for name, start in self.bins.items() if start <= value]
        return max(below)[1] if below else None


class ImageFolder(BaseModel):
    """A folder of images as rows: ``{text, images: [absolute path], meta: {file, <groups>, label}}``,
    one per image file whose name matches, in a seeded shuffled order (file names are often
    sorted by class)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: regular expression matched against the file name without extension; named groups go to meta
    name_pattern: str = r"(?P<name>.+)"
    #: the row's text: a format string over the named groups, e.g. 'a photo of a {name}'
    text: str = "{name}"
    #: meta.label from a named group (see LabelBins)
    label: LabelBins | None = None
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
    seed: int = 0

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _groups(self) -> "ImageFolder":
        groups = set(re.compile(self.name_pattern).groupindex)
        if self.label is not None and self.label.field not in groups:
            raise ValueError(f"label.field {self.label.field!r} is not a named group of name_pattern "
                             f"(groups: {sorted(groups)})")
        try:
            self.text.format(**{g: "" for g in groups})
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"text {self.text!r} must use only the named groups {sorted(groups)}: {exc}") from None
        return self


class PrepareData(BaseModel):
    """Prepares the sandbox's data once, before any trial: the first ``rows`` matching records of
    ``source`` per split, in file order (splits never share a record).  ``source`` is a JSON-lines
    file (optionally gzipped) or, with ``image_folder``, a folder of images.  Idempotent: a split
    file that exists with the same settings is kept."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    text_key: str = "text"
    image_folder: ImageFolder | None = None
    splits: dict[str, PrepareSplit]

    @field_validator("splits")
    @classmethod
    def _names(cls, v: dict[str, PrepareSplit]) -> dict[str, PrepareSplit]:
        if not v:
            raise ValueError("name at least one split")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise ValueError(f"split name {name!r} must be a plain file name (letters, digits, _ . -)")
        return v


class JobConfig(BaseModel):
    """One job of a job list (Data-Juicer's ``JobRequiredKeys``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hook: str
    meta_name: str
    dj_configs: str | dict[str, Any] | None = None
    extra_configs: str | dict[str, Any] | None = None
    input: dict[str, str] = Field(default_factory=dict)
    output: list[str] | None = None
    local: dict[str, Any] = Field(default_factory=dict)
    #: where the job sits: ``<job list>[<index>]`` (set by the loader, for messages)
    where: str = ""
    #: the lineage step (one Dagster asset) the job belongs to (set by the loader)
    step: str = ""


class SandboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    project_name: str = "hello_world"
    experiment_name: str | None = None
    work_dir: str = "./outputs/sandbox"
    hpo_config: str | dict[str, Any] | None = None
    resume: bool = False
    max_iter_num: int = Field(default=1, ge=1)
    iter_targets: list[str] = Field(default_factory=list)
    iter_targets_mode: Literal["all", "any"] = "all"
    iter_updater: dict[str, str] = Field(default_factory=dict)
    probe_job_configs: list[JobConfig] = Field(default_factory=list)
    refine_recipe_job_configs: list[JobConfig] = Field(default_factory=list)
    execution_job_configs: list[JobConfig] = Field(default_factory=list)
    evaluation_job_configs: list[JobConfig] = Field(default_factory=list)
    # this project's own keys
    #: data prepared once before the trials (e.g. a sample of a large shared corpus)
    prepare_data: PrepareData | None = None
    #: where the config was loaded from and what relative paths are relative to (set by the loader)
    source: str = ""
    base_dir: str = "."

    @field_validator("iter_targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        for target in v:
            if not ITER_TARGET.match(target):
                raise ValueError(f"{target!r} is not '<pipeline>.<meta_name>.<key> <op> <number>' "
                                 "with <op> one of >=, <=, ==, !=, >, <")
        return v

    @field_validator("iter_updater")
    @classmethod
    def _updater(cls, v: dict[str, str]) -> dict[str, str]:
        for source, target in v.items():
            parts = target.split(".")
            parts = parts[1:] if parts[0] == PIPELINE else parts
            if len(source.split(".")) < 3 or len(parts) < 3 or parts[1] not in ("dj_configs", "extra_configs"):
                raise ValueError(f"{source!r}: {target!r} must map '<pipeline>.<meta_name>.<result>' to "
                                 "'<pipeline>.<meta_name>.<dj_configs|extra_configs>.<key>'")
        return v

    @property
    def name(self) -> str:
        return self.experiment_name or self.project_name

    @property
    def jobs(self) -> list[JobConfig]:
        return [job for key in JOB_LISTS for job in getattr(self, key)]

    def jobs_for_step(self, step: str) -> list[JobConfig]:
        return [job for job in self.jobs if job.step == step]

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir)

    @property
    def prepared_dir(self) -> Path:
        return self.work_path / "data"

    def meta_names(self) -> list[str]:
        return list(dict.fromkeys(job.meta_name for job in self.jobs))

    def hpo(self):
        """The validated HPO config, or None."""
        from .hpo import load_hpo_config

        return None if self.hpo_config is None else load_hpo_config(self.hpo_config, self)


# ---------------------------------------------------------------------------------------------
# loading


def _job_from_dict(raw: Any, list_name: str, index: int, base_dir: Path) -> JobConfig:
    from .hooks import resolve_hook

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
        cfg.hpo()
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


# ---------------------------------------------------------------------------------------------
# references between jobs


def parse_reference(ref: str, where: str) -> tuple[str | None, str | None, list[str]]:
    """``-1.<out>`` (the latest job's result) or ``<pipeline>.<meta_name>.<out...>``."""
    parts = str(ref).split(".")
    if parts[0] == "-1":
        if len(parts) < 2:
            raise SandboxConfigError(f"{where}: reference {ref!r} names no result: write '-1.<output name>'")
        return None, None, parts[1:]
    if len(parts) < 3:
        raise SandboxConfigError(
            f"{where}: reference {ref!r} must be '-1.<output>' or '<pipeline>.<meta_name>.<output>' "
            f"(the pipeline of the four job lists is {PIPELINE!r})")
    return parts[0], parts[1], parts[2:]


def config_target(key: str, where: str) -> tuple[str, list[str]]:
    """``dj_configs[.<key>...]`` or ``extra_configs[.<key>...]``: the config group and the path in it."""
    parts = str(key).split(".")
    if parts[0] not in ("dj_configs", "extra_configs"):
        raise SandboxConfigError(f"{where}: key {key!r} must start with 'dj_configs' or 'extra_configs'"
                                 f"{suggest(parts[0], ['dj_configs', 'extra_configs'])}")
    return parts[0], parts[1:]


def _check_references(cfg: SandboxConfig) -> None:
    from .hooks import hook_class

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


def output_names(job: JobConfig) -> list[str]:
    """A job's result names: its ``output`` list renames the hook's results in order."""
    from .hooks import hook_class

    names = list(hook_class(job.hook).outputs)
    if job.output:
        if len(job.output) > len(names):
            raise SandboxConfigError(f"{job.where}.output: {job.hook} has {len(names)} result(s) "
                                     f"({', '.join(names)}), {len(job.output)} names given")
        names[: len(job.output)] = job.output
    return names


# ---------------------------------------------------------------------------------------------
# recipes of jobs


def recipe_for_job(data: dict[str, Any], base_dir: Path, where: str) -> Recipe:
    """A job's recipe with its dataset and output paths made absolute."""
    data = dict(data)
    for key in ("dataset_path", "export_path", "work_dir"):
        if isinstance(data.get(key), str) and data[key]:
            value = data[key]
            data[key] = " ".join(absolute(p, base_dir) for p in value.split()) if key == "dataset_path" else absolute(value, base_dir)
    try:
        return recipe_from_dict(data, source=where)
    except RecipeError as exc:
        msg = str(exc)
        raise SandboxConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
