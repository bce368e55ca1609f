"""The Ollama contract: `POST /api/generate` with `prompt` and `suffix` (streamed as NDJSON unless `stream` is
false), and the model listing `/api/tags`, `/api/show` and `/api/version` that clients call first.

A request is read into an `InfillRequest` through `parse_infill`, like every other route's. Any model name is
answered by the one model this engine serves (clients send the name their own configuration holds).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from mercury_lsp.engine.api.completions import predicted_tokens, prompt_fields
from mercury_lsp.engine.api.infill import InfillRequest, parse_infill
from mercury_lsp.engine.api.validation import RequestError

# The Ollama release whose API these routes follow; clients compare it with the version a feature needs.
OLLAMA_VERSION = "0.12.0"
# What /api/show says the model takes: Ollama's own test for fill-in-the-middle support is a template that
# uses `.Suffix`, and `insert` among the capabilities.
TEMPLATE = "{{ .Prompt }}<|mask|>{{ .Suffix }}"
CAPABILITIES = ["completion", "insert"]


@dataclass(frozen=True)
class GenerateRequest:
    """A `/api/generate` body: the infill it asks for (None: nothing to fill, Ollama's way to load a model), the
    model name to answer under, and how the answer is shaped."""

    infill: InfillRequest | None
    model: str
    stream: bool = True
    stop: tuple[str, ...] = ()


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options")
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise RequestError("Field 'options' must be an object.")
    return options



def _stop(options: dict[str, Any]) -> tuple[str, ...]:
    stop = options.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 16:
        raise RequestError("Field 'options.stop' must be a list of up to 16 non-empty strings.")
    return tuple(dict.fromkeys(stop))


def parse_generate(body: Any) -> GenerateRequest:
    """The request in a decoded `/api/generate` body; raises RequestError (one sentence). Fields Ollama has and a
    diffusion infill has no use for (`raw`, `keep_alive`, `context`, sampling options) are accepted and left."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model", "")
    if not isinstance(model, str):
        raise RequestError("Field 'model' must be a string.")
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise RequestError("Field 'stream' must be true or false.")
    for name in ("format", "images"):
        if body.get(name):
            raise RequestError(f"Field '{name}' is not supported; leave it out.")
    prompt, suffix = body.get("prompt", ""), body.get("suffix")
    if not isinstance(prompt, str):
        raise RequestError("Field 'prompt' must be a string.")
    options = _options(body)
    stop = _stop(options)
    if not prompt and suffix in (None, ""):
        return GenerateRequest(None, model, stream, stop)
    fields: dict[str, Any] = prompt_fields(prompt) if suffix in (None, "") else {"prefix": prompt, "suffix": suffix}
    fields["max_tokens"] = predicted_tokens(options.get("num_predict"), "options.num_predict")
    for name in ("temperature", "seed"):
        if options.get(name) is not None:
            fields[name] = options[name]
    if "\n" in stop:
        fields["single_line"] = True
    return GenerateRequest(parse_infill(fields), model, stream, stop)


def timestamp(at: float) -> str:
    """RFC 3339 in UTC, as Ollama writes `created_at` and `modified_at`."""
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def generate_chunk(model: str, created: float, text: str) -> dict[str, Any]:
    """One streamed piece of the answer."""
    return {"model": model, "created_at": timestamp(created), "response": text, "done": False}


def generate_done(model: str, created: float, text: str, reason: str, prompt_tokens: int, tokens: int,
                  ms: float) -> dict[str, Any]:
    """The last line of a stream (`text` empty) or the whole answer; durations in nanoseconds, as Ollama gives
    them. The engine times a request as a whole: all of it is counted as evaluation, none as prompt time."""
    nanoseconds = int(ms * 1e6)
    return {"model": model, "created_at": timestamp(created), "response": text, "done": True, "done_reason": reason,
            "total_duration": nanoseconds, "load_duration": 0, "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 0, "eval_count": tokens, "eval_duration": nanoseconds}


@dataclass(frozen=True)
class ModelCard:
    """What the listing routes say about the served model."""

    name: str
    size: int
    modified: float
    digest: str
    parameters: int
    context_tokens: int | None

    def details(self) -> dict[str, Any]:
        return {"parent_model": "", "format": "safetensors", "family": "mercury", "families": ["mercury"],
                "parameter_size": _parameter_size(self.parameters), "quantization_level": ""}


def _parameter_size(parameters: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if parameters >= scale:
            return f"{parameters / scale:.1f}{unit}"
    return str(parameters)


def tags_json(card: ModelCard) -> dict[str, Any]:
    return {"models": [{"name": card.name, "model": card.name, "modified_at": timestamp(card.modified),
                        "size": card.size, "digest": card.digest, "details": card.details()}]}


def show_json(card: ModelCard) -> dict[str, Any]:
    info: dict[str, Any] = {"general.architecture": "mercury", "general.parameter_count": card.parameters}
    if card.context_tokens:
        info["mercury.context_length"] = card.context_tokens
    return {"modelfile": f"FROM {card.name}\n", "parameters": "", "template": TEMPLATE, "details": card.details(),
            "model_info": info, "capabilities": CAPABILITIES, "modified_at": timestamp(card.modified)}


def show_model(body: Any) -> str:
    """The model a `/api/show` body names (`model`, or the older `name`)."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model", body.get("name", ""))
    if not isinstance(model, str):
        raise RequestError("Field 'model' must be a string.")
    return model
