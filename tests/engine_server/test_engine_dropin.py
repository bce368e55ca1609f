"""The engine as a drop-in for the tools people already run, driven by real clients: the `ollama` Python package
on /api/*, the OpenAI SDK with a prompt in each FIM template, and llama.vim's and llama.vscode's /infill bodies
(recorded in tests/data/llama_infill with their origin). Each must fill the same gap the native /v1/infill fills."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import ollama
import openai
import pytest

from mercury_lsp.engine.api.file_header import extra_file, file_header
from mercury_lsp.engine.api.fim_templates import TEMPLATES, FilePart, render
from mercury_lsp.models import BUNDLED_MODEL

from checkpoints import SAMPLE_CODE
from engine_process import EngineProcess, metric
from standins import KEY

DATA = Path(__file__).resolve().parents[1] / "data"
PREFIX = SAMPLE_CODE[:250]
SUFFIX = SAMPLE_CODE[250:310]
TOKENS = 12
AUTH = {"Authorization": f"Bearer {KEY}"}


def post(engine: EngineProcess, path: str, body: dict | bytes, headers: dict | None = None) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(engine.url + path, data, {"Content-Type": "application/json",
                                                                **(AUTH if headers is None else headers)})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def infill(engine: EngineProcess, **fields) -> str:
    status, body = post(engine, "/v1/infill", {"max_tokens": TOKENS, **fields})
    assert status == 200, body
    return json.loads(body)["text"]


@pytest.fixture
def ollama_client(keyed_engine: EngineProcess) -> ollama.Client:
    return ollama.Client(host=keyed_engine.url, headers=AUTH, timeout=60)


@pytest.fixture
def openai_client(keyed_engine: EngineProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=keyed_engine.url + "/v1", api_key=KEY, max_retries=0, timeout=60) as sdk:
        yield sdk


# -- Ollama -------------------------------------------------------------------------------------------------------

def test_ollama_generate_with_suffix_whole_and_streamed(keyed_engine, ollama_client):
    expected = infill(keyed_engine, prefix=PREFIX, suffix=SUFFIX)
    whole = ollama_client.generate(model="qwen2.5-coder:1.5b-base", prompt=PREFIX, suffix=SUFFIX,
                                   options={"num_predict": TOKENS, "temperature": 0})
    assert whole.done and whole.done_reason in ("stop", "length")
    assert whole.response == expected
    assert whole.model == "qwen2.5-coder:1.5b-base", "the name the client asked for is the name it gets back"
    assert whole.eval_count >= 1 and whole.prompt_eval_count > 0 and whole.total_duration > 0
    parts = list(ollama_client.generate(model="x", prompt=PREFIX, suffix=SUFFIX, stream=True,
                                        options={"num_predict": TOKENS}))
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == expected


def test_ollama_stop_strings_and_a_raw_fim_prompt(keyed_engine, ollama_client):
    expected = infill(keyed_engine, prefix=PREFIX, suffix=SUFFIX)
    raw = ollama_client.generate(model="x", prompt=render("qwen", PREFIX, SUFFIX), raw=True,
                                 options={"num_predict": TOKENS})
    assert raw.response == expected, "a client that writes the FIM prompt itself gets the same infill"
    if expected:
        stop = expected[len(expected) // 2 :][:2]
        cut = ollama_client.generate(model="x", prompt=PREFIX, suffix=SUFFIX,
                                     options={"num_predict": TOKENS, "stop": [stop]})
        assert cut.response == expected[: expected.index(stop)] and cut.done_reason == "stop"


def test_ollama_lists_shows_and_loads_the_model(keyed_engine, ollama_client):
    health = keyed_engine.health()
    (model,) = ollama_client.list().models
    assert model.model == health["model"] and model.size > 0 and model.details.format == "safetensors"
    shown = ollama_client.show("anything")
    assert "insert" in shown.capabilities and ".Suffix" in shown.template
    loaded = ollama_client.generate(model="x", prompt="")
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    status, body = post(keyed_engine, "/api/version", b"", AUTH)
    assert status == 405
    with urllib.request.urlopen(urllib.request.Request(keyed_engine.url + "/api/version", headers=AUTH)) as response:
        assert json.loads(response.read())["version"].count(".") == 2


def test_ollama_routes_keep_the_key_and_the_json_errors(keyed_engine):
    with pytest.raises(ollama.ResponseError) as refused:
        ollama.Client(host=keyed_engine.url, timeout=30).list()
    assert refused.value.status_code == 401
    for body, field in [({"model": "x", "prompt": 5}, "prompt"), ({"prompt": "a", "options": {"num_predict": "9"}},
                        "num_predict"), ({"prompt": "a", "format": "json"}, "format"), ([], "object")]:
        status, answer = post(keyed_engine, "/api/generate", body)
        assert status == 400 and field in json.loads(answer)["error"]["message"]
        assert json.loads(answer)["error"]["type"] == "invalid_request_error"


# -- FIM templates through the OpenAI SDK -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_openai_sdk_with_each_fim_template(keyed_engine, openai_client, name):
    expected = infill(keyed_engine, prefix=PREFIX, suffix=SUFFIX)
    answer = openai_client.completions.create(model="x", prompt=render(name, PREFIX, SUFFIX), max_tokens=TOKENS)
    assert answer.choices[0].text == expected
    fim = openai_client.completions.create(model="x", prompt=render(name, PREFIX, SUFFIX), max_tokens=TOKENS,
                                           stop=None, extra_body={}, stream=False)
    assert fim.choices[0].text == expected


def test_a_qwen_repository_prompt_gives_header_and_extra_context(keyed_engine, openai_client):
    other = FilePart("lib/tax.py", "RATE = 0.2\n")
    prompt = render("qwen", PREFIX, SUFFIX, [other], repo_name="shop", path="lib/cart.py")
    expected = infill(keyed_engine, prefix=PREFIX, suffix=SUFFIX, header=file_header("lib/cart.py", "python"),
                      extra_context=extra_file(other.path, other.text))
    answer = openai_client.completions.create(model="x", prompt=prompt, max_tokens=TOKENS)
    assert answer.choices[0].text == expected
    streamed = openai_client.completions.create(model="x", prompt=prompt, max_tokens=TOKENS, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected


# -- llama.cpp /infill ----------------------------------------------------------------------------------------------

def recorded(name: str) -> dict:
    return json.loads((DATA / "llama_infill" / f"{name}.json").read_text())["body"]


@pytest.mark.parametrize("name", ["llama_vim_fim", "llama_vscode_fim"])
def test_llama_infill_bodies_of_llama_vim_and_llama_vscode(keyed_engine, name):
    body = recorded(name)
    extra = "".join(extra_file(c["filename"], c["text"]) for c in body["input_extra"])
    expected = infill(keyed_engine, prefix=body["input_prefix"] + body["prompt"], suffix=body["input_suffix"],
                      extra_context=extra, max_tokens=64)
    status, raw = post(keyed_engine, "/infill", body | {"n_predict": 64})
    assert status == 200, raw
    answer = json.loads(raw)
    assert answer["content"] == expected
    if "response_fields" in body:  # llama.vim reads the figures flattened by path
        assert set(answer) == {f for f in body["response_fields"]} and answer["timings/predicted_n"] >= 1
    else:
        assert answer["stop"] and answer["tokens_cached"] > 0 and answer["timings"]["predicted_n"] >= 1
    status, raw = post(keyed_engine, "/infill", body | {"n_predict": 64, "stream": True, "response_fields": []})
    events = [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: ")]
    assert status == 200 and events[-1]["stop"] and not any(e["stop"] for e in events[:-1])
    assert "".join(e["content"] for e in events) == expected


@pytest.mark.parametrize("name", ["llama_vim_ring_update", "llama_vscode_prepare"])
def test_llama_context_only_requests_are_answered_at_once(keyed_engine, name):
    body = recorded(name)
    status, raw = post(keyed_engine, "/infill", body)
    assert status == 200
    answer = json.loads(raw)
    assert answer == {} if body.get("response_fields") == [""] else answer["content"] == ""


def test_llama_infill_errors_and_metrics(keyed_engine):
    for body, field in [({"input_prefix": 3}, "input_prefix"), ({"input_extra": [{"text": 1}]}, "text"),
                        ({"input_extra": "x"}, "input_extra"), ({"n_predict": 1.5}, "n_predict")]:
        status, answer = post(keyed_engine, "/infill", body)
        assert status == 400 and field in json.loads(answer)["error"]["message"]
    assert post(keyed_engine, "/infill", {"input_prefix": "a"}, {})[0] == 401
    with urllib.request.urlopen(urllib.request.Request(keyed_engine.url + "/metrics", headers=AUTH)) as response:
        text = response.read().decode()
    assert metric(text, "mercury_requests_total", 'endpoint="/infill",status="400"') >= 4
    assert metric(text, "mercury_requests_total", 'endpoint="/infill",status="401"') >= 1


# -- the bundled model ------------------------------------------------------------------------------------------

def test_three_clients_get_the_bundled_model_s_completion(start_engine):
    text = (DATA / "demo.py").read_text()
    lines = text.split("\n")
    cursor = sum(len(line) + 1 for line in lines[:5]) + 11  # 6:12, the README's demo
    prefix, suffix = text[:cursor], text[cursor:]
    engine = start_engine(model=BUNDLED_MODEL)
    engine.wait_ready()
    client = ollama.Client(host=engine.url, timeout=120)
    by_ollama = client.generate(model="mercury", prompt=prefix, suffix=suffix, options={"num_predict": 16}).response
    with openai.OpenAI(base_url=engine.url + "/v1", api_key="none", max_retries=0, timeout=120) as sdk:
        by_openai = sdk.completions.create(model="x", prompt=render("qwen", prefix, suffix), max_tokens=16)
    status, raw = post(engine, "/infill", recorded("llama_vim_fim") | {
        "input_prefix": prefix[: prefix.rindex("\n") + 1], "prompt": prefix[prefix.rindex("\n") + 1 :],
        "input_suffix": suffix, "input_extra": [], "n_predict": 16}, {})
    assert status == 200, raw
    assert by_ollama.strip(), "the bundled model fills the demo's gap"
    assert by_openai.choices[0].text == by_ollama == json.loads(raw)["content"]
