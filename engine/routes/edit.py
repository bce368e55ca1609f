"""Mercury Edit 2's /v1/edit/completions: the code to edit comes back with the next edit applied, or as it was."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from mercury_lsp.engine.api.edit_completions import edit_answer, parse_edit_request
from mercury_lsp.engine.api.validation import RequestError
from mercury_lsp.engine.batcher import EngineFailure
from mercury_lsp.engine.routes.plumbing import (
    BATCHER_KEY,
    CONFIG_KEY,
    admitted,
    checked,
    deadline_error,
    engine_error,
    read_json,
)


async def handle_edit_completions(request: web.Request) -> web.Response:
    # torch is imported only once a request needs it
    from mercury_lsp.engine.next_edit import answer_edit_request

    edit = checked(parse_edit_request, await read_json(request))
    batcher, limit = request.app[BATCHER_KEY], request.app[CONFIG_KEY].request_timeout_s
    with admitted(batcher):
        try:
            future = batcher.call(lambda engine: answer_edit_request(engine, edit))
            region, result = await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            raise deadline_error(limit) from None
        except (RequestError, EngineFailure) as error:
            raise engine_error(error) from None
    answer = edit_answer(f"cmpl-{uuid.uuid4().hex}", int(time.time()), batcher.model_name, region,
                         len(edit.prompt.text) // 4, len(region) // 4)
    return web.json_response(answer | {"ms": round(result.ms, 3), "proposed": result.proposal is not None})


ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    ("POST", "/v1/edit/completions"): handle_edit_completions,
}
