"""The language server passes its `model` setting (a hub id) to the engine it starts, and shows the engine's download
as $/progress. The hub is a loopback stand-in (`HF_ENDPOINT`); nothing reaches the real one."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from session import session

from mercury_lsp.engine import daemon

from hub_standin import HubStandin

URI = "file:///work/project/calc.py"
SOURCE = "def add(a, b):\n    return a + b\n"


async def test_a_hub_model_is_downloaded_with_progress_in_the_editor(tmp_path: Path, tiny_checkpoint: Path,
                                                                     monkeypatch) -> None:
    hub = HubStandin().start()
    commit = hub.add_repo("org/tiny", tiny_checkpoint)
    hub.misbehave.pace["model.safetensors"] = 10  # 2 s of download to watch
    monkeypatch.setenv("MERCURY_RUNTIME_DIR", str(tmp_path / "runtime"))
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    try:
        async with session({"model": "org/tiny", "device": "cpu"}, env=env) as live:
            live.open(URI, SOURCE)
            ready = await live.wait_for_state("ready", timeout=90)
            assert "org/tiny" in ready["message"]
            deadline = time.monotonic() + 5  # $/progress end follows the ready status
            reports = []
            while time.monotonic() < deadline:
                reports = [r for rs in live.client.progress_reports.values() for r in rs]
                if reports and reports[-1].kind == "end":
                    break
                await asyncio.sleep(0.05)
            messages = [r.message for r in reports if r.kind in ("begin", "report") and r.message]
            downloading = [m for m in messages if m.startswith("Downloading org/tiny: ")]
            assert downloading and any("%" in m for m in downloading), messages
        info = daemon.read_port_file()
        assert info is not None and info["model"] == "org/tiny"
        assert (tmp_path / "hf-home" / "hub" / "models--org--tiny" / "snapshots" / commit).is_dir()
    finally:
        daemon.stop_engine()
        hub.stop()
