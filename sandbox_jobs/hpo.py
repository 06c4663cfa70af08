"""HPO over recipe and job parameters with optuna (replaces Data-Juicer's wandb sweep).

The HPO config keeps Data-Juicer's sweep shape (``tools/hpo/configs/*.yaml``)::

    sweep_name: imdb_hpo          # the optuna study name (default: the sandbox's name)
    sweep_max_count: 5            # trials in the study (a resumed study runs only the missing ones)
    method: bayes                 # bayes (TPE) | random | grid
    metric: {name: eval_model.perplexity, goal: minimize}
    parameters:
      text_length_filter.min_len: {min: 50, max: 400}               # an OP parameter, every recipe
      character_repetition_filter.rep_len: {values: [5, 10, 15]}
      analysis_ori_data.extra_configs.k: {distribution: uniform, min: 1.5, max: 4.0}   # a job setting

A parameter is ``<op>.<param>`` (set in every job recipe that has the OP; k-sigma refinement
leaves it as the trial set it) or ``<meta_name>.<dj_configs|extra_configs>.<key...>`` (set in
the configs of the jobs with that meta name).  Distributions (wandb's names): ``constant``
(``value``), ``categorical`` (``values``), ``int_uniform``, ``uniform``, ``log_uniform_values``,
``q_uniform``, ``q_log_uniform_values`` (``min``, ``max``, ``q``); without ``distribution`` it
is inferred from the keys and types, as wandb does.  The metric is a trial score
``<meta_name>.<key>`` (what a hook watched).  The study is stored in
``<work_dir>/hpo/<sweep_name>.db`` (sqlite; ``storage`` overrides) and always resumed
(``load_if_exists``): rerunning continues the study; a new ``sweep_name`` starts another.
This project's own keys: ``seed`` (the sampler's), ``storage``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dj_ops.core.recipe import op_parameters
from dj_ops.core.registry import load_all_ops

from .config import SandboxConfig, SandboxConfigError, check_keys, pydantic_error, read_mapping, suggest
from .hooks import hook_class, load_group

optuna.logging.set_verbosity(optuna.logging.WARNING)

DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "log_uniform_values", "q_uniform",
                 "q_log_uniform_values")
#: wandb sweep keys with no optuna counterpart here
UNSUPPORTED = {
    "early_terminate": "early termination (hyperband) is not supported: a trial reports one score at its end",
    "program": "trials run the sandbox's jobs, not a program",
    "command": "trials run the sandbox's jobs, not a command",
}


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    distribution: Literal[DISTRIBUTIONS] | None = None  # type: ignore[valid-type]
    value: Any = None
    values: list[Any] | None = None
    # int first: an integer range samples integers, as wandb infers
    min: int | float | None = None
    max: int | float | None = None
    q: int | float | None = None

    @property
    def kind(self) -> str:
        if self.distribution:
            return self.distribution
        if self.values is not None:
            return "categorical"
        if self.value is not None:
            return "constant"
        if isinstance(self.min, int) and isinstance(self.max, int):
            return "int_uniform"
        return "uniform"

    @model_validator(mode="after")
    def _complete(self) -> "ParamSpec":
        kind = self.kind
        if kind == "constant" and self.value is None:
            raise ValueError("a constant needs 'value'")
        if kind == "categorical":
            if not self.values:
                raise ValueError("categorical needs a non-empty 'values' list")
            bad = [v for v in self.values if v is not None and not isinstance(v, (bool, int, float, str))]
            if bad:
                raise ValueError(f"values must be numbers, strings, booleans or null, got {bad[0]!r}")
        if kind not in ("constant", "categorical"):
            if self.min is None or self.max is None:
                raise ValueError(f"{kind} needs 'min' and 'max'")
            if self.min > self.max:
                raise ValueError(f"min {self.min} > max {self.max}")
            if "log" in kind and self.min <= 0:
                raise ValueError(f"{kind} needs min > 0")
            if kind == "int_uniform" and not (_integral(self.min) and _integral(self.max)):
                raise ValueError("int_uniform needs integer min and max")
        return self


def _integral(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()


class Metric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    goal: Literal["maximize", "minimize"] = "maximize"


class HpoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sweep_name: str | None = None
    sweep_max_count: int = Field(default=10, ge=1)
    method: Literal["bayes", "random", "grid"] = "bayes"
    metric: Metric
    parameters: dict[str, ParamSpec] = Field(min_length=1)
    seed: int = 42
    storage: str | None = None

    def study_name(self, sandbox: SandboxConfig) -> str:
        return self.sweep_name or sandbox.name

    def storage_url(self, sandbox: SandboxConfig) -> str:
        if self.storage:
            return self.storage
        path = sandbox.work_path / "hpo" / f"{self.study_name(sandbox)}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"


def load_hpo_config(sandbox: SandboxConfig) -> HpoConfig | None:
    """The validated HPO config of a sandbox (its ``hpo_config``), or None."""
    value = sandbox.hpo_config
    if value is None:
        return None
    where = value if isinstance(value, str) else f"{sandbox.source}: hpo_config"
    data = read_mapping(value, Path(sandbox.base_dir), "hpo_config") if isinstance(value, str) else dict(value)
    check_keys(data, HpoConfig.model_fields, where, UNSUPPORTED)
    for name, spec in (data.get("parameters") or {}).items():
        if isinstance(spec, dict):
            check_keys(spec, ParamSpec.model_fields, f"{where}: parameters.{name}")
    try:
        cfg = HpoConfig.model_validate(data)
    except ValidationError as exc:
        raise pydantic_error(exc, where) from None
    _check_targets(cfg, sandbox, where)
    if cfg.method == "grid":
        loose = [n for n, s in cfg.parameters.items() if s.kind not in ("categorical", "constant")]
        if loose:
            raise SandboxConfigError(f"{where}: method 'grid' needs 'values' (or 'value') for every parameter; "
                                     f"{', '.join(loose)} have ranges")
    return cfg


def _check_targets(cfg: HpoConfig, sandbox: SandboxConfig, where: str) -> None:
    metas = sandbox.meta_names()
    metric_meta = cfg.metric.name.split(".", 1)[0]
    if metric_meta not in metas or "." not in cfg.metric.name:
        raise SandboxConfigError(f"{where}: metric.name {cfg.metric.name!r} must be '<meta_name>.<score>' of a job."
                                 f"{suggest(metric_meta, metas)} Jobs: {', '.join(metas)}")
    ops = load_all_ops()
    recipe_ops: set[str] = set()
    for job in sandbox.jobs:
        if isinstance(job.dj_configs, (str, dict)):
            data = load_group(job.dj_configs, Path(sandbox.base_dir), f"{job.where}.dj_configs")
            recipe_ops.update(next(iter(e)) if isinstance(e, dict) else str(e) for e in data.get("process") or [])
    for name in cfg.parameters:
        parts = name.split(".")
        here = f"{where}: parameters.{name}"
        if parts[0] in metas:
            if parts[0] in ops:
                raise SandboxConfigError(f"{here}: {parts[0]!r} is both an OP and a job's meta_name; rename the job")
            if len(parts) < 3 or parts[1] not in ("dj_configs", "extra_configs"):
                raise SandboxConfigError(f"{here}: a job setting is '<meta_name>.<dj_configs|extra_configs>.<key>'")
            if parts[1] == "extra_configs":
                fields: set[str] = set()
                for job in sandbox.jobs:
                    extra = hook_class(job.hook).Extra
                    if job.meta_name == parts[0] and extra is not None:
                        fields.update(extra.model_fields)
                if parts[2] not in fields:
                    raise SandboxConfigError(f"{here}: no job named {parts[0]!r} has the setting {parts[2]!r}."
                                             f"{suggest(parts[2], fields)} Settings: {', '.join(sorted(fields)) or 'none'}")
            continue
        if len(parts) != 2:
            raise SandboxConfigError(f"{here}: a parameter is '<op>.<param>' or '<meta_name>.<dj_configs|"
                                     f"extra_configs>.<key>'.{suggest(parts[0], [*recipe_ops, *metas])}")
        op, param = parts
        if op not in recipe_ops:
            raise SandboxConfigError(f"{here}: OP {op!r} is in no job recipe.{suggest(op, recipe_ops)} "
                                     f"OPs: {', '.join(sorted(recipe_ops)) or 'none'}; jobs: {', '.join(metas)}")
        accepted = op_parameters(ops[op])
        if param not in accepted:
            raise SandboxConfigError(f"{here}: {op} has no parameter {param!r}.{suggest(param, accepted)}")


# ---------------------------------------------------------------------------------------------
# the study


def _sampler(cfg: HpoConfig, seed: int) -> optuna.samplers.BaseSampler:
    if cfg.method == "grid":
        space = {n: (s.values if s.kind == "categorical" else [s.value]) for n, s in cfg.parameters.items()}
        return optuna.samplers.GridSampler(space, seed=seed)
    if cfg.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def open_study(cfg: HpoConfig, sandbox: SandboxConfig) -> optuna.Study:
    return optuna.create_study(study_name=cfg.study_name(sandbox), storage=cfg.storage_url(sandbox),
                               sampler=_sampler(cfg, cfg.seed), direction=cfg.metric.goal, load_if_exists=True)


def _suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    kind = spec.kind
    if kind == "constant":
        return spec.value
    if kind == "categorical":
        return trial.suggest_categorical(name, spec.values)
    lo, hi, q = spec.min, spec.max, spec.q
    if kind == "int_uniform":
        return trial.suggest_int(name, int(lo), int(hi))
    if kind == "uniform":
        return trial.suggest_float(name, lo, hi)
    if kind == "log_uniform_values":
        return trial.suggest_float(name, lo, hi, log=True)
    q = q or 1.0
    ints = _integral(lo) and _integral(hi) and _integral(q)
    if kind == "q_uniform":
        return trial.suggest_int(name, int(lo), int(hi), step=int(q)) if ints else trial.suggest_float(name, lo, hi, step=q)
    # q_log_uniform_values
    if ints and q == 1:
        return trial.suggest_int(name, int(lo), int(hi), log=True)
    x = trial.suggest_float(name, lo, hi, log=True)
    return min(max(round(x / q) * q, lo), hi)


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED)
    return [t for t in study.trials if t.state in done]


def running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def ask(study: optuna.Study, cfg: HpoConfig) -> tuple[int, dict[str, Any]]:
    """A new trial: its number and the parameter values to apply.

    The sampler is seeded with ``seed + <trials so far>``: trial n gets the same proposal whether
    the study lives in one process (command line) or is reopened for every trial (Dagster sensors),
    where a sampler seeded once per process would propose the same values every time."""
    study.sampler = _sampler(cfg, cfg.seed + len(study.get_trials(deepcopy=False)))
    trial = study.ask()
    params = {name: _suggest(trial, name, spec) for name, spec in cfg.parameters.items()}
    trial.set_user_attr("applied_params", params)
    return trial.number, params


def tell(study: optuna.Study, cfg: HpoConfig, number: int, metrics: dict[str, Any] | None,
         error: str | None = None) -> float | None:
    """Report a trial's objective: FAIL when it errored or its metric is missing or not finite.
    A trial told already (a step run again) is left as it is.  The scores stay in the trial's folder."""
    (trial,) = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if trial.state != optuna.trial.TrialState.RUNNING:
        return None
    value = (metrics or {}).get(cfg.metric.name)
    if error is None and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        study.tell(number, float(value))
        return float(value)
    study.tell(number, state=optuna.trial.TrialState.FAIL)
    return None
