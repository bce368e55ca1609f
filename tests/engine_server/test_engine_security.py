"""Security of a real engine process: bearer key (from a file, the environment or, with a warning, the command
line), loopback-only binding without a key, the identity proof, keys kept out of every log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import aiohttp
import pytest

from mercury_lsp.engine.api import identity as engine_identity

from engine_process import raw_exchange

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


def test_a_key_file_serves_and_a_key_on_the_command_line_warns(start_engine, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    from_file = start_engine("--api-key-file", str(key_file))
    on_command_line = start_engine("--api-key", KEY)
    for engine in (from_file, on_command_line):
        engine.wait_ready()
        status, _, _ = raw_request(engine.url, "/v1/models", {"Authorization": f"Bearer {KEY}"})
        assert status == 200
        assert raw_request(engine.url, "/v1/models", {})[0] == 401
    assert "warning: a key on the command line is visible to every user" in on_command_line.log_text()
    assert "warning" not in from_file.log_text()


@pytest.mark.parametrize(
    ("content", "mode", "message"),
    [
        ("", 0o600, "holds no key"),
        ("two words\n", 0o600, "must be one word of printable ASCII"),
        ("ключ\n", 0o600, "is not ASCII text"),
        (KEY, 0o644, None),  # served, with a warning
    ],
)
def test_bad_key_files_get_one_line(tiny_checkpoint, tmp_path, content, mode, message):
    key_file = tmp_path / "key"
    key_file.write_text(content)
    key_file.chmod(mode)
    if message is None:
        done = subprocess.run([sys.executable, "-c", "import sys; from mercury_lsp.engine.server_cli import "
                               "read_key_file; from pathlib import Path; print(read_key_file(Path(sys.argv[1])))",
                               str(key_file)], capture_output=True, text=True, timeout=60)
        assert done.stdout.strip() == KEY
        assert "can be read by other users (chmod 600" in done.stderr
        return
    done = subprocess.run([sys.executable, "-m", "mercury_lsp.engine.cli", "serve", "--port", "0", "--model",
                           str(tiny_checkpoint), "--api-key-file", str(key_file)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert message in line and line.startswith("mercury-engine: error: the API key file")


def raw_request(url: str, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode() + extra + b"\r\n"
    return asyncio.run(raw_exchange(url, request))


async def test_odd_authorization_headers_are_401_and_no_key_reaches_the_log(start_engine):
    engine = start_engine(env={"MERCURY_API_KEY": KEY})
    engine.wait_ready()
    for header in (b"Authorization: Bearer \xff\xfe\xc3(\r\n", "Authorization: Bearer ключ\r\n".encode(),
                   b"Authorization: Basic " + KEY.encode() + b"\r\n", b"Authorization: \r\n"):
        request = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n"
        status, headers, body = await raw_exchange(engine.url, request)
        assert status == 401, body
        assert headers["content-type"].startswith("application/json")
    # A key in a query string, a path, or a malformed request line never reaches the access log.
    for request in (f"GET /health?api_key={KEY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                    f"GET /v1/models?key={KEY}&x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                    f"GET /health?{KEY} HTTP/1.1\r\nHost: x\r\nBroken {KEY}\r\n\r\n".encode(),
                    f"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: {KEY}{'a' * 9000}\r\n\r\n".encode()):
        await raw_exchange(engine.url, request)
    engine.stop()
    log = engine.log_text()
    assert '"GET /health" 200' in log, "the access log is on"
    assert KEY not in log


async def test_the_identity_proof(start_engine):
    keyed = start_engine(env={"MERCURY_API_KEY": KEY})
    open_engine = start_engine(env={"MERCURY_API_KEY": ""})
    challenge = engine_identity.new_challenge()
    async with aiohttp.ClientSession() as session:
        async with session.get(keyed.url + "/health",
                               headers={engine_identity.CHALLENGE_HEADER: challenge}) as response:
            assert engine_identity.verify(KEY, challenge, response.headers.get(engine_identity.PROOF_HEADER))
            assert not engine_identity.verify(KEY, engine_identity.new_challenge(),
                                              response.headers.get(engine_identity.PROOF_HEADER))
        async with session.get(keyed.url + "/health", headers={engine_identity.CHALLENGE_HEADER: "xyz"}) as response:
            assert response.status == 400
            assert "must be 32 to 128 lowercase hex digits" in (await response.json())["error"]["message"]
        async with session.get(open_engine.url + "/health",
                               headers={engine_identity.CHALLENGE_HEADER: challenge}) as response:
            assert response.status == 200
            assert engine_identity.PROOF_HEADER not in response.headers, "an engine without a key proves nothing"
