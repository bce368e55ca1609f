"""The OpenAI-compatible routes: /v1/completions (with `suffix`, or a prompt written in a FIM template) and
Inception's /v1/fim/completions; one JSON answer, or server-sent events in OpenAI's chunk shape ending in [DONE]."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from mercury_lsp.engine.api.completions import (
    AnswerHead,
    CompletionRequest,
    Route,
    apply_stop,
    chunk_json,
    completion_answer,
    finish_reason,
    parse_completion_request,
    streamable_length,
    usage_chunk_json,
)
from mercury_lsp.engine.detokenize import cut_spans
from mercury_lsp.engine.routes.plumbing import (
    BATCHER_KEY,
    ApiError,
    checked,
    read_json,
    run_request,
    sse_event,
    sse_response,
    stream_infill,
)

if TYPE_CHECKING:
    from mercury_lsp.engine.infill import InfillResult

log = logging.getLogger(__name__)


def _head(request: web.Request) -> AnswerHead:
    return AnswerHead(f"cmpl-{uuid.uuid4().hex}", int(time.time()), request.app[BATCHER_KEY].model_name)


def completions_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of /v1/completions or /v1/fim/completions: one JSON answer, or server-sent events."""

    async def handle(request: web.Request) -> web.StreamResponse:
        completion = checked(parse_completion_request, await read_json(request), route)
        if completion.stream:
            response = sse_response()
            return await stream_infill(request, completion.infill, response, _Stream(request, completion, response))
        result = await run_request(request, completion.infill)
        cut = []
        for item in result.completions:
            text, stopped = apply_stop(item.text, completion.stop)
            cut.append((text, cut_spans(item.text, item.spans, len(text))[1], stopped))
        answer = completion_answer(_head(request), completion, result.completions,
                                   result.prefix_tokens + result.suffix_tokens, cut)
        answer |= {"steps": result.steps, "ms": round(result.ms, 3)}
        return web.json_response(answer)

    return handle


class _Stream:
    """The choices of one streamed request: what each has sent, and whether it has ended."""

    def __init__(self, request: web.Request, completion: CompletionRequest, response: web.StreamResponse) -> None:
        self.head = _head(request)
        self.completion = completion
        self.response = response
        n = completion.infill.n
        self.sent = [""] * n
        self.ended = [False] * n

    async def progress(self, settled: list[str]) -> None:
        """Send what each choice's settled text added, held back where a stop string could still begin."""
        for index, text in enumerate(settled):
            if self.ended[index] or not text.startswith(self.sent[index]):
                continue
            length, stopped = streamable_length(text, self.completion.stop)
            if length > len(self.sent[index]):
                await self._send(index, text[len(self.sent[index]) : length])
                self.sent[index] = text[:length]
            if stopped:
                await self._send(index, "", "stop")
                self.ended[index] = True

    async def finish(self, result: InfillResult) -> None:
        """The rest of each choice, its finish reason, the usage if asked for, and [DONE]."""
        for index, item in enumerate(result.completions):
            if self.ended[index]:
                continue
            text, stopped = apply_stop(item.text, self.completion.stop)
            if text.startswith(self.sent[index]):
                rest = text[len(self.sent[index]) :]
            else:  # the engine revised text it had called settled: what was sent stays, nothing is appended
                log.warning("streamed text of choice %d was revised after it was sent", index)
                rest = ""
            await self._send(index, rest, finish_reason(item, self.completion.infill.max_tokens, stopped))
        if self.completion.include_usage:
            tokens = sum(c.tokens for c in result.completions)
            await self.response.write(sse_event(usage_chunk_json(
                self.head, self.completion, result.prefix_tokens + result.suffix_tokens, tokens)))
        await self.response.write(sse_event("[DONE]"))

    async def error(self, error: ApiError) -> None:
        await self.response.write(sse_event(error.to_json()))

    async def _send(self, index: int, text: str, reason: str | None = None) -> None:
        await self.response.write(sse_event(chunk_json(self.head, self.completion, index, text, reason)))


ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    ("POST", "/v1/completions"): completions_handler("completions"),
    ("POST", "/v1/fim/completions"): completions_handler("fim"),
}
