"""Admin lifecycle calls on a server started the way systemd units and container entrypoints
start it: the venv's `retail` binary with a minimal PATH (no venv `bin`, so no `dbt`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from retail_assets.artifacts import Artifacts
from retail_assets.runner import materialize_platform

TOKEN = "admin-token-for-this-test"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_bare_server(home: Path, port: int) -> subprocess.Popen:
    binary = Path(sys.executable).with_name("retail")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "RETAIL_HOME": str(home),
        "RETAIL_SCALE": "tiny",
        "RETAIL_ADMIN_TOKEN": TOKEN,
        "RETAIL_SERVING_POLL_SECONDS": "0.5",
    }
    return subprocess.Popen(
        [str(binary), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def test_admin_promote_and_rollback_work_on_a_server_without_the_venv_on_path(platform_copy):
    """A retrained fraud model (v2, a canary after the gate, accepted) is on a server started with
    PATH=/usr/bin:/bin. Admin rollback brings v1 back, admin promote reinstates v2, and
    serving loads each; promoting an unknown version or the current champion, or rolling
    back past the first champion, is a 409 that says why. Before the fix every one of these
    calls was a 500: the admin path built the Dagster definitions, whose dbt resource refuses
    to exist without a `dbt` executable on PATH."""
    settings = platform_copy
    summary = materialize_platform(settings, selection="key:fraud_model+")
    assert summary.success, summary.failures
    store = Artifacts.from_settings(settings).model("fraud")
    assert store.challenger() == "2" and store.roles().rollout.mode == "canary"
    store.promote("2", reason="test: canary accepted", actor="test")
    assert store.champion() == "2"

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_bare_server(settings.home, port)
    try:
        _wait_ready(url, server)
        admin = {"authorization": f"Bearer {TOKEN}"}

        def call(action: str, body: dict) -> httpx.Response:
            return httpx.post(
                f"{url}/v1/admin/models/fraud/{action}", json=body, headers=admin, timeout=60
            )

        response = call("rollback", {"reason": "alert rate doubled"})
        assert response.status_code == 200, response.text
        assert response.json()["champion_after"] == "1"
        assert response.json()["serving_version"] == "1"

        response = call("promote", {"version": "2", "reason": "reviewed shadow results"})
        assert response.status_code == 200, response.text
        assert response.json()["serving_version"] == "2"

        for body, expected in (
            ({"version": "9", "reason": "typo"}, "model/fraud has no version 9"),
            ({"version": "2", "reason": "again"}, "already the champion"),
        ):
            response = call("promote", body)
            assert response.status_code == 409, response.text
            assert expected in response.json()["detail"]
        assert call("rollback", {"reason": "back"}).status_code == 200
        response = call("rollback", {"reason": "and back again"})
        assert response.status_code == 409, response.text
        assert "nothing to roll back to" in response.json()["detail"]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output
