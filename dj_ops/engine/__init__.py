"""The engine: runs a recipe's OP chain over a dataset, streaming, on worker processes or Ray.

Public API: :class:`LocalExecutor` / :class:`RayExecutor` (or :func:`executor_for` a recipe) with
``run()`` returning a :class:`RunReport`, and :func:`apply_op` to run one OP on one batch the way
a run does.  The modules, in the order they import each other (each only imports those above it):

======================  =====================================================================
``report``              per-OP metrics and the run report
``source``              the input cut into chunks
``apply``               one OP on one batch (bad rows set aside, filters dropping rows)
``fusion``              the plan: fused filter groups, their order and shared intermediates
``chain``               the per-worker chain: one chunk in, its result out
``planning``            chunk size, devices, the plan probed on the first rows
``checkpoint``          recorded chunk results, replayed after a crash
``placement``           how many workers the GPUs hold
``backend``             where chunks run: worker processes (``ray_backend``: Ray actors)
``sinks``               outputs, bad rows, traces, kept-row copies
``coordinator``         one pass: results in input order -> decisions, outputs, report
``dedup``               the deduplication barrier: key, decide, finish
``executor``            the facade: ``LocalExecutor(recipe).run()``
``dedup_store``         deduplication across partitions from stored keys
``stages``              a recipe's chain split into stages (for orchestrators)
======================  =====================================================================
"""

from .apply import Applied, apply_op
from .executor import Executor, LocalExecutor, RayExecutor, executor_for
from .report import RunReport

__all__ = ["Applied", "Executor", "LocalExecutor", "RayExecutor", "RunReport", "apply_op", "executor_for"]
