"""The HTTP API of a real engine process: health, infill, OpenAI and Inception completions, errors, metrics."""

from __future__ import annotations

import json
import math

import aiohttp
import pytest
import torch

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.infill import InfillEngine, InfillRequest

from checkpoints import SAMPLE_CODE
from engine_process import metric, raw_exchange

PREFIX = SAMPLE_CODE[:120]
SUFFIX = SAMPLE_CODE[120:300]


@pytest.fixture(scope="module")
def reference(tiny_checkpoint):
    """The same checkpoint run in-process, without HTTP or batching (one thread, like the test engines)."""
    torch.set_num_threads(1)
    return InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu"))


async def post(url: str, path: str, body, **kwargs) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        send = {"json": body} if not isinstance(body, (bytes, str)) else {"data": body}
        async with session.post(url + path, **send, **kwargs) as response:
            return response.status, await response.json(), dict(response.headers)


async def get_text(url: str, path: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + path) as response:
            assert response.status == 200
            return await response.text()


def test_health_reports_the_loaded_model(shared_engine, tiny_checkpoint):
    health = shared_engine.health()
    assert health["status"] == "ok"
    assert health["model"] == tiny_checkpoint.name
    assert health["device"] == "cpu"
    assert health["dtype"] == "float32"  # the tests' MERCURY_CPU_DTYPE (tests/conftest.py)
    assert health["context_tokens"] == 4096  # the tiny checkpoint's max_position_embeddings


async def test_infill_matches_the_engine_run_in_process(shared_engine, reference):
    status, body, _ = await post(shared_engine.url, "/v1/infill",
                                 {"prefix": PREFIX, "suffix": SUFFIX, "max_tokens": 12, "seed": 3})
    assert status == 200, body
    expected = reference.infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=12, seed=3))
    assert body["text"] == expected.text
    assert body["tokens"] == expected.tokens
    assert body["steps"] == expected.steps
    assert body["ms"] > 0
    assert "candidates" not in body


async def test_infill_candidates(shared_engine, reference):
    status, body, _ = await post(shared_engine.url, "/v1/infill",
                                 {"prefix": PREFIX, "suffix": SUFFIX, "max_tokens": 10, "n": 3})
    assert status == 200, body
    expected = reference.infill(InfillRequest(prefix=PREFIX, suffix=SUFFIX, max_tokens=10, n=3))
    assert body["candidates"] == expected.candidates
    assert body["text"] == body["candidates"][0]


async def test_completions_speak_the_openai_shape(shared_engine):
    _, infill, _ = await post(shared_engine.url, "/v1/infill", {"prefix": PREFIX, "suffix": SUFFIX, "max_tokens": 12})
    status, body, _ = await post(shared_engine.url, "/v1/completions", {
        "model": "anything", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 12, "temperature": 0, "n": 2,
    })
    assert status == 200, body
    assert body["object"] == "text_completion"
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert body["choices"][0]["text"] == infill["text"]
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["completion_tokens"] >= infill["tokens"]
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_completions_take_a_prompt_list_and_list_the_model(shared_engine, tiny_checkpoint):
    status, body, _ = await post(shared_engine.url, "/v1/completions",
                                 {"prompt": [PREFIX], "max_tokens": 4, "suffix": None, "seed": None})
    assert status == 200 and len(body["choices"]) == 1
    async with aiohttp.ClientSession() as session:
        async with session.get(shared_engine.url + "/v1/models") as response:
            models = await response.json()
    assert [m["id"] for m in models["data"]] == [tiny_checkpoint.name]


async def test_cancel_of_an_unknown_id_says_so(shared_engine):
    status, body, _ = await post(shared_engine.url, "/v1/cancel", {"id": "nobody"})
    assert status == 200 and body == {"id": "nobody", "cancelled": False}
    status, body, _ = await post(shared_engine.url, "/v1/cancel", {})
    assert status == 400


async def test_completions_cut_text_at_stop_strings(shared_engine):
    request = {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 24, "seed": 1}
    _, full, _ = await post(shared_engine.url, "/v1/completions", request)
    text = full["choices"][0]["text"]
    assert len(text) >= 4, "the tiny model should fill a 24-token canvas"
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    _, cut, _ = await post(shared_engine.url, "/v1/completions", {**request, "stop": [stop, "\u2603never"]})
    choice = cut["choices"][0]
    assert choice["text"] == text[: text.find(stop)]
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("body", "status", "phrase"),
    [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        ({"prefix": 12}, 400, "'prefix' must be a string"),
        ('{"prefix": "ab\\ud800"}', 400, "'prefix' has a lone surrogate"),
        ({"prefix": "x", "max_tokens": "8"}, 400, "'max_tokens' must be an integer"),
        ({"prefix": "x", "single_line": 1}, 400, "'single_line' must be true or false"),
        ({"prefix": "x", "max_tokens": 100000}, 400, "'max_tokens' must be an integer from 1"),
        ({"prefix": "x", "colour": "red"}, 400, "Unknown field 'colour'"),
        ({"suffix": "x"}, 400, "'prefix' is required"),
        ("[" * 100_000, 400, "nested too deeply"),
        ('{"prefix": "x", "timeout_ms": NaN}', 400, "NaN is not a JSON number"),
        ('{"prefix": "x", "seed": ' + "9" * 5000 + "}", 400, "not valid JSON"),
        ({"prefix": "x", "seed": 2**64}, 400, "'seed' must be an integer from 0 to 18446744073709551615"),
        ({"prefix": "x", "seed": -1}, 400, "'seed' must be an integer from 0"),
        ({"prefix": "x", "timeout_ms": 0}, 400, "'timeout_ms' must be a number above 0 and at most 600000"),
        ({"prefix": "x", "timeout_ms": 10**9}, 400, "'timeout_ms' must be a number above 0 and at most 600000"),
        ({"prefix": "x", "n": 1000}, 400, "'n' must be an integer from 1 to 8"),
        ({"prefix": "x", "max_tokens": -1}, 400, "'max_tokens' must be an integer from 1 to 256"),
        (b'{"prefix": "\xc3\x28"}', 400, "not UTF-8"),
    ],
)
async def test_bad_infill_requests_get_one_sentence(shared_engine, body, status, phrase):
    got, payload, _ = await post(shared_engine.url, "/v1/infill", body)
    assert got == status
    assert phrase in payload["error"]["message"]
    assert payload["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/fim/completions"])
@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ({"prompt": 5}, "'prompt' must be a string"),
        ({"suffix": "x"}, "'prompt' is required"),
        ({"prompt": ["a", "b"]}, "one prompt per request"),
        ({"prompt": "x", "stop": 3}, "'stop' must be"),
        ({"prompt": "x", "stop": [""]}, "'stop' must be"),
        ({"prompt": "x", "stream": "yes"}, "'stream' must be true or false"),
        ({"prompt": "x", "stream_options": {"include_usage": True}}, "needs stream: true"),
        ({"prompt": "x", "n": 99}, "'n' must be an integer from 1 to 8"),
        ({"prompt": "x", "max_tokens": 0}, "'max_tokens' must be an integer from 1 to 256"),
        ({"prompt": "x", "max_tokens": 512}, "'max_tokens' must be an integer from 1 to 256"),
        ({"prompt": "x", "top_p": 2}, "'top_p' must be a number from 0 to 1"),
        ({"prompt": "x", "top_k": 0}, "'top_k' must be a number from -1 to 1000"),
        ({"prompt": "x", "echo": True}, "'echo' is not supported"),
        ({"prompt": "x", "logprobs": 9}, "'logprobs' must be an integer from 0 to 5"),
        ({"prompt": "x", "model": 3}, "'model' must be a string"),
        ({"prompt": "x", "seed": 2**64}, "'seed' must be an integer from 0 to 18446744073709551615"),
        ({"prompt": "x", "timeout_ms": 1e12}, "'timeout_ms' must be a number above 0 and at most 600000"),
    ],
)
async def test_bad_completion_requests_get_one_sentence(shared_engine, path, body, phrase):
    status, payload, _ = await post(shared_engine.url, path, body)
    assert status == 400, payload
    assert phrase in payload["error"]["message"]
    assert payload["error"]["type"] == "invalid_request_error"


async def test_fim_completions_speak_inceptions_shape(shared_engine, tiny_checkpoint):
    """The fields Inception's FIMCompletionResponse requires, its usage fields, its default stop strings, and a
    warning for the sampling fields a diffusion sampler does not apply."""
    body = {"model": "mercury-edit-2", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 24, "seed": 2}
    status, answer, _ = await post(shared_engine.url, "/v1/fim/completions", body)
    assert status == 200, answer
    assert {"id", "object", "created", "model", "choices", "usage"} <= set(answer)
    assert answer["object"] == "text_completion" and answer["model"] == tiny_checkpoint.name
    assert set(answer["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens",
                                    "cached_input_tokens"}
    (choice,) = answer["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] in ("stop", "length")
    assert "\n\n" not in choice["text"] and "\n \n" not in choice["text"]
    assert "warning" not in answer
    _, no_stop, _ = await post(shared_engine.url, "/v1/completions", body)
    text = no_stop["choices"][0]["text"]
    cut = min((i for i in (text.find("\n\n"), text.find("\n \n")) if i >= 0), default=len(text))
    assert choice["text"] == text[:cut], "Inception's default stop strings, nothing else, make the difference"
    _, warned, _ = await post(shared_engine.url, "/v1/fim/completions",
                              {**body, "top_p": 0.5, "presence_penalty": 1.5, "top_k": -1, "frequency_penalty": 0})
    assert warned["warning"] == ("This engine does not apply top_p, presence_penalty; the answer was sampled "
                                 "without them.")
    assert warned["choices"][0]["text"] == choice["text"]


async def test_answers_carry_confidence_as_legacy_logprobs(shared_engine):
    """tokens spell the text, text_offset points into it, token_logprobs are the spans' log confidences."""
    _, infill, _ = await post(shared_engine.url, "/v1/infill", {"prefix": PREFIX, "suffix": SUFFIX, "max_tokens": 12})
    for path in ("/v1/completions", "/v1/fim/completions"):
        _, answer, _ = await post(shared_engine.url, path,
                                  {"prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 12, "stop": None})
        choice = answer["choices"][0]
        assert choice["text"] == infill["text"]
        logprobs = choice["logprobs"]
        assert "".join(logprobs["tokens"]) == choice["text"]
        assert logprobs["text_offset"] == [s["start"] for s in infill["spans"]]
        # /v1/infill rounds confidences to 4 decimals
        assert [math.exp(lp) for lp in logprobs["token_logprobs"]] == pytest.approx(
            [s["confidence"] for s in infill["spans"]], abs=1.5e-4)
        assert all(lp <= 0 for lp in logprobs["token_logprobs"])


async def test_body_over_the_limit_is_413(shared_engine):
    huge = {"prefix": "x" * (1024 * 1024 + 10)}
    status, payload, _ = await post(shared_engine.url, "/v1/infill", huge)
    assert status == 413
    assert payload["error"]["type"] == "request_too_large"


async def test_unknown_path_and_wrong_method_are_json(shared_engine):
    status, payload, _ = await post(shared_engine.url, "/v1/nothing", {})
    assert (status, payload["error"]["message"]) == (404, "There is no route /v1/nothing here.")
    async with aiohttp.ClientSession() as session:
        async with session.get(shared_engine.url + "/v1/infill") as response:
            assert response.status == 405
            assert (await response.json())["error"]["message"] == "/v1/infill does not take GET requests."


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"GARBAGE\r\n\r\n", "BadHttpMethod"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", "BadHttpMessage"),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n", "LineTooLong"),
        (b"POST /v1/infill HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", "BadHttpMessage"),
    ],
)
async def test_malformed_http_is_answered_in_the_json_shape(shared_engine, raw, reason):
    status, headers, body = await raw_exchange(shared_engine.url, raw)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": {"message": f"The request is not valid HTTP/1.1 ({reason}).",
                                          "type": "invalid_request_error"}}
    assert shared_engine.health()["status"] == "ok"


async def test_metrics_count_requests_in_prometheus_text(shared_engine):
    before = metric(await get_text(shared_engine.url, "/metrics"), "mercury_requests_total",
                    'endpoint="/v1/infill",status="200"')
    await post(shared_engine.url, "/v1/infill", {"prefix": PREFIX, "max_tokens": 4})
    text = await get_text(shared_engine.url, "/metrics")
    assert metric(text, "mercury_requests_total", 'endpoint="/v1/infill",status="200"') == before + 1
    for family in ("mercury_queue_depth", "mercury_batch_size", "mercury_step_seconds", "mercury_request_seconds",
                   "mercury_tokens_per_second", "mercury_cancellations_total"):
        assert f"# TYPE {family} " in text
    assert metric(text, "mercury_step_seconds_count") > 0
    assert 'mercury_request_seconds_bucket{le="+Inf"}' in text
