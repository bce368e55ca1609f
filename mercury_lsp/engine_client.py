"""HTTP client for the engine: our /v1/infill, or any OpenAI-compatible /v1/completions with `suffix`."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from mercury_lsp.infill_api import Completion, InfillRequest, parse_spans
from mercury_lsp.settings import Backend


@dataclass(frozen=True)
class InfillResult:
    """The engine's completions and the figures it reported (None where a backend gives none)."""

    completions: tuple[Completion, ...]
    tokens: int | None
    steps: int | None
    engine_ms: float | None
    round_trip_ms: float

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(c.text for c in self.completions)


class EngineError(Exception):
    """The engine answered with an error, or could not be reached (`unreachable`)."""

    def __init__(self, message: str, status: int | None = None, unreachable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


class EngineClient:
    """Talks to one engine URL; cancelling a call closes its connection, which stops the engine's work."""

    def __init__(
        self,
        base_url: str,
        backend: Backend = "mercury",
        api_key: str | None = None,
        remote_model: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.backend = backend
        self.remote_model = remote_model
        key = api_key or os.environ.get("MERCURY_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, connect=2.0),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """GET /health (our engine); other backends count as ready when they answer at all."""
        path = "/health" if self.backend == "mercury" else "/v1/models"
        body = await self._call("GET", path, None, timeout)
        if self.backend != "mercury":
            return {"status": "ok", "model": self.remote_model}
        return body

    async def infill(self, request: InfillRequest, timeout: float = 60.0) -> InfillResult:
        """Ask for the text between `prefix` and `suffix`."""
        started = time.perf_counter()
        if self.backend == "mercury":
            body = await self._call("POST", "/v1/infill", self._mercury_body(request), timeout)
        else:
            body = await self._call("POST", "/v1/completions", self._openai_body(request), timeout)
        try:
            if self.backend == "mercury":
                completions = _mercury_completions(body)
                tokens = body.get("tokens")
            else:
                completions = tuple(Completion(choice.get("text", ""), 0) for choice in body.get("choices", []))
                tokens = (body.get("usage") or {}).get("completion_tokens")
        except (AttributeError, TypeError) as error:  # a remote server with another answer shape
            raise EngineError(f"The engine at {self.base_url} answered in an unknown shape.") from error
        if not all(isinstance(c.text, str) for c in completions):
            raise EngineError("The engine answered with text that is not a string.")
        steps, engine_ms = body.get("steps"), body.get("ms")
        round_trip_ms = (time.perf_counter() - started) * 1000
        return InfillResult(completions, _int_or_none(tokens), _int_or_none(steps),
                            _float_or_none(engine_ms), round_trip_ms)

    def _mercury_body(self, request: InfillRequest) -> dict[str, Any]:
        return request.to_json()

    def _openai_body(self, request: InfillRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": request.prefix,
            "suffix": request.suffix,
            "max_tokens": request.max_tokens,
            "n": request.n,
            "temperature": 0,
        }
        if self.remote_model:
            body["model"] = self.remote_model
        if request.single_line:
            body["stop"] = ["\n"]
        return body

    async def _call(self, method: str, path: str, body: Any, timeout: float) -> dict[str, Any]:
        try:
            async with self._http().request(
                method, self.base_url + path, json=body,
                timeout=aiohttp.ClientTimeout(total=timeout, connect=2.0),
            ) as response:
                payload = await _json_or_none(response)
                if response.status >= 400:
                    raise EngineError(_error_message(payload, response), status=response.status)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as error:
            raise EngineError(
                f"The engine at {self.base_url} cannot be reached ({type(error).__name__}).",
                unreachable=True,
            ) from error
        if not isinstance(payload, dict):
            raise EngineError(f"The engine at {self.base_url} answered {path} with no JSON object.")
        return payload


def _mercury_completions(body: dict[str, Any]) -> tuple[Completion, ...]:
    """The answer's candidates (or its one text) with their confidence spans where the engine sent them."""
    if body.get("candidates"):
        texts = body["candidates"]
        spans = body.get("candidate_spans") or [None] * len(texts)
    else:
        texts, spans = [body.get("text", "")], [body.get("spans")]
    return tuple(
        Completion(text, 0, parse_spans(raw, text) if isinstance(text, str) else ())
        for text, raw in zip(texts, spans)
    )


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _error_message(payload: Any, response: aiohttp.ClientResponse) -> str:
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        message = payload["error"].get("message")
        if message:
            return f"The engine refused the request: {message}"
    return f"The engine answered HTTP {response.status} {response.reason}."


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
