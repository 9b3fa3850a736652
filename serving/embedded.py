"""The serving app under uvicorn in a background thread, on a free local port: real HTTP in
one process, for the simulation (`retail simulate`) and the end-to-end tests. Production runs
`retail serve`; this is the same app (`create_app`), only started differently."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time

import httpx
import uvicorn

from retail_assets.settings import Settings
from serving.app import create_app
from serving.clock import PaymentClock
from serving.config import ServingConfig

ADMIN_TOKEN = "embedded-admin-token"  # loopback only, for the caller that started it
READY_TIMEOUT_S = 60


class EmbeddedServer:
    def __init__(self, settings: Settings, admin_token: str = ADMIN_TOKEN, **overrides):
        # Simulations and tests send a past day's payments: the replay clock (the fraud
        # state's as-of time) instead of the wall clock.
        overrides.setdefault("payment_clock", PaymentClock(mode="replay"))
        overrides.setdefault("poll_seconds", 0.5)
        overrides.setdefault("log_flush_seconds", 0.5)
        config = dataclasses.replace(
            ServingConfig.from_settings(settings), admin_token=admin_token, **overrides
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config)
        self.state = self.app.state.serving
        self.admin = {"authorization": f"Bearer {admin_token}"}
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> EmbeddedServer:
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serving app did not become ready within {READY_TIMEOUT_S} s")

    def refresh(self) -> None:
        """Load what the night published now instead of at the next poll."""
        httpx.post(f"{self.url}/v1/admin/reload", headers=self.admin, timeout=120)

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
