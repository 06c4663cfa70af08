"""Compute logs of the repository's dagster.yaml: Dagster's files and reader, no helper processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import REPO

# run in a process of its own: pytest's capture replaces sys.stdout with a stream whose file
# descriptor is not 1, so a child process's output would bypass any capture there
SCENARIO = r'''
import json, os, subprocess, sys
import dagster as dg

@dg.asset
def talkative() -> int:
    print("from python's stdout", flush=True)
    print("from python's stderr", file=sys.stderr, flush=True)
    os.system("echo from a child process")  # a child writes to the captured file descriptor
    return 1

def no_process(*args, **kwargs):
    raise AssertionError(f"a helper process was started: {args}")

with dg.DagsterInstance.get() as instance:
    manager = instance.compute_log_manager
    popen, subprocess.Popen = subprocess.Popen, no_process  # Dagster's manager starts tail and watchers
    result = dg.materialize([talkative], instance=instance)
    subprocess.Popen = popen
    captured = next(e for e in instance.all_logs(result.run_id)
                    if e.dagster_event and e.dagster_event.event_type_value == "LOGS_CAPTURED")
    key = [result.run_id, "compute_logs", captured.dagster_event.logs_captured_data.file_key]
    data = manager.get_log_data(key)  # what the UI reads
    report = {"manager": type(manager).__name__, "success": result.success, "complete": manager.is_capture_complete(key),
              "stdout": data.stdout.decode(), "stderr": data.stderr.decode(),
              "location": manager.get_log_metadata(key).stdout_location}
print("REPORT " + json.dumps(report))
'''


def test_step_output_lands_in_dagsters_files_and_on_the_console(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    proc = subprocess.run([sys.executable, "-c", SCENARIO], env={**os.environ, "DAGSTER_HOME": str(home)},
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    assert report["manager"] == "InProcessComputeLogManager" and report["success"] and report["complete"]
    assert report["stdout"] == "from python's stdout\nfrom a child process\n"
    assert "from python's stderr\n" in report["stderr"]
    assert report["location"].startswith(str(home / "storage"))
    # the console still shows the step's output
    assert proc.stdout.startswith("from python's stdout\nfrom a child process\n")
    assert "from python's stderr" in proc.stderr


BLOCKED_CONSOLE = r'''
import json, sys
import dagster as dg
import dj_assets.compute_logs as compute_logs

compute_logs.DRAIN_SECONDS = 0.5

@dg.asset
def loud() -> int:
    for i in range(5000):
        print(f"line {i:05d} " + "x" * 60)  # ~350 KB: far more than a pipe holds
    sys.stdout.flush()
    return 1

with dg.DagsterInstance.get() as instance:
    result = dg.materialize([loud], instance=instance)
    captured = next(e for e in instance.all_logs(result.run_id)
                    if e.dagster_event and e.dagster_event.event_type_value == "LOGS_CAPTURED")
    key = [result.run_id, "compute_logs", captured.dagster_event.logs_captured_data.file_key]
    lines = instance.compute_log_manager.get_log_data(key).stdout.decode().splitlines()
with open(sys.argv[1], "w") as f:  # not stdout: nobody reads that pipe
    json.dump({"success": result.success, "lines": len(lines), "last": lines[-1][:10]}, f)
'''


def test_a_console_nobody_reads_does_not_hold_the_run(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    report, errors = tmp_path / "report.json", tmp_path / "stderr.txt"
    with open(errors, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", BLOCKED_CONSOLE, str(report)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=err, env={**os.environ, "DAGSTER_HOME": str(home)})
        try:
            assert proc.wait(timeout=120) == 0, errors.read_text()[-3000:]
        finally:
            proc.kill()
            proc.stdout.close()
    assert json.loads(report.read_text()) == {"success": True, "lines": 5000, "last": "line 04999"}
