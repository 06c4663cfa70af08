"""Sandbox configs: Data-Juicer's sandbox YAML shape as pydantic models, and the helpers that read
and check their values.

A sandbox config names one pipeline as Data-Juicer's four job lists, run in this order:
``probe_job_configs``, ``refine_recipe_job_configs``, ``execution_job_configs``,
``evaluation_job_configs``.  Each job has ``hook``, ``meta_name``, ``dj_configs`` (a recipe: a
path or a mapping), ``extra_configs`` (the hook's own settings: a path or a mapping), ``input``
(``{config key to set: result of an earlier job}``), ``output`` (names for the hook's results)
and ``local`` (``{config key: constant}``), as upstream.

Configs are loaded and validated up front by :mod:`sandbox_jobs.loader`; its errors
(:class:`SandboxConfigError`) name the offending key and the valid choices.
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
