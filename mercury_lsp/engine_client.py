"""HTTP client for the engine: our /v1/infill, or any OpenAI-compatible /v1/completions with `suffix`."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from mercury_lsp.settings import Backend


@dataclass(frozen=True)
class InfillRequest:
    """One fill-in-the-middle request, whatever the backend."""

    prefix: str
    suffix: str
    max_tokens: int
    steps: int | None = None
    threshold: float | None = None
    n: int = 1
    single_line: bool = False


@dataclass(frozen=True)
class InfillResult:
    """The engine's texts and the figures it reported (None where a backend gives none)."""

    texts: tuple[str, ...]
    tokens: int | None
    steps: int | None
    engine_ms: float | None
    round_trip_ms: float


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
                texts = tuple(body.get("candidates") or [body.get("text", "")])
                tokens = body.get("tokens")
            else:
                texts = tuple(choice.get("text", "") for choice in body.get("choices", []))
                tokens = (body.get("usage") or {}).get("completion_tokens")
        except (AttributeError, TypeError) as error:  # a remote server with another answer shape
            raise EngineError(f"The engine at {self.base_url} answered in an unknown shape.") from error
        if not all(isinstance(text, str) for text in texts):
            raise EngineError("The engine answered with text that is not a string.")
        steps, engine_ms = body.get("steps"), body.get("ms")
        round_trip_ms = (time.perf_counter() - started) * 1000
        return InfillResult(texts, _int_or_none(tokens), _int_or_none(steps),
                            _float_or_none(engine_ms), round_trip_ms)

    def _mercury_body(self, request: InfillRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prefix": request.prefix,
            "suffix": request.suffix,
            "max_tokens": request.max_tokens,
            "n": request.n,
            "single_line": request.single_line,
        }
        if request.steps is not None:
            body["steps"] = request.steps
        if request.threshold is not None:
            body["threshold"] = request.threshold
        return body

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
