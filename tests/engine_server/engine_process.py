"""A real `mercury-engine serve` process for tests, and a reader for its Prometheus text."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 60.0

class EngineProcess:
    """One `mercury-engine serve --port 0` process and the URL it published in its port file."""

    def __init__(self, folder: Path, model: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.port_file = folder / "engine.json"
        self.log_path = folder / "engine.log"
        command = [sys.executable, "-m", "mercury_lsp.engine.cli", "serve", "--port", "0", "--device", "cpu",
                   "--threads", "1", "--model", str(model), "--port-file", str(self.port_file), *args]
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        self.url = self._wait_for_port()

    def _wait_for_port(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.port_file.exists():
                return json.loads(self.port_file.read_text())["url"]
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited early:\n{self.log_path.read_text()}")
            time.sleep(0.02)
        raise AssertionError("engine did not publish its port")

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
            return json.loads(response.read())

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (status := self.health()["status"]) == "loading":
            assert time.monotonic() < deadline, "model did not load"
            time.sleep(0.05)
        assert status == "ok", self.health()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def metric(text: str, name: str, labels: str = "") -> float:
    """One sample's value from Prometheus text (0 when absent)."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if not line.startswith("#") and line.rsplit(" ", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0
