"""The real language server and its auto-started engine, with another local user on the machine: when the engine
has exited and a stranger (nobody, through setpriv) holds its port, the buffer does not leave the editor; the
language server starts a new engine instead."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

from session import session

from mercury_lsp.engine import daemon

from other_user import squatter

URI = "file:///work/project/secret.py"
TEXT = "PRIVATE_TOKEN = 'do-not-leak-7f3a'\n\ndef total(items):\n    return \n"


async def ready_again(live, timeout: float) -> None:
    """Wait for the engine state to go through loading back to ready (statuses of earlier answers may trail)."""
    deadline = time.monotonic() + timeout
    while True:
        states = [status["state"] for status in live.statuses]
        if "loading" in states and "ready" in states[states.index("loading"):]:
            return
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.1)


async def test_a_stranger_on_the_engines_old_port_gets_no_buffer(tmp_path: Path, tiny_checkpoint: Path) -> None:
    runtime = tmp_path / "runtime"
    env = {**os.environ, "MERCURY_RUNTIME_DIR": str(runtime), "OMP_NUM_THREADS": "1"}
    settings = {"model": str(tiny_checkpoint), "device": "cpu", "steps": 4, "maxTokens": 8, "debounceMs": 0}
    previous = os.environ.get("MERCURY_RUNTIME_DIR")
    os.environ["MERCURY_RUNTIME_DIR"] = str(runtime)  # for daemon.* below
    try:
        async with session(settings, env=env) as live:
            live.open(URI, TEXT)
            await live.inline(URI, 3, 11)  # starts the engine
            await live.wait_for_state("ready", timeout=90)
            await live.inline(URI, 3, 11)
            old = daemon.read_port_file()
            os.kill(old["pid"], signal.SIGKILL)
            while daemon._alive(old["pid"]):
                time.sleep(0.02)
            live.statuses.clear()
            with squatter(int(old["url"].rsplit(":", 1)[1])) as record:
                live.insert(URI, 2, 3, 11, "len(")  # a new cursor: nothing cached for it
                answer = await live.inline(URI, 3, 15)
                assert list(answer.items) == []
                await ready_again(live, timeout=90)
                recorded = record.read_text() if record.exists() else ""
            new = daemon.read_port_file()
            sources = []
            for version, column in enumerate(range(15, 45), start=3):  # the new engine answers, soon
                live.insert(URI, version, 3, column, "i")
                await live.inline(URI, 3, column + 1)
                sources = [s.get("source") for s in live.statuses]
                if "engine" in sources:
                    break
            assert "engine" in sources, live.statuses
    finally:
        daemon.stop_engine(timeout=5)
        if previous is None:
            os.environ.pop("MERCURY_RUNTIME_DIR", None)
        else:
            os.environ["MERCURY_RUNTIME_DIR"] = previous
    seen = [json.loads(line) for line in recorded.splitlines()]
    assert seen, "the language server did knock at the old port"
    assert {tuple(entry["line"].split()[:2]) for entry in seen} == {("GET", "/health")}
    assert "do-not-leak" not in recorded and "PRIVATE_TOKEN" not in recorded
    assert all("Authorization" not in entry["headers"] for entry in seen)
    assert new["pid"] != old["pid"] and new["url"] != old["url"]
