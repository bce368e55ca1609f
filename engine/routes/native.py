"""The engine's own routes: /health (open to all: editors read the loading state before they know any key),
/v1/infill, /v1/cancel, /v1/models and /metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mercury_lsp.engine.api import identity as engine_identity
from mercury_lsp.engine.api.infill import parse_infill
from mercury_lsp.engine.metrics import CONTENT_TYPE
from mercury_lsp.engine.routes.plumbing import (
    ACTIVITY_KEY,
    BATCHER_KEY,
    CONFIG_KEY,
    METRICS_KEY,
    bad_request,
    checked,
    read_json,
    run_request,
)


async def handle_infill(request: web.Request) -> web.Response:
    infill = checked(parse_infill, await read_json(request))
    result = await run_request(request, infill)
    first = result.completions[0]
    payload: dict[str, Any] = {"text": first.text, "tokens": first.tokens, "steps": result.steps,
                               "ms": round(result.ms, 3), "spans": [s.to_json() for s in first.spans]}
    if infill.n > 1:
        distinct = {c.text: c for c in reversed(result.completions)}  # the first of each text wins
        payload["candidates"] = result.candidates
        payload["candidate_spans"] = [[s.to_json() for s in distinct[text].spans] for text in result.candidates]
    return web.json_response(payload)


async def handle_cancel(request: web.Request) -> web.Response:
    body = await read_json(request)
    client_id = body.get("id") if isinstance(body, dict) else None
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str):
        raise bad_request("Field 'id' is required.")
    return web.json_response({"id": client_id, "cancelled": request.app[BATCHER_KEY].cancel_client_id(client_id)})


async def handle_health(request: web.Request) -> web.Response:
    batcher = request.app[BATCHER_KEY]
    payload: dict[str, Any] = {"status": batcher.state, "model": batcher.model_name, "device": batcher.device_name,
                               "max_batch": batcher.max_batch}
    if batcher.dtype_name is not None:
        payload |= {"dtype": batcher.dtype_name, "context_tokens": batcher.context_tokens, "memory": batcher.memory(),
                    "sampler": batcher.sampler()}
    if batcher.message:
        payload["message"] = batcher.message
    if batcher.progress is not None:
        payload["progress"] = round(batcher.progress, 4)
    if batcher.commit is not None:
        payload["revision"] = batcher.commit
    headers: dict[str, str] = {}
    challenge = request.headers.get(engine_identity.CHALLENGE_HEADER)
    if challenge is not None:
        if not engine_identity.is_challenge(challenge):
            raise bad_request(f"{engine_identity.CHALLENGE_HEADER} must be 32 to 128 lowercase hex digits.")
        key = request.app[CONFIG_KEY].api_key
        if key:
            headers[engine_identity.PROOF_HEADER] = engine_identity.proof(key, challenge)
            request.app[ACTIVITY_KEY].last_proof = time.monotonic()
    return web.json_response(payload, headers=headers)


async def handle_models(request: web.Request) -> web.Response:
    batcher = request.app[BATCHER_KEY]
    model: dict[str, Any] = {"id": batcher.model_name, "object": "model", "owned_by": "mercury"}
    if batcher.commit is not None:
        model["revision"] = batcher.commit
    return web.json_response({"object": "list", "data": [model]})


async def handle_metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS_KEY].render(),
                        headers={"Content-Type": CONTENT_TYPE, "X-Content-Type-Options": "nosniff"})


ROUTES: dict[tuple[str, str], Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    ("GET", "/health"): handle_health,
    ("GET", "/metrics"): handle_metrics,
    ("GET", "/v1/models"): handle_models,
    ("POST", "/v1/infill"): handle_infill,
    ("POST", "/v1/cancel"): handle_cancel,
}
