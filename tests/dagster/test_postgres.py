"""A Dagster instance on PostgreSQL (README "Dagster"): a real server from Debian's `postgresql`
package (`.ci/run` installs it), started here in a temporary folder; the README's dagster.yaml
storage block points the instance at it and a recipe runs against it."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest
import yaml

from .conftest import REPO, demo_recipe_dict, make_defs, read_jsonl, run_all

pytest.importorskip("dagster_postgres", reason="dagster-postgres not installed (extra `postgres`)")

PASSWORD = "dj-test"


def _server_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """(host, port, user, password, database) of a fresh server, stopped afterwards."""
    bin_dir = _server_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not installed (Debian package `postgresql`; .ci/run installs it)")
    # initdb refuses to run as root: the server runs as the package's `postgres` user then, in a
    # folder of its own (pytest's tmp_path is private to root)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="dj-pg-"))
    if as_user:
        shutil.chown(folder, "postgres")
    (folder / "pw").write_text(PASSWORD)
    port = _free_port()
    run = dict(check=True, capture_output=True, text=True, timeout=120)
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
                        "--auth=scram-sha-256", f"--pwfile={folder / 'pw'}"], **run)
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                        "-o", f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder}", "start"],
                       **run)
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster"],
                       env={**os.environ, "PGPASSWORD": PASSWORD}, **run)
        yield "127.0.0.1", port, "postgres", PASSWORD, "dagster"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def readme_postgres_storage() -> dict:
    """The dagster.yaml storage block the README documents for PostgreSQL."""
    block = re.search(r"```yaml\n(storage:\n  postgres:\n.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    return yaml.safe_load(block)


def test_recipe_runs_on_a_postgres_instance(postgres, demo_data, tmp_path, monkeypatch):
    host, port, user, password, db = postgres
    for key, value in {"DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": str(port), "DAGSTER_PG_USER": user,
                       "DAGSTER_PG_PASSWORD": password, "DAGSTER_PG_DB": db}.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((REPO / ".dagster_home" / "dagster.yaml").read_text())
    (home / "dagster.yaml").write_text(yaml.safe_dump({**config, **readme_postgres_storage()}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        bundle, defs = make_defs(demo_recipe_dict(demo_data, tmp_path), tmp_path)
        result, summary = run_all(defs, bundle, instance)
        assert result.success and summary["export"]["rows"] == 275
    assert len(read_jsonl(tmp_path / "out" / "demo.jsonl")) == 275

    # another process reads the run, its events and the materializations back from the server
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert (run.job_name, run.status, run.tags["dj/recipe"]) == ("demo_job", dg.DagsterRunStatus.SUCCESS, "demo")
        assert instance.get_dynamic_partitions("demo_shards")[0] == "articles.jsonl"
        mats = instance.fetch_materializations(bundle.key("cleaned"), limit=10).records
        assert sorted(m.partition_key for m in mats) == sorted(instance.get_dynamic_partitions("demo_shards"))
        export = instance.fetch_materializations(bundle.key("export"), limit=1).records[0].asset_materialization
        assert export.metadata["rows"].value == 275
        checks = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        assert len(checks) == 5 * 3
