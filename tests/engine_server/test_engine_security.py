"""Security of a real engine process: bearer key, loopback-only binding without a key, keys kept out of logs."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp

KEY = "s3cret-key-for-tests-only"


async def test_requests_need_the_bearer_key(start_engine):
    engine = start_engine(env={"MERCURY_API_KEY": KEY})
    assert engine.health()["status"] in ("loading", "ok"), "/health stays open so editors see the state"
    engine.wait_ready()
    body = {"prefix": "def f(", "max_tokens": 4}
    async with aiohttp.ClientSession() as session:
        async with session.post(engine.url + "/v1/infill", json=body) as response:
            missing = response.status, await response.json()
        wrong_headers = {"Authorization": "Bearer " + KEY[:-1] + "X"}
        async with session.post(engine.url + "/v1/infill", json=body, headers=wrong_headers) as response:
            wrong = response.status
        async with session.get(engine.url + "/metrics") as response:
            metrics_status = response.status
        right_headers = {"Authorization": f"Bearer {KEY}"}
        async with session.post(engine.url + "/v1/infill", json=body, headers=right_headers) as response:
            right = response.status, await response.json()
    assert missing[0] == 401
    assert missing[1]["error"]["type"] == "authentication_error"
    assert wrong == 401
    assert metrics_status == 401
    assert right[0] == 200 and isinstance(right[1]["text"], str)
    engine.stop()
    assert KEY not in engine.log_path.read_text()


def test_refuses_a_public_address_without_a_key(tiny_checkpoint):
    env = {k: v for k, v in os.environ.items() if k != "MERCURY_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "mercury_lsp.engine.cli", "serve", "--host", "0.0.0.0", "--port", "0",
         "--model", str(tiny_checkpoint)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0 without an API key" in lines[0]
    assert "Traceback" not in done.stderr


def test_bad_options_get_one_line(tiny_checkpoint):
    done = subprocess.run(
        [sys.executable, "-m", "mercury_lsp.engine.cli", "serve", "--port", "0", "--max-batch", "0",
         "--model", str(tiny_checkpoint)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "mercury-engine: error: --max-batch must be positive (got 0)."
