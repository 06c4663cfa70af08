"""Fixtures shared by the Dagster tests of recipes and of the sandbox: import them into a test module
or conftest (``from tests.dagster_fixtures import instance, quiet_previews``)."""

from __future__ import annotations

import warnings

import dagster as dg
import pytest


@pytest.fixture(autouse=True)
def quiet_previews():
    # partitioned / beta Dagster APIs warn on every use; the tests exercise them on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """A persistent instance on Dagster's own SQLite storage under ``tmp_path``."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst
