"""One engine per machine, even through a hang: the real language server, with its own runtime folder, whose
engine freezes (SIGSTOP for 8 s) and comes back (SIGCONT). The language server gives up on it, stops it and starts
another; at the end exactly one engine of that runtime folder runs, and none after `stop`."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from session import session

from mercury_lsp.engine import daemon

URI = "file:///work/project/calc.py"
SOURCE = "def add(a, b):\n    return a + b\n\n\ndef total(items):\n    result = []\n    return sum(result)\n"


def engines_of(runtime: Path) -> list[int]:
    """Pids of live `mercury-engine serve` processes whose port file is in this runtime folder."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"serve" in args and str(runtime / "engine.json").encode() in args and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.slow
async def test_a_frozen_engine_is_stopped_before_another_starts(tmp_path: Path, tiny_checkpoint: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(runtime))
    settings = {"model": str(tiny_checkpoint), "device": "cpu", "steps": 4, "debounceMs": 30, "debounceMaxMs": 60,
                "minConfidence": 0, "maxLines": None}
    frozen = None
    try:
        async with session(settings, env={**os.environ}) as live:
            live.open(URI, SOURCE)
            await live.wait_for_state("ready", timeout=90)
            assert (await live.inline(URI, 5, 15)).items is not None
            frozen = daemon.read_port_file()["pid"]
            os.kill(frozen, signal.SIGSTOP)
            frozen_at = time.monotonic()
            live.statuses.clear()
            assert list((await live.inline(URI, 4, 17)).items) == []  # the health check times out: nothing
            deadline = time.monotonic() + 90
            while (daemon.read_port_file() or {}).get("pid") in (None, frozen) or live.statuses[-1:] == [] \
                    or live.statuses[-1]["state"] != "ready":
                assert time.monotonic() < deadline, live.statuses
                await asyncio.sleep(0.1)
            replacement = daemon.read_port_file()["pid"]
            remaining = 8 - (time.monotonic() - frozen_at)
            if remaining > 0:
                await asyncio.sleep(remaining)
            try:
                os.kill(frozen, signal.SIGCONT)  # the user's 8 s are over (it may be gone already)
            except ProcessLookupError:
                pass
            await asyncio.sleep(0.5)
            assert engines_of(runtime) == [replacement]
            assert (await live.inline(URI, 6, 10)).items is not None
        assert engines_of(runtime) == [replacement]  # the editor closed: the shared engine stays, alone
    finally:
        if frozen is not None:
            try:
                os.kill(frozen, signal.SIGCONT)
            except ProcessLookupError:
                pass
        daemon.stop_engine()
    assert engines_of(runtime) == []


async def test_an_engine_whose_port_file_names_another_exits_on_its_own(tmp_path: Path, tiny_checkpoint: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen engine that was not stopped (its runtime folder lost the secret) exits once it runs again and
    finds its port file naming a newer engine."""
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(runtime))
    first = await asyncio.to_thread(daemon.ensure_engine, str(tiny_checkpoint), "cpu", 0)
    try:
        os.kill(first.pid, signal.SIGSTOP)
        (runtime / daemon.SECRET_FILE).unlink()  # without the secret it is not ours to stop
        second = await asyncio.to_thread(daemon.ensure_engine, str(tiny_checkpoint), "cpu", 0)
        assert second.pid != first.pid and sorted(engines_of(runtime)) == sorted([first.pid, second.pid])
        os.kill(first.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while first.pid in engines_of(runtime):
            assert time.monotonic() < deadline, "the replaced engine kept running"
            await asyncio.sleep(0.1)
        assert engines_of(runtime) == [second.pid]
    finally:
        try:
            os.kill(first.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        daemon.stop_engine()
    assert engines_of(runtime) == []
