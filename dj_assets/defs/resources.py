import dagster as dg

from dj_assets.resources import default_storage_root, location_resources


@dg.definitions
def resources(context: dg.ComponentLoadContext) -> dg.Definitions:
    """The resources and executor every recipe of the location shares (partitions under
    ``$DJ_STORAGE_ROOT``, default ``<project>/outputs/dagster_storage``)."""
    return location_resources(default_storage_root(context.project_root))
