"""Auto-start of the shared engine: one detached engine per runtime folder, status/stop, restart after a kill."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from mercury_lsp.engine import daemon, server_cli

START_SNIPPET = (
    "import sys; from mercury_lsp.engine.daemon import ensure_engine; "
    "e = ensure_engine(sys.argv[1], 'cpu'); print(e.url, e.pid)"
)


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private runtime folder (inherited by the engines started from here); stops what was started."""
    folder = tmp_path / "runtime"
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(folder))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models run fastest on one thread of a shared CPU
    yield folder
    daemon.stop_engine(timeout=5)


def engine_processes(runtime_folder: Path) -> list[int]:
    """Pids of the engines serving this runtime folder's port file."""
    marker = str(runtime_folder / daemon.PORT_FILE).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"serve" in cmdline and marker in cmdline and daemon._alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mercury_lsp.engine.cli", *args], capture_output=True, text=True,
                          timeout=60)


def test_ensure_engine_starts_a_detached_engine_that_status_and_stop_see(runtime, tiny_checkpoint):
    endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
    assert daemon.probe_health(endpoint.url)["status"] == "ok"
    assert os.getsid(endpoint.pid) == endpoint.pid, "the engine leads its own session"
    assert daemon.ensure_engine(str(tiny_checkpoint), "cpu") == endpoint
    assert "listening on " + endpoint.url in (runtime / daemon.LOG_FILE).read_text()

    status = cli("status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["url"] == endpoint.url
    stopped = cli("stop")
    assert stopped.returncode == 0 and str(endpoint.pid) in stopped.stdout
    assert not daemon._alive(endpoint.pid)
    assert not (runtime / daemon.PORT_FILE).exists()
    assert daemon.running_engine() is None


def test_status_and_stop_when_nothing_runs(runtime, capsys):
    assert server_cli.cmd_status(argparse.Namespace(json=False)) == 1
    assert server_cli.cmd_stop(argparse.Namespace(timeout=1.0)) == 0
    out = capsys.readouterr().out
    assert f"no engine is running (runtime folder {runtime})" in out
    assert "no engine was running" in out


def test_an_engine_whose_model_failed_is_replaced_for_another_model(runtime, tiny_checkpoint, tmp_path):
    missing = tmp_path / "no-model"
    with pytest.raises(daemon.DaemonError, match="does not exist"):
        daemon.ensure_engine(str(missing), "cpu", timeout=60)
    failed = daemon.running_engine()
    assert failed is not None and daemon.probe_health(failed.url)["status"] == "error"
    assert daemon.ensure_engine(str(missing), "cpu") == failed, "the same setting is answered by the same error"
    fixed = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
    assert fixed.pid != failed.pid
    assert not daemon._alive(failed.pid)
    assert daemon.probe_health(fixed.url)["status"] == "ok"


def test_racing_auto_starts_share_one_engine(runtime, tiny_checkpoint):
    racers = [
        subprocess.Popen([sys.executable, "-c", START_SNIPPET, str(tiny_checkpoint)], stdout=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    answers = {racer.communicate(timeout=90)[0].strip() for racer in racers}
    assert all(racer.returncode == 0 for racer in racers)
    assert len(answers) == 1, answers
    pid = int(answers.pop().split()[1])
    assert engine_processes(runtime) == [pid]


async def test_a_killed_engine_is_restarted_and_the_next_request_goes_through(runtime, tiny_checkpoint):
    body = {"prefix": "def total(items):\n    ", "max_tokens": 6, "seed": 5}

    async def infill_restarting(session: aiohttp.ClientSession) -> dict:
        """What the language server's client does: on a dead connection, ensure the engine and send again."""
        endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
        try:
            async with session.post(endpoint.url + "/v1/infill", json=body, headers=endpoint.headers()) as response:
                return await response.json()
        except aiohttp.ClientConnectionError:
            endpoint = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
            async with session.post(endpoint.url + "/v1/infill", json=body, headers=endpoint.headers()) as response:
                return await response.json()

    async with aiohttp.ClientSession() as session:
        first_engine = daemon.ensure_engine(str(tiny_checkpoint), "cpu", timeout=60)
        first = await infill_restarting(session)
        os.kill(first_engine.pid, signal.SIGKILL)
        while daemon._alive(first_engine.pid):
            time.sleep(0.02)
        assert daemon.running_engine() is None
        second = await infill_restarting(session)
    second_engine = daemon.running_engine()
    assert second_engine is not None and second_engine.pid != first_engine.pid
    assert (second["text"], second["tokens"]) == (first["text"], first["tokens"])


def test_idle_exit_stops_the_engine_and_removes_its_port_file(start_engine):
    engine = start_engine("--idle-exit", "0.02")
    assert engine.process.wait(timeout=30) == 0
    assert not engine.port_file.exists()
    assert "no requests for 0.02 minutes" in engine.log_path.read_text()
