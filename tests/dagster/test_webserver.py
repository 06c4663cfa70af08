"""The UI: dagster-webserver on 127.0.0.1 serves the demo recipe's asset graph (GraphQL), and a
headless Chromium renders it (screenshot + DOM).  Needs Debian's `chromium` (`.ci/run` installs
it); nothing is installed here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STAGES = ["input_shards", "cleaned", "filtered", "deduped", "language", "export"]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def webserver(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / ".dagster_home" / "dagster.yaml").read_text())
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "DJ_STORAGE_ROOT": str(tmp_path / "storage")}
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "dagster-webserver"), "-h", "127.0.0.1",
                             "-p", str(port), "-w", str(REPO / "workspace.yaml")],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"dagster-webserver did not start: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
                time.sleep(1)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_asset_graph_in_the_ui(webserver, tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("headless Chromium not installed (Debian package `chromium`; .ci/run installs it)")
    port = webserver
    nodes = _graphql(port, "{ assetNodes { assetKey { path } groupName isPartitioned } }")["data"]["assetNodes"]
    demo = {n["assetKey"]["path"][1]: n for n in nodes if n["assetKey"]["path"][0] == "demo"}
    assert set(demo) == set(STAGES)
    assert all(n["groupName"] == "demo" for n in demo.values())
    assert all(demo[s]["isPartitioned"] for s in STAGES[:-1]) and not demo["export"]["isPartitioned"]
    # the first-visit community dialog would cover the graph: mark it seen, as clicking "Skip" does
    assert _graphql(port, "mutation { setNuxSeen }")["data"]["setNuxSeen"] is True

    url = f"http://127.0.0.1:{port}/locations/dj_assets/asset-groups/demo/lineage"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             "--virtual-time-budget=20000", "--window-size=1600,1000", f"--user-data-dir={tmp_path / 'chrome'}"]
    shot = tmp_path / "asset_graph.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=180, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    for stage in STAGES:
        assert stage in dom, f"asset {stage} not on the rendered page"
    keep = os.environ.get("DJ_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, keep)
