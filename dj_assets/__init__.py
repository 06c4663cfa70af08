"""Dagster layer: every recipe becomes a partitioned asset graph, a job, a schedule and an inbox sensor.

The engine (``dj_ops``) does the data work and never imports Dagster; this package only declares
assets over it (:mod:`dj_assets.factory`) and stores their partitions (:mod:`dj_assets.storage`).
Entry point for Dagster tools: ``dj_assets.definitions``.
"""
