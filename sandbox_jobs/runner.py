"""Running a sandbox: trials of probe -> refine -> process -> train -> evaluate.

A *trial* is one pass of every job with one set of parameters.  Which trials run:

- with ``hpo_config``: an optuna study proposes each trial's parameters (``ask``) and receives
  its objective (``tell``) until ``sweep_max_count`` trials have finished (see :mod:`sandbox_jobs.hpo`);
- otherwise up to ``max_iter_num`` iterations (Data-Juicer's): iteration ``i+1`` takes the
  ``iter_updater`` values from iteration ``i``'s results, and the loop stops early once
  ``iter_targets`` hold (``all`` or ``any`` of them, ``iter_targets_mode``).

The same :class:`SandboxRunner` serves the command line (whole trials in one process) and the
Dagster assets (one step per run, see :mod:`sandbox_jobs.definitions`): all state is in the
trial folders, the HPO study in sqlite.
"""

from __future__ import annotations

import json
import math
import operator
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (ITER_TARGET, PIPELINE, STEPS, JobConfig, SandboxConfig, SandboxConfigError, config_target,
                     parse_reference)
from .context import (TrialContext, TrialRecord, list_trials, load_trial_record, nested_set, save_trial_record,
                      to_jsonable, trial_dir, trial_metrics)
from .data import prepare_data
from .hooks import apply_local, hook_class, load_group, output_names


@dataclass
class JobResult:
    job: JobConfig
    outputs: dict[str, Any]
    seconds: float


@dataclass
class StepResult:
    trial: str
    step: str
    jobs: list[JobResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


_COMPARE = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt}


class SandboxRunner:
    def __init__(self, sandbox: SandboxConfig, log=print):
        from .hpo import load_hpo_config

        self.sandbox = sandbox
        self.log = log
        self.hpo = load_hpo_config(sandbox)
        self._study = None

    # -- data and trials --------------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        return prepare_data(self.sandbox, self.log)

    @property
    def study(self):
        if self._study is None and self.hpo is not None:
            from .hpo import open_study

            self._study = open_study(self.hpo, self.sandbox)
        return self._study

    def create_trial(self, key: str | None = None, params: dict[str, Any] | None = None) -> TrialRecord:
        """A new trial record: HPO parameters from the study unless ``params`` are given."""
        hpo_trial = None
        if params is None and self.hpo is not None:
            from .hpo import ask

            hpo_trial, params = ask(self.study, self.hpo)
            key = key or f"trial_{hpo_trial:04d}"
        iteration = None
        if key is None:
            iteration = len([t for t in list_trials(self.sandbox) if t.iteration is not None])
            key = f"trial_{iteration:04d}"
        record = TrialRecord(key=key, params=dict(params or {}), hpo_trial=hpo_trial, iteration=iteration)
        save_trial_record(self.sandbox, record)
        self.log(f"trial {key}: parameters {record.params or '{}'}")
        return record

    def ensure_trial(self, key: str, params: dict[str, Any] | None = None) -> TrialRecord:
        return load_trial_record(self.sandbox, key) or self.create_trial(key, params)

    def step_done(self, key: str, step: str) -> bool:
        return (trial_dir(self.sandbox, key) / "steps" / f"{step}.json").is_file()

    def trial_complete(self, key: str) -> bool:
        return all(self.step_done(key, s) for s in STEPS if self.sandbox.jobs_for_step(s))

    def trial_in_progress(self) -> str | None:
        """The key of a trial that started and has not finished (None when there is none)."""
        trials = list_trials(self.sandbox)
        if self.hpo is not None:
            from .hpo import running

            numbers = {t.number for t in running(self.study)}
            busy = [t.key for t in trials if t.hpo_trial in numbers]
            return busy[0] if busy else None
        iterations = [t for t in trials if t.iteration is not None]
        return iterations[-1].key if iterations and not self.trial_complete(iterations[-1].key) else None

    def next_trial(self) -> TrialRecord | None:
        """The next trial to run, created; None when the study or the iterations are done."""
        if self.hpo is not None:
            from .hpo import finished

            if len(finished(self.study)) >= self.hpo.sweep_max_count:
                return None
            return self.create_trial()
        done = [t for t in list_trials(self.sandbox) if t.iteration is not None]
        if done and not self.trial_complete(done[-1].key):
            return done[-1]  # an unfinished iteration is finished first
        if len(done) >= self.sandbox.max_iter_num:
            return None
        if done and self.targets_met(done[-1].key):
            self.log(f"iteration targets met by {done[-1].key}: stopping")
            return None
        params = self.updated_params(done[-1].key) if done else {}
        return self.create_trial(params=params)

    # -- iterations -------------------------------------------------------------------------------

    def _lookup(self, ctx: TrialContext, dotted: str) -> Any:
        parts = dotted.split(".")
        if parts[0] == PIPELINE and len(parts) >= 3:
            try:
                return ctx.resolve(PIPELINE, parts[1], parts[2:], dotted)
            except KeyError:
                parts = parts[1:]
        return ctx.metrics().get(".".join(parts))

    def targets_met(self, key: str) -> bool:
        if not self.sandbox.iter_targets:
            return False
        ctx = TrialContext(self.sandbox, key, self.log)
        results = []
        for target in self.sandbox.iter_targets:
            name, op, number = ITER_TARGET.match(target).groups()
            value = self._lookup(ctx, name)
            try:
                results.append(value is not None and _COMPARE[op](float(value), float(number)))
            except (TypeError, ValueError):
                results.append(False)
        return all(results) if self.sandbox.iter_targets_mode == "all" else any(results)

    def updated_params(self, key: str) -> dict[str, Any]:
        """``iter_updater``: ``{<pipeline>.<meta>.<result>: <pipeline>.<meta>.<dj_configs|extra_configs>.<key>}``."""
        previous = load_trial_record(self.sandbox, key)
        params = dict(previous.params) if previous else {}
        ctx = TrialContext(self.sandbox, key, self.log)
        for source, target in self.sandbox.iter_updater.items():
            value = self._lookup(ctx, source)
            parts = target.split(".")
            if parts[0] == PIPELINE:
                parts = parts[1:]
            params[".".join(parts)] = value
        return params

    # -- running jobs -----------------------------------------------------------------------------

    def _job_configs(self, job: JobConfig, ctx: TrialContext) -> tuple[dict | None, dict | None]:
        base = Path(self.sandbox.base_dir)
        dj = load_group(job.dj_configs, base, f"{job.where}.dj_configs") if job.dj_configs is not None else None
        extra = load_group(job.extra_configs, base, f"{job.where}.extra_configs") if job.extra_configs is not None else None
        # inputs first, then local constants (upstream applies local first, which an input that
        # replaces a whole config group would silently undo)
        for target, ref in job.input.items():
            where = f"{job.where}.input.{target}"
            value = ctx.resolve(*parse_reference(ref, where), where)
            group, path = config_target(target, where)
            current = dj if group == "dj_configs" else extra
            if not path:
                current = load_group(value, base, where) if isinstance(value, (str, dict)) else value
            else:
                current = current if current is not None else {}
                nested_set(current, path, value)
            if group == "dj_configs":
                dj = current
            else:
                extra = current
        if dj is not None:
            apply_local(dj, job.local, "dj_configs")
        if extra is not None or any(k.startswith("extra_configs.") for k in job.local):
            extra = extra if extra is not None else {}
            apply_local(extra, job.local, "extra_configs")
        for name, value in ctx.params.items():
            dj, extra = _apply_param(job, name, value, dj, extra)
        return dj, extra

    def run_job(self, job: JobConfig, ctx: TrialContext) -> JobResult:
        t0 = time.perf_counter()
        cls = hook_class(job.hook)
        dj, extra = self._job_configs(job, ctx)
        self.log(f"[{ctx.key}] {job.where} {job.hook} ({job.meta_name})")
        result = cls(job, dj, extra, ctx, self.log).run()
        outputs = {name: result.get(orig) for orig, name in zip(cls.outputs, output_names(job))}
        ctx.record_job(job.where, job.meta_name, outputs)
        ctx.save()
        return JobResult(job, outputs, time.perf_counter() - t0)

    def run_step(self, key: str, step: str) -> StepResult:
        """Run the jobs of one lineage step of a trial (replacing an earlier run of that step)."""
        if step not in STEPS:
            raise ValueError(f"unknown step {step!r}; steps: {', '.join(STEPS)}")
        if load_trial_record(self.sandbox, key) is None:
            raise KeyError(f"trial {key!r} does not exist (create it first)")
        t0 = time.perf_counter()
        if step == next(s for s in STEPS if self.sandbox.jobs_for_step(s)):
            self.prepare()
        ctx = TrialContext(self.sandbox, key, self.log)
        jobs = self.sandbox.jobs_for_step(step)
        ctx.forget_jobs({j.where for j in jobs})
        res = StepResult(key, step)
        for job in jobs:
            res.jobs.append(self.run_job(job, ctx))
        ctx.save()
        res.metrics = ctx.metrics()
        res.seconds = time.perf_counter() - t0
        marker = ctx.dir / "steps" / f"{step}.json"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(to_jsonable({
            "seconds": res.seconds, "jobs": [{"where": r.job.where, "meta_name": r.job.meta_name, "hook": r.job.hook,
                                              "seconds": r.seconds, "outputs": r.outputs} for r in res.jobs]}), indent=1))
        return res

    def finish_trial(self, key: str, error: str | None = None) -> float | None:
        """Tell the HPO study the trial's objective (no-op without HPO); returns it."""
        record = load_trial_record(self.sandbox, key)
        if self.hpo is None or record is None or record.hpo_trial is None:
            return None
        from .hpo import tell

        return tell(self.study, self.hpo, record.hpo_trial, trial_metrics(self.sandbox, key), error)

    def run_trial(self, record: TrialRecord) -> dict[str, Any]:
        for step in STEPS:
            if not self.sandbox.jobs_for_step(step):
                continue
            if self.sandbox.resume and self.step_done(record.key, step):
                self.log(f"[{record.key}] step {step}: done before, skipped (resume)")
                continue
            self.run_step(record.key, step)
        self.finish_trial(record.key)
        return trial_metrics(self.sandbox, record.key)

    def run(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Prepare the data and run every trial; returns the report (also written to disk)."""
        self.prepare()
        if params:
            if self.hpo is not None:
                raise SandboxConfigError("explicit trial parameters and hpo_config exclude each other")
            self.run_trial(self.create_trial(params=params))
        else:
            while (record := self.next_trial()) is not None:
                try:
                    self.run_trial(record)
                except Exception as exc:  # noqa: BLE001 - an HPO trial may fail (e.g. no rows left)
                    if self.hpo is None:
                        raise
                    self.log(f"trial {record.key} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                    self.finish_trial(record.key, error=f"{type(exc).__name__}: {exc}")
        return self.write_report()

    # -- reporting --------------------------------------------------------------------------------

    def trial_rows(self) -> list[dict[str, Any]]:
        """Every trial: key, parameters, state, objective (HPO) and all scores."""
        states: dict[int, tuple[str, float | None]] = {}
        if self.hpo is not None:
            for t in self.study.get_trials(deepcopy=False):
                states[t.number] = (t.state.name, t.value)
        rows = []
        for record in list_trials(self.sandbox):
            metrics = trial_metrics(self.sandbox, record.key)
            state, value = states.get(record.hpo_trial, (None, None)) if record.hpo_trial is not None else (None, None)
            if state is None:
                state = "COMPLETE" if self.trial_complete(record.key) else "INCOMPLETE"
            if self.hpo is not None and value is None:
                v = metrics.get(self.hpo.metric.name)
                value = v if state == "COMPLETE" and isinstance(v, (int, float)) else None
            rows.append({"trial": record.key, "params": record.params, "hpo_trial": record.hpo_trial,
                         "iteration": record.iteration, "state": state, "objective": value, "metrics": metrics})
        return rows

    def best_trial(self, rows: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:
        rows = rows if rows is not None else self.trial_rows()
        if self.hpo is None:
            done = [r for r in rows if r["state"] == "COMPLETE"]
            return done[-1] if done else None
        scored = [r for r in rows if r["objective"] is not None and math.isfinite(r["objective"])]
        if not scored:
            return None
        pick = max if self.hpo.metric.goal == "maximize" else min
        return pick(scored, key=lambda r: r["objective"])

    def trial_recipe(self, key: str) -> Path | None:
        """The recipe a trial processed its data with: the refined recipe if refined, else the
        ProcessData job's recipe as run."""
        ctx = TrialContext(self.sandbox, key, self.log)
        for job in reversed(ctx.infos.get(PIPELINE, [])):
            path = job.get("refined_recipe_path")
            if path and Path(path).is_file():
                return Path(path)
        for job in self.sandbox.jobs_for_step("process"):
            path = ctx.dir / job.meta_name / "recipe.yaml"
            if path.is_file():
                return path
        return None

    def write_report(self) -> dict[str, Any]:
        rows = self.trial_rows()
        best = self.best_trial(rows)
        report: dict[str, Any] = {"sandbox": self.sandbox.name, "work_dir": str(self.sandbox.work_path),
                                  "metric": self.hpo.metric.model_dump() if self.hpo else None,
                                  "trials": rows, "best_trial": best["trial"] if best else None}
        if best:
            recipe = self.trial_recipe(best["trial"])
            if recipe is not None:
                target = self.sandbox.work_path / "best_recipe.yaml"
                shutil.copyfile(recipe, target)
                report["best_recipe"] = str(target)
        out = self.sandbox.work_path / "sandbox_report.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_jsonable(report), indent=1))
        report["report_path"] = str(out)
        return report


def _apply_param(job: JobConfig, name: str, value: Any, dj: dict | None, extra: dict | None) -> tuple[dict | None, dict | None]:
    """Set one trial parameter in a job's configs: ``<meta>.<group>.<key...>`` in the jobs of that
    meta name that take the key, or ``<op>.<param>`` in every OP entry of the job's recipe."""
    parts = name.split(".")
    cls = hook_class(job.hook)
    if len(parts) >= 3 and parts[1] in ("dj_configs", "extra_configs"):
        if parts[0] != job.meta_name:
            return dj, extra
        if parts[1] == "dj_configs" and cls.needs_recipe:
            dj = dj if dj is not None else {}
            nested_set(dj, parts[2:], value)
        elif parts[1] == "extra_configs" and cls.Extra is not None and parts[2] in cls.Extra.model_fields:
            extra = extra if extra is not None else {}
            nested_set(extra, parts[2:], value)
        return dj, extra
    if dj is None or len(parts) != 2:
        return dj, extra
    op, param = parts
    process = dj.get("process") or []
    for i, entry in enumerate(process):
        entry = {entry: None} if isinstance(entry, str) else entry
        if isinstance(entry, dict) and op in entry:
            params = dict(entry[op] or {})
            params[param] = value
            process[i] = {op: params}
    return dj, extra
