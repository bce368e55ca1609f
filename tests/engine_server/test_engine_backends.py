"""The language server's client against every backend it speaks: Inception's FIM route (a stand-in in Inception's
documented shape, and our own engine), and an OpenAI-compatible /v1/completions with `suffix` (a stand-in in vLLM's
and SGLang's shape, and our own engine) with a key, over HTTPS through a reverse proxy (aiohttp, and nginx where it
is installed) that only a configured CA bundle makes trusted."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine_client import EngineClient, EngineError

from checkpoints import SAMPLE_CODE
from engine_process import EngineProcess
from standins import KEY, SERVED_MODEL, LocalCA, TlsProxy, inception, vllm

PREFIX, SUFFIX = SAMPLE_CODE[:120], SAMPLE_CODE[120:300]
REQUEST = InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=12, seed=3)


@pytest.fixture
def ca(tmp_path: Path) -> LocalCA:
    return LocalCA(tmp_path)


async def direct(url: str, path: str, body: dict, key: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(url + path, json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.json()


async def use(client: EngineClient, request: InfillRequest = REQUEST):
    try:
        return await client.health(), await client.infill(request)
    finally:
        await client.close()


# -- inception ----------------------------------------------------------------------------------------------------

async def test_inception_backend_speaks_inceptions_documented_request():
    async with inception() as stand_in:
        health, result = await use(EngineClient(stand_in.url + "/v1", "inception", KEY))
        _, one_line = await use(EngineClient(stand_in.url, "inception", KEY),
                                InfillRequest(prefix="x = ", suffix="\ny = 2\n", single_line=True, n=3))
    assert health == {"status": "ok", "model": "mercury-edit-2"}
    assert result.texts == (f"<fill {len(PREFIX)}:{len(SUFFIX)}>",)
    assert result.tokens == 14 and result.steps is None and result.engine_ms is None
    first, second = stand_in.requests
    assert first == {"prompt": PREFIX, "suffix": SUFFIX, "model": "mercury-edit-2", "max_tokens": 12}
    assert second["stop"] == ["\n"] and "n" not in second, "only fields Inception's request documents"
    assert all(h["Authorization"] == f"Bearer {KEY}" for h in stand_in.headers)


async def test_inception_errors_reach_the_user_in_one_sentence(monkeypatch):
    monkeypatch.delenv("MERCURY_API_KEY", raising=False)
    monkeypatch.delenv("INCEPTION_API_KEY", raising=False)
    async with inception() as stand_in:
        with pytest.raises(EngineError) as no_key:
            await use(EngineClient(stand_in.url, "inception"))
        with pytest.raises(EngineError) as no_model:
            await use(EngineClient(stand_in.url, "inception", KEY, "jupyter-2"))
        monkeypatch.setenv("INCEPTION_API_KEY", KEY)
        _, from_environment = await use(EngineClient(stand_in.url, "inception"))
    assert (no_key.value.status, str(no_key.value)) == (401, "The engine refused the request: Incorrect API key "
                                                             "provided")
    assert (no_model.value.status, str(no_model.value)) == (404, "The engine refused the request: model "
                                                                 "`jupyter-2` not found")
    assert from_environment.texts


async def test_inception_backend_against_our_engine(shared_engine):
    _, result = await use(EngineClient(shared_engine.url, "inception"))
    answer = await direct(shared_engine.url, "/v1/fim/completions",
                          {"model": "mercury-edit-2", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 12,
                           "seed": 3})
    infill = await direct(shared_engine.url, "/v1/infill", {"prefix": PREFIX, "suffix": SUFFIX, "max_tokens": 12})
    assert result.texts == (answer["choices"][0]["text"],)
    assert result.tokens == answer["usage"]["completion_tokens"] and result.steps == answer["steps"]
    (completion,) = result.completions
    if completion.text == infill["text"]:  # no default stop string cut it: the spans are the infill's
        assert [(s.start, s.end) for s in completion.spans] == [(s["start"], s["end"]) for s in infill["spans"]]
        assert [s.confidence for s in completion.spans] == pytest.approx(
            [s["confidence"] for s in infill["spans"]], abs=2e-4)
    assert completion.spans and completion.spans[-1].end == len(completion.text)


# -- openai-compatible over HTTPS ---------------------------------------------------------------------------------

async def test_openai_backend_through_a_tls_proxy_to_a_vllm_shaped_server(ca):
    async with vllm() as stand_in, TlsProxy(stand_in.url, ca) as proxy:
        health, result = await use(EngineClient(proxy.url + "/v1", "openai", KEY, SERVED_MODEL,
                                                ca_bundle=str(ca.bundle), fim_template="qwen"),
                                   InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=12, n=2))
        with pytest.raises(EngineError, match="has a certificate this machine does not trust") as untrusted:
            await use(EngineClient(proxy.url, "openai", KEY, SERVED_MODEL, fim_template="qwen"))
        with pytest.raises(EngineError, match="does not exist") as wrong_model:
            await use(EngineClient(proxy.url, "openai", KEY, "other", ca_bundle=str(ca.bundle)))
    assert health["status"] == "ok"
    prompt = f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>"
    assert result.texts == (f"total + {len(prompt)}",) * 2
    assert result.tokens == 10
    sent = stand_in.requests[0]
    assert sent.pop("stop")[:2] == ["<|endoftext|>", "<|fim_prefix|>"]
    assert sent == {"prompt": prompt, "max_tokens": 12, "model": SERVED_MODEL, "n": 2, "temperature": 0.0}
    assert untrusted.value.unreachable
    assert wrong_model.value.status == 404


def test_a_missing_ca_bundle_is_one_sentence(tmp_path):
    with pytest.raises(EngineError, match=r"The CA bundle .*nothing.pem cannot be used \(No such file"):
        EngineClient("https://127.0.0.1:1", "openai", ca_bundle=str(tmp_path / "nothing.pem"))


async def read_stream(url: str, path: str, body: dict, ca_bundle: Path) -> str:
    import ssl

    context = ssl.create_default_context(cafile=str(ca_bundle))
    async with aiohttp.ClientSession() as session:
        async with session.post(url + path, json={**body, "stream": True}, ssl=context,
                                headers={"Authorization": f"Bearer {KEY}"}) as response:
            assert response.status == 200
            raw = (await response.read()).decode()
    events = [block.removeprefix("data: ") for block in raw.split("\n\n") if block]
    assert events[-1] == "[DONE]"
    return "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1] if json.loads(e)["choices"])


async def check_our_engine_behind(proxy_url: str, engine: EngineProcess, ca: LocalCA) -> None:
    health, result = await use(EngineClient(proxy_url + "/v1", "openai", KEY, "any", ca_bundle=str(ca.bundle)))
    infill = await direct(engine.url, "/v1/infill", {"prefix": PREFIX, "suffix": SUFFIX, "max_tokens": 12,
                                                     "seed": 3}, key=KEY)
    assert health["status"] == "ok"
    assert result.texts == (infill["text"],)
    assert [(s.start, s.end) for s in result.completions[0].spans] == [(s["start"], s["end"])
                                                                       for s in infill["spans"]]
    streamed = await read_stream(proxy_url, "/v1/completions",
                                 {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 12, "seed": 3}, ca.bundle)
    assert streamed == infill["text"]
    with pytest.raises(EngineError) as refused:
        await use(EngineClient(proxy_url, "openai", "wrong-key", ca_bundle=str(ca.bundle)))
    assert refused.value.status == 401


async def test_openai_backend_through_a_tls_proxy_to_our_engine_with_a_key(keyed_engine, ca):
    async with TlsProxy(keyed_engine.url, ca) as proxy:
        await check_our_engine_behind(proxy.url, keyed_engine, ca)


NGINX_CONF = """
worker_processes 1;
error_log {folder}/error.log;
pid {folder}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_openai_backend_through_nginx_to_our_engine_with_a_key(keyed_engine, ca, tmp_path):
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(folder=tmp_path, port=port, cert=ca.cert_file, key=ca.key_file,
                                      upstream=keyed_engine.url))
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "nginx did not listen"
                await asyncio.sleep(0.05)
        await check_our_engine_behind(f"https://127.0.0.1:{port}", keyed_engine, ca)
    finally:
        process.terminate()
        process.wait(10)
