"""HTTP client for the engine: our /v1/infill, an OpenAI-compatible /v1/completions with `suffix` (SGLang with a
completion template, llama-cpp-python, our engine) or with a FIM prompt written here (vLLM), llama.cpp's /infill, or
Inception's /v1/fim/completions (api.inceptionlabs.ai, or our engine)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiohttp

from mercury_lsp import foreign_fim
from mercury_lsp.engine.api import fim_templates
from mercury_lsp.engine.api import identity as engine_identity
from mercury_lsp.engine.api.completions import (
    ROUTE_PATHS,
    Route,
    completion_body,
    parse_completion_answer,
)
from mercury_lsp.engine.api.edit_completions import parse_edit_answer
from mercury_lsp.engine.api.infill import (
    Completion,
    InfillAnswer,
    InfillRequest,
    parse_infill_answer,
)

__all__ = ["BACKENDS", "EngineClient", "EngineError", "InfillRequest", "InfillResult"]

BACKENDS = ("mercury", "openai", "llamacpp", "inception")
ROUTES: dict[str, Route] = {"openai": "completions", "inception": "fim"}
INCEPTION_URL = "https://api.inceptionlabs.ai"
INCEPTION_MODEL = "mercury-edit-2"  # Inception's fill-in-the-middle model when the settings name none
KEY_VARIABLES = {"inception": ("MERCURY_API_KEY", "INCEPTION_API_KEY")}
# A router in front of several engines hashes on this header to keep a document on one replica, where its prefix
# is cached. It carries a hash of the document's URI: the router needs a stable key, not the path.
AFFINITY_HEADER = "X-Mercury-Document"


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


def base_url(url: str) -> str:
    """The server's root: a trailing slash or `/v1` (as OpenAI SDK base URLs are written) is dropped."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def shown_url(url: str) -> str:
    """The URL for messages and logs: without user name or password."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def tls_context(ca_bundle: str | None) -> ssl.SSLContext | bool:
    """Certificates are checked against `ca_bundle` (a PEM file) when given, else the system's store."""
    if not ca_bundle:
        return True
    try:
        return ssl.create_default_context(cafile=os.path.expanduser(ca_bundle))
    except (OSError, ssl.SSLError) as error:
        detail = getattr(error, "strerror", None) or error
        raise EngineError(f"The CA bundle {ca_bundle} cannot be used ({detail}).") from None


class EngineClient:
    """Talks to one engine URL; cancelling a call closes its connection, which stops the engine's work.

    With `identity_key` (the auto-started engine's shared secret), the engine must prove it holds the key before
    each request that carries text; an engine that cannot is treated as gone.
    """

    def __init__(
        self,
        url: str,
        backend: str = "mercury",
        api_key: str | None = None,
        remote_model: str | None = None,
        *,
        ca_bundle: str | None = None,
        identity_key: str | None = None,
        fim_template: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise EngineError(f"Unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")
        if fim_template is not None and fim_template not in fim_templates.TEMPLATES:
            raise EngineError(f"Unknown FIM template {fim_template!r}; use one of "
                              f"{', '.join(fim_templates.TEMPLATES)}.")
        self.fim_template = fim_template if backend == "openai" else None
        self.base_url = base_url(url)
        self.shown_url = shown_url(self.base_url)
        self.backend = backend
        self.remote_model = remote_model or (INCEPTION_MODEL if backend == "inception" else None)
        self.identity_key = identity_key
        names = KEY_VARIABLES.get(backend, ("MERCURY_API_KEY",))
        key = api_key or next((os.environ[n] for n in names if os.environ.get(n)), None)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._ssl = tls_context(ca_bundle)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=2.0))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """GET /health (our engine, which proves itself when it must); other backends count as ready when their
        model list answers."""
        if self.backend != "mercury":
            await self._call("GET", "/v1/models", None, timeout)
            return {"status": "ok", "model": self.remote_model}
        return await self._health(timeout)

    async def _health(self, timeout: float) -> dict[str, Any]:
        # /health is open: the key is not sent with it, so a stranger on the engine's port never sees the key.
        if self.identity_key is None:
            return await self._call("GET", "/health", None, timeout, {})
        challenge = engine_identity.new_challenge()
        proof: list[str | None] = []
        body = await self._call("GET", "/health", None, timeout, {engine_identity.CHALLENGE_HEADER: challenge}, proof)
        if not engine_identity.verify(self.identity_key, challenge, proof[0]):
            raise EngineError(f"The engine at {self.shown_url} cannot prove it is this user's engine (another "
                              "program may hold its port); no text was sent to it.", unreachable=True)
        return body

    async def infill(self, request: InfillRequest, timeout: float = 60.0, *, document: str | None = None) -> InfillResult:
        """Ask for the text between `prefix` and `suffix`; `document` (its URI) keys a router's affinity."""
        started = time.perf_counter()
        if self.identity_key is not None:
            await self._health(min(timeout, 2.0))  # before the buffer leaves: is this still our engine?
        headers = self._headers | ({AFFINITY_HEADER: affinity_key(document)} if document else {})
        if self.backend == "mercury":
            body = await self._call("POST", "/v1/infill", request.to_json(), timeout, headers)
            answer = self._read(parse_infill_answer, body)
        elif self.backend == "llamacpp":
            body = await self._call("POST", foreign_fim.LLAMACPP_INFILL_PATH, foreign_fim.llamacpp_body(request),
                                    timeout, headers)
            answer = self._read(foreign_fim.parse_llamacpp_answer, body)
        else:
            route = ROUTES[self.backend]
            body = await self._call("POST", ROUTE_PATHS[route], self._completion_body(request, route), timeout,
                                    headers)
            answer = self._read(parse_completion_answer, body)
        round_trip_ms = (time.perf_counter() - started) * 1000
        return InfillResult(answer.completions, answer.tokens, answer.steps, answer.ms, round_trip_ms)

    def _completion_body(self, request: InfillRequest, route: Route) -> dict[str, Any]:
        if self.fim_template is None:
            return completion_body(request, route, self.remote_model)
        try:
            return foreign_fim.prompt_body(request, self.fim_template, self.remote_model)
        except ValueError as error:  # the code holds one of the family's markers: nothing to send as FIM
            raise EngineError(f"No {self.fim_template} FIM prompt can be written here: {error}") from None

    async def next_edit(self, prompt: str, min_confidence: float, timeout: float = 30.0) -> str:
        """Ask `POST /v1/edit/completions` (ours, or Inception's Mercury Edit) for the code to edit in `prompt`
        rewritten with the next edit; the answer is the region, changed or not."""
        if self.backend not in ("mercury", "inception"):
            raise EngineError(f"The {self.backend} backend has no next-edit route; use the mercury or inception backend.")
        if self.identity_key is not None:
            await self._health(min(timeout, 2.0))
        body: dict[str, Any] = {"model": self.remote_model or "mercury",
                                "messages": [{"role": "user", "content": prompt}]}
        if self.backend == "mercury":
            body["min_confidence"] = min_confidence  # our extension; Inception's route takes the documented fields
        answer = await self._call("POST", "/v1/edit/completions", body, timeout)
        try:
            return parse_edit_answer(answer)
        except ValueError as error:
            raise EngineError(f"The engine at {self.shown_url} answered in an unknown shape ({error}).") from None

    def _read(self, parse: Any, body: dict[str, Any]) -> InfillAnswer:
        try:
            return parse(body)
        except ValueError as error:  # a server with another answer shape
            raise EngineError(f"The engine at {self.shown_url} answered in an unknown shape ({error}).") from None

    async def _call(self, method: str, path: str, body: Any, timeout: float,
                    headers: dict[str, str] | None = None, proof: list[str | None] | None = None) -> dict[str, Any]:
        """One request; `headers` replace the key (None: send the key); `proof` receives the proof header."""
        headers = self._headers if headers is None else headers
        try:
            async with self._http().request(
                method, self.base_url + path, json=body, headers=headers, ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=timeout, connect=2.0),
            ) as response:
                payload = await _json_or_none(response)
                if proof is not None:
                    proof.append(response.headers.get(engine_identity.PROOF_HEADER))
                if response.status >= 400:
                    raise EngineError(self._refusal(payload, response), status=response.status)
        except aiohttp.ClientSSLError as error:
            raise EngineError(f"The engine at {self.shown_url} has a certificate this machine does not trust "
                              f"({type(error).__name__}); set a CA bundle for it.", unreachable=True) from error
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as error:
            raise EngineError(
                f"The engine at {self.shown_url} cannot be reached ({type(error).__name__}).",
                unreachable=True,
            ) from error
        if not isinstance(payload, dict):
            raise EngineError(f"The engine at {self.shown_url} answered {path} with no JSON object.")
        return payload

    def _refusal(self, payload: Any, response: aiohttp.ClientResponse) -> str:
        message = _error_message(payload, response)
        if self.backend == "openai" and foreign_fim.refuses_suffix(response.status, message):
            return (f"The server at {self.shown_url} does not accept `suffix` (vLLM and llama.cpp's /v1/completions "
                    "refuse it): set mercury.fimTemplate to your model's family "
                    f"({', '.join(fim_templates.TEMPLATES)}), or for a llama.cpp server set "
                    "mercury.backend to llamacpp.")
        return message


def affinity_key(document: str) -> str:
    """A stable, opaque key for one document: the same URI always gives the same key."""
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()[:32]


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python parses
        return None


def _error_message(payload: Any, response: aiohttp.ClientResponse) -> str:
    """The server's own sentence: OpenAI's `{"error": {"message"}}` (ours, Inception's, recent vLLM) or older
    vLLM's `{"object": "error", "message"}`."""
    message = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        message = payload["error"].get("message")
    elif isinstance(payload, dict) and payload.get("object") == "error":
        message = payload.get("message")
    if isinstance(message, str) and message:
        return f"The engine refused the request: {message[:500]}"
    return f"The engine answered HTTP {response.status} {response.reason}."
