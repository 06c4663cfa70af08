"""The pooled SQLite storage of the repository's dagster.yaml (dj_assets/instance_storage.py)."""

from __future__ import annotations

import os

import dagster as dg
import pytest
from dagster._core.storage import sql
from dagster._core.storage.event_log.sqlite import sqlite_event_log

from dj_assets.instance_storage import OPEN_FILES

from .conftest import REPO


@dg.asset
def numbers() -> int:
    return 3


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _pools(instance: dg.DagsterInstance) -> list:
    storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    assert [type(s).__name__ for s in storages] == \
        ["PooledSqliteRunStorage", "PooledSqliteEventLogStorage", "PooledSqliteScheduleStorage"]
    return [s._pools for s in storages]  # noqa: SLF001


def test_repository_instance_uses_pooled_storage_in_dagsters_default_files(home):
    with dg.DagsterInstance.get() as instance:
        _pools(instance)
        assert dg.materialize([numbers], instance=instance).success
        runs = instance.get_runs()
    assert (home / "history" / "runs.db").is_file()
    assert (home / "history" / "runs" / f"{runs[0].run_id}.db").is_file()
    # a second instance (another process would do the same) reads what the first wrote
    with dg.DagsterInstance.get() as other:
        assert [r.run_id for r in other.get_runs()] == [runs[0].run_id]
        assert other.get_latest_materialization_event(dg.AssetKey("numbers")) is not None


def test_open_files_are_bounded_and_closed_on_dispose(home):
    with dg.DagsterInstance.get() as instance:
        for _ in range(OPEN_FILES + 2):  # each run writes its own event-log file
            assert dg.materialize([numbers], instance=instance).success
        pools = _pools(instance)
        assert all(len(p.engines) <= OPEN_FILES for p in pools)
        assert len(instance.get_runs()) == OPEN_FILES + 2
    # the instance disposes its run and event storages (not its schedule storage: that pool
    # closes when it is garbage collected)
    assert not pools[0].engines and not pools[1].engines


def test_no_pooled_connection_crosses_a_fork(home):
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([numbers], instance=instance).success
        pools = _pools(instance)
        assert sum(e.pool.checkedin() for p in pools for e in p.engines.values()) > 0  # idle, open
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child reports how many open connections it inherited
            os.write(write, str(sum(e.pool.checkedin() for p in pools for e in p.engines.values())).encode())
            os._exit(0)
        os.close(write)
        inherited = int(os.read(read, 64))
        os.waitpid(pid, 0)
        assert inherited == 0
        # the parent reconnects as needed
        assert dg.materialize([numbers], instance=instance).success
        assert len(instance.get_runs()) == 2


def test_wipe_closes_connections_to_the_deleted_files(home):
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([numbers], instance=instance).success
        instance.wipe()
        assert instance.get_runs() == []
        assert dg.materialize([numbers], instance=instance).success
        run = instance.get_runs()[0]
        assert instance.all_logs(run.run_id)  # its events were written to a live file


def test_connections_are_wal_and_sync_at_checkpoints(home):
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([numbers], instance=instance).success
        with instance.run_storage.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_new_run_databases_are_copies_of_dagsters_own_initialisation(home):
    import sqlite3

    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([numbers], instance=instance).success
        runs_dir = home / "history" / "runs"
        (template,) = runs_dir.glob("_run_template-*.sqlite")
        made = template.stat().st_mtime_ns
        assert dg.materialize([numbers], instance=instance).success
        assert template.stat().st_mtime_ns == made  # made once, then copied
        tables = "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name"
        version = "SELECT version_num FROM alembic_version"
        with sqlite3.connect(template) as t:
            expected = (t.execute(tables).fetchall(), t.execute(version).fetchall())
        for run in instance.get_runs():
            with sqlite3.connect(runs_dir / f"{run.run_id}.db") as c:
                assert (c.execute(tables).fetchall(), c.execute(version).fetchall()) == expected
                assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert instance.all_logs(run.run_id)
        # Dagster's own tools see runs only: the template is no run database
        assert sorted(instance.event_log_storage.get_all_run_ids()) == sorted(r.run_id for r in instance.get_runs())
        instance.upgrade()


def test_table_lookups_use_the_pool(home, monkeypatch):
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert storage.has_table("dynamic_partitions") and not storage.has_table("no_such_table")
        # every read of dynamic partitions looks the table up: Dagster's own lookup builds an engine
        def no_new_engine(*args, **kwargs):
            raise AssertionError("a new engine was built")

        monkeypatch.setattr(sqlite_event_log, "create_engine", no_new_engine)
        instance.add_dynamic_partitions("shards", ["a", "b"])
        assert instance.get_dynamic_partitions("shards") == ["a", "b"] and instance.has_dynamic_partition("shards", "b")


def test_initialised_event_databases_skip_the_migration_scripts(home, monkeypatch):
    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([numbers], instance=instance).success  # initialises the index database
    with dg.DagsterInstance.get() as instance:  # as the next process: the files exist
        def no_scripts(*args, **kwargs):
            raise AssertionError("alembic migration scripts loaded")

        monkeypatch.setattr(sql.ScriptDirectory, "from_config", no_scripts)
        assert dg.materialize([numbers], instance=instance).success
        assert len(instance.get_runs()) == 2
