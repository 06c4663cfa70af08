"""Dagster layer: every recipe becomes a partitioned asset graph, a job, a schedule and an inbox sensor.

The engine (``dj_ops``) does the data work and never imports Dagster; this package declares
Dagster definitions over it and holds the command lines (``dj-process``, ``dj-analyze``), the one
place that may import both.  Modules, each importing only those listed after it:

- ``cli``: the command lines; Dagster is imported only on ``dj-process``'s default path (``process``);
- ``process``: ``dj-process`` through Dagster: a recipe file run as its job in the persistent instance;
- ``definitions``: the code location, loaded from the defs folder ``defs/`` (components, resources);
- ``components``: the ``DataJuicerRecipe`` / ``DataJuicerRecipeFolder`` components and the scaffolder;
- ``recipe_defs``: one recipe's definitions: source asset, stage assets, export, job, schedule, sensor;
- ``automation``: the recipe's schedule and inbox sensor;
- ``stage_assets``: one partitioned asset per stage, its step running the engine;
- ``export_asset``: the recipe's result in Data-Juicer's output format;
- ``checks``: asset checks of stages and export; ``metadata``: what the UI shows; ``summary``: a run's totals;
- ``key_store``: a global stage's deduplication keys per partition;
- ``resources``: what every recipe of a location shares: ``storage`` (partition files, IO manager),
  ``gpu`` (the GPU claim), ``run_queue`` (the instance's run queue for runs executed in place);
- ``partitions``: partitions synced with the input files, run tags selecting them;
- ``bundle``: a recipe ready for orchestration, run tags;
- ``stage_runner``: one stage over partitions through the engine (no Dagster); ``export``: the
  export writer (no Dagster); ``shards``: input files as partitions (no Dagster).
"""
