"""Local stand-ins for the servers the `inception` and `openai` backends talk to, in the shapes those servers
document, and a TLS reverse proxy in front of any of them (a team's HTTPS endpoint, with a test CA).

- Inception's `/v1/fim/completions` (FIMCompletionRequest / FIMCompletionResponse / ErrorResponse of its OpenAPI
  description): `prompt` and `model` required, only documented fields accepted, its error objects.
- vLLM's `/v1/completions`: `suffix` refused with a 400 for every model; a FIM prompt in `prompt` is what it takes
  (its extra choice fields `stop_reason` / `matched_stop`, usage details, a model name that must match).
- SGLang's `/v1/completions` started with `--completion-template qwen_coder`: a non-empty `suffix` wraps the prompt
  in the template's markers; an empty one wraps nothing (the model continues the prompt as it is).
- llama.cpp's server: `POST /infill` (input_prefix, input_suffix, input_extra, n_predict...) and a `/v1/completions`
  that refuses `suffix`.

Each records what its model would have read (`model_prompts`), and answers with text derived from it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import trustme
from aiohttp import web

KEY = "team-key-for-tests"
# FIMCompletionRequest's properties in Inception's OpenAPI description.
INCEPTION_FIELDS = {"prompt", "suffix", "model", "max_tokens", "top_p", "top_k", "frequency_penalty",
                    "presence_penalty", "repetition_penalty", "stop", "stream", "stream_options"}
SERVED_MODEL = "Qwen/Qwen2.5-Coder-0.5B"


def _error(status: int, message: str, kind: str, code: str, param: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": code}},
                             status=status)


def _filled(body: dict[str, Any]) -> str:
    """The stand-ins' answer: something that depends on the request, so a test can tell requests apart."""
    return f"<fill {len(body['prompt'])}:{len(body.get('suffix') or '')}>"


def _answer_to(model_prompt: str) -> str:
    """Code that depends on what the model read, so a test can tell which prompt it was."""
    return f"total + {len(model_prompt)}"


class StandIn:
    """One stand-in server on an ephemeral loopback port; `requests` holds every body it accepted."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.model_prompts: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> StandIn:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def inception() -> StandIn:
    stand_in: StandIn

    async def fim(request: web.Request) -> web.Response:
        stand_in.headers.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return _error(401, "Incorrect API key provided", "authentication_error", "invalid_api_key")
        body = await request.json()
        unknown = set(body) - INCEPTION_FIELDS
        if unknown or not isinstance(body.get("prompt"), str) or not isinstance(body.get("model"), str):
            return _error(400, f"Invalid request: {sorted(unknown) or 'prompt and model are required'}",
                          "invalid_request_error", "invalid_request", "prompt")
        if body["model"] != "mercury-edit-2":
            return _error(404, f"model `{body['model']}` not found", "invalid_request_error", "model_not_found",
                          "model")
        stand_in.requests.append(body)
        text = _filled(body)
        return web.json_response({
            "id": "cmpl-7a2b3c4d5e", "object": "text_completion", "created": 1745798400, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "text": text}],
            "usage": {"prompt_tokens": 24, "completion_tokens": 14, "total_tokens": 38, "reasoning_tokens": 0,
                      "cached_input_tokens": 0},
        })

    async def models(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return _error(401, "Incorrect API key provided", "authentication_error", "invalid_api_key")
        return web.json_response({"object": "list", "data": [{"id": "mercury-edit-2", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/fim/completions", fim)
    app.router.add_get("/v1/models", models)
    stand_in = StandIn(app)
    return stand_in


def vllm() -> StandIn:
    stand_in: StandIn

    async def completions(request: web.Request) -> web.Response:
        stand_in.headers.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"object": "error", "message": "Unauthorized", "type": "Unauthorized",
                                      "code": 401}, status=401)  # vLLM's --api-key answer
        body = await request.json()
        if body.get("model") != SERVED_MODEL:
            return web.json_response({"object": "error", "message": f"The model `{body.get('model')}` does not "
                                      "exist.", "type": "NotFoundError", "param": None, "code": 404}, status=404)
        if body.get("suffix") is not None:  # vLLM's OpenAIServingCompletion, for every model
            return web.json_response({"object": "error", "message": "suffix is not currently supported",
                                      "type": "BadRequestError", "param": None, "code": 400}, status=400)
        stand_in.requests.append(body)
        stand_in.model_prompts.append(body["prompt"])
        text = _answer_to(body["prompt"])
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": "length", "stop_reason": None,
                    "matched_stop": None, "prompt_logprobs": None} for i in range(body.get("n", 1))]
        return web.json_response({
            "id": "cmpl-b6f3", "object": "text_completion", "created": 1745798400, "model": SERVED_MODEL,
            "choices": choices, "service_tier": None, "system_fingerprint": None,
            "usage": {"prompt_tokens": 30, "total_tokens": 40, "completion_tokens": 10, "prompt_tokens_details": None},
            "kv_transfer_params": None,
        })

    async def models(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return web.json_response({"object": "list", "data": [{"id": SERVED_MODEL, "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", models)
    stand_in = StandIn(app)
    return stand_in


async def _openai_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": SERVED_MODEL, "object": "model"}]})


# SGLang's `qwen_coder` completion template: FIM begin, middle (before the suffix) and end markers.
SGLANG_QWEN_CODER = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")


def sglang() -> StandIn:
    """SGLang started with `--completion-template qwen_coder` (it has no API key here: `--api-key` is optional)."""
    stand_in: StandIn

    async def completions(request: web.Request) -> web.Response:
        stand_in.headers.append(dict(request.headers))
        body = await request.json()
        stand_in.requests.append(body)
        prompt, suffix = body["prompt"], body.get("suffix") or ""
        begin, middle, end = SGLANG_QWEN_CODER
        # sglang's generate_completion_prompt_from_request: only a non-empty suffix gets the template
        model_prompt = f"{begin}{prompt}{middle}{suffix}{end}" if suffix else prompt
        stand_in.model_prompts.append(model_prompt)
        text = _answer_to(model_prompt)
        return web.json_response({
            "id": "4f1b", "object": "text_completion", "created": 1745798400, "model": SERVED_MODEL,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop", "matched_stop": None}],
            "usage": {"prompt_tokens": 30, "total_tokens": 35, "completion_tokens": 5, "prompt_tokens_details": None},
        })

    app = web.Application()
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", _openai_models)
    stand_in = StandIn(app)
    return stand_in


def llamacpp() -> StandIn:
    """llama.cpp's `llama-server` with a FIM-capable model (Qwen2.5-Coder base: it has `<|file_sep|>`)."""
    stand_in: StandIn

    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": {"code": status, "message": message, "type": "invalid_request_error"}},
                                 status=status)

    async def infill(request: web.Request) -> web.Response:
        stand_in.headers.append(dict(request.headers))
        body = await request.json()
        extra = body.get("input_extra", [])
        if not isinstance(body.get("input_prefix", ""), str) or not isinstance(body.get("input_suffix", ""), str):
            return _error(400, "\"input_prefix\" and \"input_suffix\" must be strings")
        if not isinstance(extra, list) or not all(
                isinstance(c, dict) and isinstance(c.get("text"), str) and isinstance(c.get("filename", ""), str)
                for c in extra):
            return _error(400, "\"input_extra\" must be an array of {\"filename\": string, \"text\": string}")
        stand_in.requests.append(body)
        # format_infill with a file separator: each extra chunk under its file name, then the FIM prompt
        files = "".join(f"<|file_sep|>{c.get('filename', 'tmp')}\n{c['text']}" for c in extra)
        model_prompt = (f"{files}<|fim_prefix|>{body.get('input_prefix', '')}<|fim_suffix|>"
                        f"{body.get('input_suffix', '')}<|fim_middle|>{body.get('prompt', '')}")
        stand_in.model_prompts.append(model_prompt)
        content = _answer_to(model_prompt)
        return web.json_response({
            "index": 0, "content": content, "tokens": [], "id_slot": 0, "stop": True, "model": "qwen2.5-coder",
            "tokens_predicted": 5, "tokens_evaluated": 40, "tokens_cached": 12, "truncated": False,
            "stop_type": "eos", "stopping_word": "",
            "timings": {"prompt_n": 28, "prompt_ms": 12.5, "predicted_n": 5, "predicted_ms": 30.0},
        })

    async def completions(request: web.Request) -> web.Response:
        body = await request.json()
        for name in ("best_of", "echo", "suffix"):  # oaicompat_completion_params_parse
            if name in body:
                return _error(400, f"Unsupported param: {name}")
        return _error(400, "this stand-in only answers /infill")

    app = web.Application()
    app.router.add_post("/infill", infill)
    app.router.add_post("/v1/completions", completions)
    app.router.add_get("/v1/models", _openai_models)
    stand_in = StandIn(app)
    return stand_in


class LocalCA:
    """A certificate authority of the test's own, and a certificate for 127.0.0.1 / localhost it signed."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.bundle = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.bundle))
        self.cert_file = folder / "server.pem"
        self.key_file = folder / "server.key"
        self.cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        self.cert.private_key_pem.write_to_path(str(self.key_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return context


class TlsProxy:
    """HTTPS on loopback, passing every request through to `upstream` (headers, body and streamed answer)."""

    def __init__(self, upstream: str, ca: LocalCA) -> None:
        self.upstream = upstream
        self.ca = ca
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._client.request(request.method, self.upstream + request.rel_url.path_qs, headers=headers,
                                        data=await request.read()) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def __aenter__(self) -> TlsProxy:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ca.server_context())
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._client is not None
        await self._runner.cleanup()
        await self._client.close()
