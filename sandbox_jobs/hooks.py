"""Hooks: what a sandbox job does.  A registry maps ``hook:`` names to classes.

Built in: ProbeViaAnalyzer, RefineRecipeViaKSigma, ProcessData, TrainModel, EvaluateData,
EvaluateModel (Data-Juicer's names, with or without the ``Hook`` suffix).

Adding a hook
-------------
Subclass :class:`Hook`, decorate it with ``@register_hook("MyHook")`` and import the module
before the config is loaded (``python -m sandbox_jobs --hook-module my_pkg.my_hooks ...``; for
Dagster set ``DJ_SANDBOX_HOOK_MODULES=my_pkg.my_hooks``).  Declare:

- ``outputs``: names of the results ``run`` returns (a job's ``output`` list renames them; later
  jobs read them through ``input``, e.g. ``extra_configs.model_path: -1.model_path``);
- ``Extra``: a pydantic model of the hook's ``extra_configs`` (``extra="forbid"``; every field
  optional, since ``input`` may fill it at run time), or None when the hook takes none;
- ``needs_recipe``: whether the job's ``dj_configs`` recipe is required;
- ``kind``: ``"data"`` or ``"model"``: in ``execution_job_configs`` a model hook belongs to the
  ``train`` step (its own Dagster asset), a data hook to ``process``.

``run()`` returns ``{output name: value}`` and reports scores with ``self.watch(dict)``: they
become the trial's metrics ``<meta_name>.<key>``, usable as the HPO objective.  Example::

    @register_hook("CountRows")
    class CountRows(Hook):
        outputs = ("rows",)
        Extra = CountSettings          # class CountSettings(BaseModel): dataset_path: str | None = None

        def run(self):
            n = len(read_rows(self.path(self.extra.dataset_path), ["text"]))
            self.watch({"rows": n})
            return {"rows": n}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dj_ops.analyzer import Analyzer
from dj_ops.engine import LocalExecutor
from dj_ops.core.recipe import Recipe

from .config import (JobConfig, SandboxConfig, SandboxConfigError, absolute, pydantic_error,
                     read_mapping, recipe_for_job, suggest)
from .context import TrialContext, nested_set
from .models import EvalSettings, TrainSettings

HOOKS: dict[str, type["Hook"]] = {}

#: Data-Juicer's hooks (HOOK_MAPPING) this project does not implement
DATA_JUICER_HOOKS = ("ProbeViaModelInferHook", "GeneralProbeHook", "RefineRecipeViaModelFeedbackHook",
                     "DataPoolManipulationHook", "GeneralDataExecutorHook", "InferModelHook")


def register_hook(name: str):
    """Class decorator: ``@register_hook("MyHook")`` (``MyHookHook`` is accepted too)."""

    def deco(cls):
        if name in HOOKS and HOOKS[name] is not cls:
            raise ValueError(f"hook {name!r} registered twice ({HOOKS[name]} and {cls})")
        cls.name = name
        HOOKS[name] = cls
        return cls

    return deco


def resolve_hook(name: str, where: str) -> type["Hook"]:
    base = name[: -len("Hook")] if name.endswith("Hook") and name[: -len("Hook")] in HOOKS else name
    if base in HOOKS:
        return HOOKS[base]
    if name in DATA_JUICER_HOOKS or f"{name}Hook" in DATA_JUICER_HOOKS:
        raise SandboxConfigError(f"{where}: hook {name!r} is a Data-Juicer hook this project does not implement. "
                                 f"Available hooks: {', '.join(sorted(HOOKS))}")
    raise SandboxConfigError(f"{where}: unknown hook {name!r}.{suggest(base, HOOKS)} "
                             f"Available hooks: {', '.join(sorted(HOOKS))}")


def hook_class(name: str) -> type["Hook"]:
    return HOOKS[name]


def output_names(job: JobConfig) -> list[str]:
    """A job's result names: its ``output`` list renames the hook's results in order."""
    names = list(hook_class(job.hook).outputs)
    if job.output:
        if len(job.output) > len(names):
            raise SandboxConfigError(f"{job.where}.output: {job.hook} has {len(names)} result(s) "
                                     f"({', '.join(names)}), {len(job.output)} names given")
        names[: len(job.output)] = job.output
    return names


def validate_settings(model: type[BaseModel], data: dict, where: str) -> BaseModel:
    """``model.model_validate(data)`` with unknown keys named and the closest valid key suggested."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        if err["type"] == "extra_forbidden":
            loc = [str(p) for p in err["loc"]]
            owner: Any = model
            for part in loc[:-1]:
                owner = owner.model_fields[part].annotation
            fields = list(getattr(owner, "model_fields", {}))
            raise SandboxConfigError(
                f"{where}: unknown key {'.'.join(loc)!r}.{suggest(loc[-1], fields)} "
                f"Valid keys: {', '.join(fields)}") from None
        raise pydantic_error(exc, where) from None


class Hook:
    """Base of every hook; one instance runs one job of one trial."""

    name: ClassVar[str] = ""
    kind: ClassVar[Literal["data", "model"]] = "data"
    outputs: ClassVar[tuple[str, ...]] = ()
    Extra: ClassVar[type[BaseModel] | None] = None
    needs_recipe: ClassVar[bool] = False

    # -- static checks (config load) --------------------------------------------------------------

    @classmethod
    def step_in(cls, list_name: str) -> str:
        if list_name == "execution_job_configs":
            return "train" if cls.kind == "model" else "process"
        return {"probe_job_configs": "probe", "refine_recipe_job_configs": "refine",
                "evaluation_job_configs": "evaluate"}[list_name]

    @classmethod
    def check_job(cls, job: JobConfig, base_dir: Path) -> None:
        """Everything checkable without running earlier jobs: the recipe and ``extra_configs``."""
        dj_from_input = "dj_configs" in job.input
        if cls.needs_recipe and job.dj_configs is None and not dj_from_input:
            raise SandboxConfigError(f"{job.where}: hook {cls.name} needs a recipe: set 'dj_configs' (a path or a "
                                     f"mapping) or fill it from an earlier job with input: {{dj_configs: ...}}")
        if not cls.needs_recipe and (job.dj_configs is not None or any(k.startswith("dj_configs") for k in job.input)):
            raise SandboxConfigError(f"{job.where}: hook {cls.name} takes no 'dj_configs'")
        if cls.needs_recipe and job.dj_configs is not None and not dj_from_input:
            data = load_group(job.dj_configs, base_dir, f"{job.where}.dj_configs")
            apply_local(data, job.local, "dj_configs")
            recipe_for_job(data, base_dir, f"{job.where}.dj_configs")
        if cls.Extra is None:
            if job.extra_configs is not None or any(k.startswith("extra_configs") for k in [*job.input, *job.local]):
                raise SandboxConfigError(f"{job.where}: hook {cls.name} takes no 'extra_configs'")
        elif "extra_configs" not in job.input:
            data = load_group(job.extra_configs, base_dir, f"{job.where}.extra_configs")
            apply_local(data, job.local, "extra_configs")
            validate_settings(cls.Extra, data, f"{job.where}.extra_configs")

    @classmethod
    def check_configs(cls, job: JobConfig, cfg: SandboxConfig) -> None:
        """Checks across jobs (e.g. a probe result this job reads); called in job order."""

    # -- running ----------------------------------------------------------------------------------

    def __init__(self, job: JobConfig, dj_cfg: dict | None, extra: dict | None, ctx: TrialContext, log=print):
        self.job = job
        self.ctx = ctx
        self.log = log
        self.base_dir = Path(ctx.sandbox.base_dir)
        self.dj_cfg = dj_cfg
        self.extra = validate_settings(self.Extra, extra or {}, f"{job.where}.extra_configs") if self.Extra else None

    @property
    def job_dir(self) -> Path:
        return self.ctx.job_dir(self.job.meta_name)

    def path(self, value: str | None) -> str | None:
        return None if value is None else absolute(value, self.base_dir)

    def recipe(self, own_outputs: bool) -> Recipe:
        """The job's recipe; with ``own_outputs`` its export path and work dir move into the job's
        folder of this trial (the file name is kept), so trials never overwrite each other."""
        if self.dj_cfg is None:
            raise SandboxConfigError(f"{self.job.where}: no recipe (dj_configs) after resolving inputs")
        data = dict(self.dj_cfg)
        if own_outputs:
            name = Path(str(data.get("export_path") or f"{self.job.meta_name}.jsonl")).name
            data.update(export_path=str(self.job_dir / name), work_dir=str(self.job_dir))
        return recipe_for_job(data, self.base_dir, f"{self.job.where}.dj_configs")

    def watch(self, result: Any) -> None:
        self.ctx.watch(self.job.meta_name, result, owner=self.job.where)

    def run(self) -> dict[str, Any]:
        raise NotImplementedError


def load_group(value: str | dict | None, base_dir: Path, where: str) -> dict:
    """A ``dj_configs`` / ``extra_configs`` value as a fresh mapping (a path is read)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return read_mapping(value, base_dir, where)
    return yaml.safe_load(yaml.safe_dump(value))  # a deep copy of plain data


def apply_local(data: dict, local: dict[str, Any], group: str) -> None:
    for key, value in local.items():
        parts = key.split(".")
        if parts[0] == group and len(parts) > 1:
            nested_set(data, parts[1:], value)


# ---------------------------------------------------------------------------------------------
# built-in hooks


class ProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: draw a histogram per stat into the job folder
    plots: bool = True


@register_hook("ProbeViaAnalyzer")
class ProbeViaAnalyzer(Hook):
    """Runs the analyzer on the recipe's dataset: every filter's stats, nothing dropped.  Watches
    the overall table (count, mean, std, min, quartiles, max per numeric stat)."""

    outputs = ("stats_path", "overall_path")
    Extra = ProbeSettings
    needs_recipe = True

    def run(self) -> dict[str, Any]:
        recipe = self.recipe(own_outputs=True)
        result = Analyzer(recipe, progress=False).run(plots=self.extra.plots)
        # string rows (unique/top/freq) do not align with numbers: dropped, as upstream
        overall = result.overall.drop(index=[r for r in ("unique", "top", "freq") if r in result.overall.index])
        overall = overall.loc[:, [c for c in overall.columns if overall[c].notna().any()]]
        self.watch(overall)
        self.log(f"{self.job.meta_name}: analysed {result.rows} rows, {len(overall.columns)} numeric stats")
        return {"stats_path": result.stats_file, "overall_path": result.overall_csv}


class KSigmaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: float = Field(default=3.0, gt=0)
    #: where the refined recipe goes (.yaml, .yml or .json); relative: inside the trial's job folder
    path_k_sigma_recipe: str | None = None
    #: the probe whose stats are used (default: this job's meta_name, as upstream)
    probe_meta_name: str | None = None


@register_hook("RefineRecipeViaKSigma")
class RefineRecipeViaKSigma(Hook):
    """Sets every filter's bounds to ``mean ± k·std`` of the probed stats (see
    :mod:`sandbox_jobs.ksigma`) and writes the refined recipe, runnable as it is."""

    outputs = ("refined_recipe_path", "bound_changes")
    Extra = KSigmaSettings
    needs_recipe = True

    @classmethod
    def check_configs(cls, job: JobConfig, cfg: SandboxConfig) -> None:
        probe = (job.extra_configs or {}).get("probe_meta_name") if isinstance(job.extra_configs, dict) else None
        probe = probe or job.meta_name
        probes = [j.meta_name for j in cfg.jobs if j.hook == ProbeViaAnalyzer.name]
        if probe not in probes:
            raise SandboxConfigError(
                f"{job.where}: k-sigma reads the stats of the probe named {probe!r} (its meta_name, or "
                f"extra_configs.probe_meta_name), but no ProbeViaAnalyzer job has that meta_name."
                f"{suggest(probe, probes)} Probes: {', '.join(probes) or 'none'}")

    def run(self) -> dict[str, Any]:
        from .ksigma import refine_recipe_k_sigma

        probe = self.extra.probe_meta_name or self.job.meta_name
        overall = self.ctx.query(probe)
        if overall is None:
            raise RuntimeError(f"{self.job.where}: no probe result {probe!r} in trial {self.ctx.key!r}: "
                               "the probe step must run first")
        recipe = self.recipe(own_outputs=False)
        pinned = {k for k in self.ctx.params if k.split(".", 1)[0] in {s.name for s in recipe.process}}
        refined, changes = refine_recipe_k_sigma(recipe, overall, self.extra.k, pinned)
        target = Path(self.extra.path_k_sigma_recipe or "k_sigma_recipe.yaml")
        target = target if target.is_absolute() else self.job_dir / target
        write_recipe(refined, target)
        for c in changes:
            note = " (pinned by the trial)" if c.pinned else ""
            self.log(f"{self.job.where}: {c.op}.{c.param} {c.old} -> {c.new} ({c.stat} mean {c.side} "
                     f"{self.extra.k}·std){note}")
        return {"refined_recipe_path": str(target), "bound_changes": [c.to_dict() for c in changes]}


def write_recipe(recipe: Recipe, target: Path) -> None:
    import json

    data = recipe.to_yaml_dict()
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower()
    if suffix in (".yaml", ".yml"):
        target.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    elif suffix == ".json":
        target.write_text(json.dumps(data, indent=1))
    else:
        raise SandboxConfigError(f"path_k_sigma_recipe: unrecognized file type {target.name!r}: use .yaml, .yml or .json")


@register_hook("ProcessData")
class ProcessData(Hook):
    """Runs the recipe with the local executor; the output (and ``recipe.yaml``, the recipe as
    run) go into the trial's job folder."""

    outputs = ("processed_dataset_path", "rows_out", "rows_in")
    needs_recipe = True

    def run(self) -> dict[str, Any]:
        recipe = self.recipe(own_outputs=True)
        write_recipe(recipe, self.job_dir / "recipe.yaml")  # the exact recipe behind the data
        report = LocalExecutor(recipe, progress=False, log=self.log).run()
        path = " ".join(report.outputs) if report.outputs else recipe.export_path
        rows_in = report.rows_valid
        removed: dict[str, int] = {}
        for op in report.ops:
            removed[op["name"]] = removed.get(op["name"], 0) + int(op["rows_in"] - op["rows_out"])
        self.watch({"rows_in": rows_in, "rows_out": report.rows_out, "bad_rows": report.bad_rows,
                    "keep_ratio": report.rows_out / rows_in if rows_in else 0.0, "seconds": round(report.seconds, 3),
                    "removed_by": removed})
        self.log(f"{self.job.meta_name}: kept {report.rows_out} of {rows_in} rows")
        return {"processed_dataset_path": path, "rows_out": report.rows_out, "rows_in": rows_in}


@register_hook("TrainModel")
class TrainModel(Hook):
    """Trains a small model on a dataset: a transformer (language model or classifier) or a linear
    probe on CLIP image embeddings; see :mod:`sandbox_jobs.models`."""

    kind = "model"
    outputs = ("model_path", "train_rows")
    Extra = TrainSettings

    def run(self) -> dict[str, Any]:
        from .models import train_model

        s = self.extra.model_copy(update={
            "train_dataset": " ".join(self.path(p) for p in (self.extra.train_dataset or "").split()) or None,
            "work_dir": self.path(self.extra.work_dir),
            "tokenizer": self.extra.tokenizer.model_copy(
                update={"train_dataset": self.path(self.extra.tokenizer.train_dataset)}),
        })
        out_dir = Path(s.work_dir) if s.work_dir else self.job_dir / "model"
        work = self.ctx.sandbox.work_path
        result = train_model(s, out_dir, work / "tokenizers", self.log, embedding_cache=work / "embeddings")
        self.watch({k: v for k, v in result.items() if k != "model_path"})
        return result


class DataEvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["data_metrics"] = "data_metrics"
    #: the data to measure (usually the processed dataset, set by ``input``)
    dataset_path: str | None = None
    text_key: str = "text"
    #: distinct-n for n = 1 .. max_n
    max_n: int = Field(default=2, ge=1, le=4)
    #: two probes (meta names) whose stats are compared: {before: ..., after: ...}
    stat_shift: dict[Literal["before", "after"], str] | None = None


@register_hook("EvaluateData")
class EvaluateData(Hook):
    """Data metrics: rows, vocabulary, distinct-n, and the shift of each stat between two probes."""

    outputs = ("metrics",)
    Extra = DataEvalSettings

    def run(self) -> dict[str, Any]:
        from .data import read_rows
        from .metrics import diversity, stat_shift

        s = self.extra
        if not s.dataset_path:
            raise SandboxConfigError(f"{self.job.where}: extra_configs.dataset_path is not set (directly or by input)")
        texts = [r[s.text_key] for r in read_rows(self.path(s.dataset_path), [s.text_key], s.text_key)]
        result: dict[str, Any] = diversity(texts, s.max_n)
        if s.stat_shift:
            before, after = self.ctx.query(s.stat_shift["before"]), self.ctx.query(s.stat_shift["after"])
            if before is None or after is None:
                raise RuntimeError(f"{self.job.where}: stat_shift needs the probes {s.stat_shift['before']!r} and "
                                   f"{s.stat_shift['after']!r} to have run in this trial")
            result["stat_shift"] = stat_shift(before, after)
        self.watch(result)
        return {"metrics": result}


@register_hook("EvaluateModel")
class EvaluateModel(Hook):
    """Held-out perplexity / bits per byte (language model) or accuracy (classifier, CLIP probe)."""

    kind = "model"
    outputs = ("metrics",)
    Extra = EvalSettings

    def run(self) -> dict[str, Any]:
        from .models import evaluate_model

        s = self.extra.model_copy(update={"model_path": self.path(self.extra.model_path),
                                          "eval_dataset": self.path(self.extra.eval_dataset)})
        result = evaluate_model(s, self.log, embedding_cache=self.ctx.sandbox.work_path / "embeddings")
        self.watch(result)
        return {"metrics": result}
