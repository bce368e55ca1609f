"""The engine binds before it loads: /health says loading meanwhile, and error (staying up) when the load fails."""

from __future__ import annotations

import os
import shutil
import threading
import time

import aiohttp

from mercury_lsp.engine.api.edit_completions import EditPrompt, build_edit_prompt


async def test_health_says_loading_until_the_model_is_read(start_engine, tiny_checkpoint, tmp_path):
    # The model's config.json is a pipe: the loader blocks on it until the test writes it, so the
    # loading window is certain, not a race.
    model = tmp_path / "slow-model"
    shutil.copytree(tiny_checkpoint, model)
    config = (model / "config.json").read_bytes()
    (model / "config.json").unlink()
    os.mkfifo(model / "config.json")
    engine = start_engine(model=model)
    assert engine.health()["status"] == "loading"
    async with aiohttp.ClientSession() as session:
        async with session.post(engine.url + "/v1/infill", json={"prefix": "x"}) as response:
            early = response.status, await response.json(), response.headers.get("Retry-After")
        edit = {"messages": [{"role": "user", "content": build_edit_prompt(EditPrompt("a.py", "x = 1\n", (0, 6), 5, ""))}]}
        async with session.post(engine.url + "/v1/edit/completions", json=edit) as response:
            early_edit = response.status, await response.json(), response.headers.get("Retry-After")
    writer = threading.Thread(target=(model / "config.json").write_bytes, args=(config,))
    writer.start()
    engine.wait_ready()
    writer.join()
    assert early[0] == 503
    assert "loading" in early[1]["error"]["message"]
    assert early[2] is not None
    assert early_edit[0] == 503 and "loading" in early_edit[1]["error"]["message"] and early_edit[2] == "2"


async def test_a_failed_load_is_reported_and_the_engine_stays_up(start_engine, tmp_path):
    missing = tmp_path / "no-such-model"
    engine = start_engine(model=missing)
    deadline = time.monotonic() + 30
    while (health := engine.health())["status"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert health["status"] == "error"
    assert str(missing) in health["message"]
    async with aiohttp.ClientSession() as session:
        async with session.post(engine.url + "/v1/infill", json={"prefix": "x"}) as response:
            status, body = response.status, await response.json()
    assert status == 503
    assert body["error"]["message"] == health["message"]
    assert engine.process.poll() is None
