"""Sandbox laboratory: probe, refine, process, train, evaluate — and HPO over trials.

Data-Juicer's sandbox (``data_juicer/core/sandbox``) on this project's engine: a sandbox config
(:mod:`sandbox_jobs.config`) lists jobs whose hooks (:mod:`sandbox_jobs.hooks`) probe the data
with the analyzer, refine the recipe with the k-sigma rule (:mod:`sandbox_jobs.ksigma`), process
the data, train and evaluate a small model (:mod:`sandbox_jobs.models`); an optuna study
(:mod:`sandbox_jobs.hpo`) searches recipe parameters over trials.  Run it from the command line
(``python -m sandbox_jobs --config recipes/sandbox/imdb_sandbox.yaml``) or as Dagster assets with
one partition per trial (:mod:`sandbox_jobs.definitions`, the only module that imports
dagster).
"""

from .config import SandboxConfig, SandboxConfigError
from .hooks import HOOKS, Hook, register_hook
from .ksigma import refine_recipe_k_sigma
from .loader import load_sandbox_config, sandbox_from_dict
from .runner import SandboxRunner

__all__ = ["HOOKS", "Hook", "SandboxConfig", "SandboxConfigError", "SandboxRunner", "load_sandbox_config",
           "refine_recipe_k_sigma", "register_hook", "sandbox_from_dict"]
