"""The Dagster webserver serves the code location: a real HTTP round trip to its GraphQL API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from retail_assets.settings import PROJECT_ROOT

QUERY = """
{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_webserver_graphql_lists_assets_with_lineage(tiny_platform):
    """dagster-webserver started on a free port against workspace.yaml answers GraphQL with the
    asset nodes and their dependencies (raw -> staging -> marts), then stops cleanly."""
    settings, _ = tiny_platform
    port = _free_port()
    webserver = str(Path(sys.executable).with_name("dagster-webserver"))
    process = subprocess.Popen(
        [webserver, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(settings.dagster_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        data = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"webserver exited: {process.stderr.read().decode()[-2000:]}")
            try:
                data = _post(f"http://127.0.0.1:{port}/graphql", {"query": QUERY})
                if data.get("data", {}).get("assetNodes"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert data and data["data"]["assetNodes"], f"no asset nodes served: {data}"
        nodes = {"/".join(node["assetKey"]["path"]): node for node in data["data"]["assetNodes"]}
        deps = {
            key: {"/".join(d["path"]) for d in node["dependencyKeys"]}
            for key, node in nodes.items()
        }
        assert "raw/sales" in deps["staging/stg_sales"]
        assert nodes["raw/sales"]["groupName"] == "raw"
        assert nodes["staging/stg_sales"]["groupName"] == "staging"
        assert nodes["marts/fct_daily_sales"]["groupName"] == "marts"
        assert any("staging/stg_sales" in deps[key] for key in deps)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
