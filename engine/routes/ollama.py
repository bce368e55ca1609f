"""Ollama's routes: POST /api/generate (prompt and suffix; NDJSON lines unless `stream` is false), GET /api/tags,
POST /api/show, GET /api/version. Clients that speak Ollama (Continue, Twinny, Zed, Emacs and Neovim plugins, the
`ollama` Python package) reach the engine with no change on their side but the URL (and the key, where one is set)."""

from __future__ import annotations

import hashlib
import json
import struct
import time
from collections.abc import Awaitable, Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mercury_lsp.engine.api.completions import apply_stop
from mercury_lsp.engine.api.ollama import (
    OLLAMA_VERSION,
    GenerateRequest,
    ModelCard,
    generate_chunk,
    generate_done,
    parse_generate,
    show_json,
    show_model,
    tags_json,
)
from mercury_lsp.engine.routes.plumbing import (
    BATCHER_KEY,
    ApiError,
    SettledTextStream,
    checked,
    read_json,
    run_request,
    stream_infill,
)

if TYPE_CHECKING:
    from mercury_lsp.engine.infill import InfillResult


def _line(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def _reason(result: InfillResult, generate: GenerateRequest, stopped: bool) -> str:
    assert generate.infill is not None
    return "stop" if stopped or result.tokens < generate.infill.max_tokens else "length"


class _NdjsonStream(SettledTextStream):
    """One generate request's lines: the text as it settles (held back where a stop string could begin), then the
    line with `done` and the figures. An error ends the stream with Ollama's `{"error": "..."}` line."""

    def __init__(self, generate: GenerateRequest, model: str, response: web.StreamResponse) -> None:
        super().__init__(generate.stop, response)
        self.generate, self.model = generate, model
        self.created = time.time()

    async def write_piece(self, piece: str) -> None:
        await self.response.write(_line(generate_chunk(self.model, self.created, piece)))

    async def finish(self, result: InfillResult) -> None:
        text, stopped = apply_stop(result.text, self.generate.stop)
        rest = text[len(self.sent) :] if text.startswith(self.sent) and not self.stopped else ""
        if rest:
            await self.response.write(_line(generate_chunk(self.model, self.created, rest)))
        await self.response.write(_line(generate_done(
            self.model, self.created, "", _reason(result, self.generate, stopped or self.stopped),
            _prompt_tokens(result), result.tokens, result.ms)))

    async def error(self, error: ApiError) -> None:
        await self.response.write(_line({"error": error.message, "type": error.kind}))


def _prompt_tokens(result: InfillResult) -> int:
    return result.prefix_tokens + result.suffix_tokens + result.header_tokens + result.extra_tokens


async def handle_generate(request: web.Request) -> web.StreamResponse:
    generate: GenerateRequest = checked(parse_generate, await read_json(request))
    model = generate.model or request.app[BATCHER_KEY].model_name
    if generate.infill is None:  # an empty prompt loads the model: it is loaded
        done = generate_done(model, time.time(), "", "load", 0, 0, 0.0)
        if generate.stream:
            return web.Response(body=_line(done), content_type="application/x-ndjson")
        return web.json_response(done)
    if generate.stream:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        return await stream_infill(request, generate.infill, response, _NdjsonStream(generate, model, response))
    created = time.time()
    result = await run_request(request, generate.infill)
    text, stopped = apply_stop(result.text, generate.stop)
    return web.json_response(generate_done(model, created, text, _reason(result, generate, stopped),
                                           _prompt_tokens(result), result.tokens, result.ms))


@cache
def _weights(folder: Path) -> tuple[int, int, str, float]:
    """Bytes, parameter count (from the safetensors headers), a digest and the change time of a model folder."""
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    size = parameters = 0
    digest = hashlib.sha256()
    for path in files:
        try:
            with path.open("rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):  # the listing describes the model; it never fails for it
            continue
        size += path.stat().st_size
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict):
                count = 1
                for dim in entry.get("shape", ()):
                    count *= dim
                parameters += count
        digest.update(path.name.encode() + str(path.stat().st_size).encode())
    config = folder / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    modified = max((p.stat().st_mtime for p in files), default=time.time())
    return size, parameters, digest.hexdigest(), modified


def _card(request: web.Request) -> ModelCard:
    batcher = request.app[BATCHER_KEY]
    size, parameters, digest, modified = _weights(batcher.folder) if batcher.folder else (0, 0, "", time.time())
    return ModelCard(batcher.model_name, size, modified, digest, parameters, batcher.context_tokens)


async def handle_tags(request: web.Request) -> web.Response:
    return web.json_response(tags_json(_card(request)))


async def handle_show(request: web.Request) -> web.Response:
    checked(show_model, await read_json(request))  # every name is answered by the one model served
    return web.json_response(show_json(_card(request)))


async def handle_version(request: web.Request) -> web.Response:
    return web.json_response({"version": OLLAMA_VERSION})


ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    ("POST", "/api/generate"): handle_generate,
    ("GET", "/api/tags"): handle_tags,
    ("POST", "/api/show"): handle_show,
    ("GET", "/api/version"): handle_version,
}
