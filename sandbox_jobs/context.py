"""One trial's state on disk: its parameters, every job's results and the watched scores.

A trial lives in ``<work_dir>/trials/<key>/``: ``trial.json`` (key, parameters, HPO trial
number, iteration), ``context_infos.json`` (Data-Juicer's layout: ``{pipeline: [{"meta_name": ...,
<result name>: value, ...}, ...]}``, in job order) and ``watched.json`` (what hooks reported
through :meth:`TrialContext.watch`, by meta name: Data-Juicer's watcher without wandb).  Every
job folder is ``<trial>/<meta_name>/``.  Because everything is on disk, the steps of a trial can
run in different processes (Dagster runs) and a finished step can be re-run alone.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import PIPELINE, SandboxConfig


def to_jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None, DataFrames to nested dicts."""
    if isinstance(value, pd.DataFrame):
        return {str(col): {str(row): to_jsonable(v) for row, v in value[col].items()} for col in value.columns}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Dotted keys for nested results, as Data-Juicer's watcher logs them (``meta.key.sub``)."""
    if isinstance(value, pd.DataFrame):
        value = to_jsonable(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def nested_get(data: Any, path: list[str], what: str) -> Any:
    for i, part in enumerate(path):
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(f"{what}: no key {'.'.join(path[: i + 1])!r}")
    return data


def nested_set(data: dict, path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[path[-1]] = value


@dataclass
class TrialRecord:
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    #: optuna trial number when the trial belongs to an HPO study
    hpo_trial: int | None = None
    #: iteration number when the sandbox iterates (``max_iter_num``)
    iteration: int | None = None
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TrialContext:
    """Reads and writes one trial's folder; hooks see it as their window on earlier results."""

    def __init__(self, sandbox: SandboxConfig, key: str, log=print):
        self.sandbox = sandbox
        self.key = key
        self.dir = trial_dir(sandbox, key)
        self.log = log
        self.record = load_trial_record(sandbox, key)
        self.infos: dict[str, list[dict]] = self._read("context_infos.json", {PIPELINE: []})
        self.watched: dict[str, Any] = self._read("watched.json", {})
        #: which job (``<job list>[<index>]``) reported each watched meta name
        self.owners: dict[str, str] = self._read("watched_owners.json", {})

    # -- files ------------------------------------------------------------------------------------

    def _read(self, name: str, default: Any) -> Any:
        path = self.dir / name
        return json.loads(path.read_text()) if path.is_file() else default

    def _write(self, name: str, data: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{name}.tmp"
        tmp.write_text(json.dumps(to_jsonable(data), indent=1, sort_keys=False))
        tmp.replace(self.dir / name)

    def save(self) -> None:
        self._write("context_infos.json", self.infos)
        self._write("watched.json", self.watched)
        self._write("watched_owners.json", self.owners)

    def job_dir(self, meta_name: str) -> Path:
        path = self.dir / meta_name
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- what hooks see -------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        return self.record.params if self.record else {}

    def watch(self, meta_name: str, result: Any, owner: str = "") -> None:
        """Record a hook's scores (dicts and DataFrames are flattened into the trial's metrics)."""
        self.watched[meta_name] = to_jsonable(result)
        self.owners[meta_name] = owner

    def query(self, meta_name: str) -> Any:
        """What a job reported under ``meta_name`` (None when nothing was)."""
        return self.watched.get(meta_name)

    def metrics(self) -> dict[str, Any]:
        """Every watched score as ``<meta_name>.<key>...`` -> value."""
        out: dict[str, Any] = {}
        for meta, result in self.watched.items():
            out.update(flatten(result, meta))
        return out

    # -- job results (Data-Juicer's context infos) ------------------------------------------------

    def record_job(self, job_id: str, meta_name: str, outputs: dict[str, Any]) -> None:
        """Store a job's results, replacing those of an earlier run of the same job."""
        jobs = [j for j in self.infos.setdefault(PIPELINE, []) if j.get("job") != job_id]
        jobs.append({"meta_name": meta_name, "job": job_id, **to_jsonable(outputs)})
        self.infos[PIPELINE] = jobs

    def forget_jobs(self, job_ids: set[str]) -> None:
        """Drop the results and scores of jobs about to re-run (a step materialized again)."""
        self.infos[PIPELINE] = [j for j in self.infos.get(PIPELINE, []) if j.get("job") not in job_ids]
        for meta in [m for m, owner in self.owners.items() if owner in job_ids]:
            self.watched.pop(meta, None)
            self.owners.pop(meta, None)

    def resolve(self, pipeline: str | None, meta_name: str | None, path: list[str], where: str) -> Any:
        """The value of an ``input`` reference (see :func:`sandbox_jobs.config.parse_reference`)."""
        jobs = self.infos.get(PIPELINE, [])
        if meta_name is None:
            if not jobs:
                raise KeyError(f"{where}: '-1' refers to the previous job, but no job has finished yet")
            info = jobs[-1]
        else:
            found = [j for j in jobs if j["meta_name"] == meta_name]
            if not found:
                raise KeyError(f"{where}: job {meta_name!r} has not run in trial {self.key!r} "
                               f"(finished: {', '.join(j['meta_name'] for j in jobs) or 'none'})")
            info = found[-1]
        return nested_get(info, path, where)


# ---------------------------------------------------------------------------------------------
# trial records


def trials_root(sandbox: SandboxConfig) -> Path:
    return sandbox.work_path / "trials"


def trial_dir(sandbox: SandboxConfig, key: str) -> Path:
    return trials_root(sandbox) / key


def load_trial_record(sandbox: SandboxConfig, key: str) -> TrialRecord | None:
    path = trial_dir(sandbox, key) / "trial.json"
    return TrialRecord(**json.loads(path.read_text())) if path.is_file() else None


def save_trial_record(sandbox: SandboxConfig, record: TrialRecord) -> None:
    path = trial_dir(sandbox, record.key) / "trial.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(record.to_dict()), indent=1))


def list_trials(sandbox: SandboxConfig) -> list[TrialRecord]:
    root = trials_root(sandbox)
    records = [load_trial_record(sandbox, p.name) for p in sorted(root.iterdir())] if root.is_dir() else []
    return sorted((r for r in records if r is not None), key=lambda r: (r.created, r.key))


def trial_metrics(sandbox: SandboxConfig, key: str) -> dict[str, Any]:
    """Every watched score of a trial (``<meta_name>.<key>`` -> value); empty before it ran."""
    return TrialContext(sandbox, key).metrics()
