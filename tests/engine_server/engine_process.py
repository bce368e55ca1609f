"""A real `mercury-engine serve` process for tests, a raw HTTP exchange with it, and a reader for its Prometheus
text (prometheus_client's own parser)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

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

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (status := self.health()["status"]) in ("loading", "warming"):  # warming: its warm-up steps
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
    """One sample's value from Prometheus text (0 when absent); `labels` as written in the text: `a="x",b="y"`."""
    wanted = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == wanted:
                return float(sample.value)
    return 0.0


async def raw_exchange(url: str, data: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are on a fresh connection; the status, headers (lower-case names) and body of the
    answer, read until the server closes the connection."""
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, body
