"""The code location's defs folder (``dg.load_from_defs_folder``): the shared resources
(``resources.py``) and one component instance per folder holding a ``defs.yaml``: ``recipes/``
(the repository's ``recipes/`` and ``$DJ_RECIPES_DIR``) and any ``dg scaffold defs
dj_assets.components.DataJuicerRecipe <name>``."""
