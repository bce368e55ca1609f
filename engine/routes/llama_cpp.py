"""The llama.cpp server's POST /infill, as llama.vim and llama.vscode call it: one JSON answer, or server-sent events
(`data: {...}` pieces, the last with `stop: true` and the timings; no [DONE], as llama.cpp sends none)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from mercury_lsp.engine.api.completions import apply_stop
from mercury_lsp.engine.api.llama_cpp import (
    InfillFigures,
    LlamaInfillRequest,
    infill_json,
    parse_llama_infill,
    select_fields,
    stop_type,
)
from mercury_lsp.engine.routes.plumbing import (
    BATCHER_KEY,
    ApiError,
    SettledTextStream,
    checked,
    read_json,
    run_request,
    sse_event,
    sse_response,
    stream_infill,
)

if TYPE_CHECKING:
    from mercury_lsp.engine.infill import InfillResult


def _answer(asked: LlamaInfillRequest, result: InfillResult, model: str) -> dict:
    assert asked.infill is not None
    text, stopped = apply_stop(result.text, asked.stop)
    word = next((s for s in asked.stop if stopped and result.text[len(text) :].startswith(s)), "")
    figures = InfillFigures(result.prefix_tokens + result.suffix_tokens + result.header_tokens + result.extra_tokens,
                            result.tokens, result.ms)
    return infill_json(text, figures, model, word, stop_type(word, result.tokens, asked.infill.max_tokens))


def _shaped(asked: LlamaInfillRequest, answer: dict) -> dict:
    return select_fields(answer, asked.response_fields) if asked.response_fields else answer


class _SseStream(SettledTextStream):
    """One request's pieces as the canvas settles (held back where a stop string could begin), then the last."""

    def __init__(self, asked: LlamaInfillRequest, model: str, response: web.StreamResponse) -> None:
        super().__init__(asked.stop, response)
        self.asked, self.model = asked, model

    async def write_piece(self, piece: str) -> None:
        await self.response.write(sse_event(infill_json(piece, InfillFigures(0, 0, 0.0), self.model, "", "", False)))

    async def finish(self, result: InfillResult) -> None:
        answer = _answer(self.asked, result, self.model)
        text = answer["content"]
        answer["content"] = text[len(self.sent) :] if text.startswith(self.sent) else ""
        await self.response.write(sse_event(_shaped(self.asked, answer)))

    async def error(self, error: ApiError) -> None:
        await self.response.write(sse_event(error.to_json()))


async def handle_infill(request: web.Request) -> web.StreamResponse:
    asked: LlamaInfillRequest = checked(parse_llama_infill, await read_json(request))
    model = request.app[BATCHER_KEY].model_name
    if asked.infill is None:  # n_predict 0: the client hands over context to cache; the engine caches as it computes
        answer = _shaped(asked, infill_json("", InfillFigures(0, 0, 0.0), model, "", "limit"))
        if asked.stream:
            return web.Response(body=sse_event(answer), content_type="text/event-stream")
        return web.json_response(answer)
    if asked.stream:
        response = sse_response()
        return await stream_infill(request, asked.infill, response, _SseStream(asked, model, response))
    result = await run_request(request, asked.infill)
    return web.json_response(_shaped(asked, _answer(asked, result, model)))


ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    ("POST", "/infill"): handle_infill,
}
