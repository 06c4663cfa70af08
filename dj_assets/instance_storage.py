"""Dagster's SQLite instance storage with connections kept open between statements.

Dagster's SQLite storages build a new SQLAlchemy engine, and so a new connection (file open, WAL
setup, schema parse), for every statement: a run of a two-stage recipe writes ~60 events and
opens ~300 connections, about 0.25 s of a 10k-row partition's run.  These subclasses keep one
small connection pool per database file (the run-sharded event logs included: the few most
recently used files stay open), with the same files, schema and busy timeouts, so existing
instances keep working and can switch back.  Selected in the repository's dagster.yaml::

    storage:
      custom:
        module: dj_assets.instance_storage
        class: PooledSqliteStorage
        config:
          base_dir: {env: DAGSTER_HOME}    # Dagster's default place

SQLite connections must not cross ``fork()``: idle pooled connections are closed before every
fork (the engine forks its worker processes from a run's step), so a child never holds one.
Besides: connections sync WAL databases at checkpoints (:func:`_wal_normal_sync`), and a new run's
event database is copied from a template (:class:`PooledSqliteEventLogStorage`).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import dagster
import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)

#: database files with an open pool per storage (an event log has one file per run)
OPEN_FILES = 4
_ALL_POOLS: weakref.WeakSet[_Pools] = weakref.WeakSet()


class _Pools:
    """One engine (a small QueuePool) per SQLite URL, least recently used closed first."""

    def __init__(self, busy_timeout: float | None) -> None:
        self.connect_args = {"check_same_thread": False}
        if busy_timeout is not None:
            self.connect_args["timeout"] = busy_timeout
        self.engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self.lock = threading.Lock()
        _ALL_POOLS.add(self)

    def engine(self, url: str) -> db.engine.Engine:
        with self.lock:
            engine = self.engines.get(url)
            if engine is not None:
                self.engines.move_to_end(url)
                return engine
            engine = db.create_engine(url, pool_size=1, max_overflow=8, connect_args=self.connect_args)
            db.event.listen(engine, "connect", _wal_normal_sync)
            self.engines[url] = engine
            while len(self.engines) > OPEN_FILES:
                # connections checked out of an evicted engine close when they are returned
                self.engines.popitem(last=False)[1].dispose()
            return engine

    @contextmanager
    def transaction(self, url: str) -> Iterator[db.engine.Connection]:
        with self.engine(url).connect() as conn, conn.begin():
            yield conn

    def close_idle(self) -> None:
        with self.lock:
            for engine in self.engines.values():
                engine.pool.dispose()

    def close(self) -> None:
        with self.lock:
            for engine in self.engines.values():
                engine.dispose()
            self.engines.clear()


def _wal_normal_sync(dbapi_connection, _record) -> None:
    """SQLite's advice for WAL databases: fsync at checkpoints, not at every commit (Dagster's
    files are in WAL mode; a run writes ~200 commits).  A crash of the process loses nothing; a
    power loss may lose the last commits, never the database."""
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _stamped(engine: db.engine.Engine) -> bool:
    """Whether a database carries an alembic revision (Dagster initialised it)."""
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").first() is not None
    except db.exc.OperationalError:  # no such table: a new database
        return False


def _close_idle_before_fork() -> None:
    for pools in list(_ALL_POOLS):
        pools.close_idle()


os.register_at_fork(before=_close_idle_before_fork)


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Run-sharded event logs; a new run's database is a copy of an empty one that Dagster's own
    initialisation made once per Dagster version (``_run_template-<version>.sqlite``): that
    initialisation loads every alembic migration script, ~0.1 s per run."""

    def __init__(self, base_dir: str, inst_data=None):
        self._pools = _Pools(SQLITE_BUSY_TIMEOUT_SECONDS)
        super().__init__(base_dir, inst_data)
        self._template = os.path.join(self._base_dir, f"_run_template-{dagster.__version__}.sqlite")

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:
        with self._db_lock:
            url = self.conn_string_for_shard(shard)
            if shard not in self._initialized_dbs:
                if shard == INDEX_SHARD_NAME or not self._created_from_template(self.path_for_shard(shard)):
                    self._initdb(self._pools.engine(url))
                self._initialized_dbs.add(shard)
            with self._pools.transaction(url) as conn:
                yield conn

    def _initdb(self, engine: db.engine.Engine, for_index_shard: bool = False) -> None:
        # Dagster's reads every alembic migration script (~30 ms per process) to compare the
        # database's revision with the newest, and only acts on a database with no revision
        # stamped (a new one); migrations are `dagster instance migrate`'s job
        if not _stamped(engine):
            super()._initdb(engine, for_index_shard)

    def has_table(self, table_name: str) -> bool:
        # Dagster's builds an engine for each look (every read of dynamic partitions makes one)
        with self._pools.transaction(self.conn_string_for_shard(INDEX_SHARD_NAME)) as conn:
            return bool(conn.dialect.has_table(conn, table_name))

    def _created_from_template(self, path: str) -> bool:
        """Create the run database ``path`` as a copy of the template; False when it exists."""
        if os.path.exists(path):
            return False
        if not os.path.exists(self._template):
            made = f"{self._template}.{os.getpid()}-{time.time_ns()}.tmp"
            engine = db.create_engine(f"sqlite:///{made}", poolclass=db.pool.NullPool)
            try:
                super()._initdb(engine)  # tables, indexes, WAL mode, alembic stamp
            finally:
                engine.dispose()  # the last connection closed: the WAL is folded into the file
            os.replace(made, self._template)
        copy = f"{path}.{os.getpid()}-{time.time_ns()}.tmp"
        shutil.copyfile(self._template, copy)
        try:
            os.link(copy, path)  # atomic: never over a database another process created meanwhile
        except OSError:  # created meanwhile, or a file system without hard links: Dagster's own init
            return False
        finally:
            os.unlink(copy)
        return True

    def wipe(self) -> None:
        self._pools.close()  # the run files are deleted: no connection may keep writing to one
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._pools.close()


class _PooledConnectionString:
    """``connect()`` from a pool for Dagster's single-file SQLite storages (runs, schedules)."""

    def __init__(self, conn_string: str, inst_data=None):
        self._pools = _Pools(None)
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[db.engine.Connection]:
        with self._pools.transaction(self._conn_string) as conn:
            yield conn

    def dispose(self) -> None:
        super().dispose()
        self._pools.close()


class PooledSqliteRunStorage(_PooledConnectionString, SqliteRunStorage):
    pass


class PooledSqliteScheduleStorage(_PooledConnectionString, SqliteScheduleStorage):
    pass


class PooledSqliteStorage(DagsterSqliteStorage):
    """:class:`DagsterSqliteStorage` (same files and layout) with pooled connections."""

    def __init__(self, base_dir: str, inst_data=None):
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)
