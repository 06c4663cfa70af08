#!/usr/bin/env bash
# The test command: installs what the tests need (into .venv), then runs the suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export DAGSTER_HOME="${DAGSTER_HOME_FOR_TESTS:-}"  # tests make their own instances
unset DAGSTER_HOME
exec .venv/bin/python -m pytest -x -q "$@"
