"""The llama.cpp server's `POST /infill` contract, as llama.vim and llama.vscode send it: `input_prefix`,
`input_suffix`, `input_extra` (chunks of other files: extra context), `prompt` (the typed start of the middle, which
continues the prefix), `n_predict`; answered with `content`, `tokens_cached` and `timings` (the fields a client
lists in `response_fields`, flattened by path, when it lists them), or streamed as server-sent events.

A request is read into an `InfillRequest` through `parse_infill`, like every other route's. Fields llama.cpp has
and a diffusion infill has no use for (`cache_prompt`, `samplers`, `top_k`, `top_p`, `n_indent`, `t_max_*_ms`, ...)
are accepted and left: the engine caches the context itself and its own request deadline applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mercury_lsp.engine.api.completions import predicted_tokens
from mercury_lsp.engine.api.file_header import extra_file
from mercury_lsp.engine.api.infill import InfillRequest, parse_infill
from mercury_lsp.engine.api.validation import RequestError, text_field

MAX_EXTRA_CHUNKS = 256
MAX_STOP_STRINGS = 16


@dataclass(frozen=True)
class LlamaInfillRequest:
    """An `/infill` body: the infill it asks for (None for `n_predict: 0`, which only hands the server context to
    cache) and how the answer is shaped."""

    infill: InfillRequest | None
    stream: bool = False
    stop: tuple[str, ...] = ()
    response_fields: tuple[str, ...] = ()


def _extra_context(body: dict[str, Any]) -> str:
    chunks = body.get("input_extra")
    if chunks is None:
        return ""
    if not isinstance(chunks, list) or len(chunks) > MAX_EXTRA_CHUNKS:
        raise RequestError(f"Field 'input_extra' must be a list of at most {MAX_EXTRA_CHUNKS} chunks.")
    parts = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise RequestError("Each 'input_extra' chunk must be an object with 'text' and 'filename'.")
        text, filename = text_field(chunk, "text"), text_field(chunk, "filename")
        if text:
            parts.append(extra_file(filename, text) if filename else text)
    return "".join(parts)



def _strings(body: dict[str, Any], name: str, limit: int) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(s, str) for s in value):
        raise RequestError(f"Field '{name}' must be a list of at most {limit} strings.")
    return tuple(dict.fromkeys(value))


def parse_llama_infill(body: Any) -> LlamaInfillRequest:
    """The request in a decoded `/infill` body; raises RequestError (one sentence)."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("Field 'stream' must be true or false.")
    stop = tuple(s for s in _strings(body, "stop", MAX_STOP_STRINGS) if s)
    response_fields = _strings(body, "response_fields", 64)
    fields: dict[str, Any] = {
        "prefix": text_field(body, "input_prefix") + text_field(body, "prompt"),
        "suffix": text_field(body, "input_suffix"),
        "extra_context": _extra_context(body),
        "max_tokens": predicted_tokens(body.get("n_predict"), "n_predict"),
    }
    if body.get("temperature") is not None:
        fields["temperature"] = body["temperature"]
    seed = body.get("seed")
    if seed is not None and seed != -1:  # -1: llama.cpp's "any seed"
        fields["seed"] = seed
    if "\n" in stop:
        fields["single_line"] = True
    if body.get("n_predict") == 0:
        parse_infill(fields | {"max_tokens": 1})  # checked all the same
        return LlamaInfillRequest(None, stream, stop, response_fields)
    return LlamaInfillRequest(parse_infill(fields), stream, stop, response_fields)


@dataclass(frozen=True)
class InfillFigures:
    """What one answered request cost, in llama.cpp's terms."""

    prompt_tokens: int
    predicted_tokens: int
    ms: float


def timings_json(figures: InfillFigures) -> dict[str, float | int]:
    """llama.cpp's `timings`. The engine times a request as a whole (the context and the canvas are computed
    together, step by step): all of it is counted as prediction time, none as prompt time."""
    ms = figures.ms
    tokens = figures.predicted_tokens
    return {"prompt_n": figures.prompt_tokens, "prompt_ms": 0.0, "prompt_per_token_ms": 0.0,
            "prompt_per_second": 0.0, "predicted_n": tokens, "predicted_ms": round(ms, 3),
            "predicted_per_token_ms": round(ms / tokens, 3) if tokens else 0.0,
            "predicted_per_second": round(tokens * 1000 / ms, 3) if tokens and ms > 0 else 0.0}


def stop_type(stopping_word: str, predicted_tokens: int, max_tokens: int) -> str:
    if stopping_word:
        return "word"
    return "limit" if predicted_tokens >= max_tokens else "eos"


def infill_json(content: str, figures: InfillFigures, model: str, stopped_by: str, kind: str,
                stop: bool = True) -> dict[str, Any]:
    """The whole answer, or with `stop` false one streamed piece (`content` the new text only)."""
    answer: dict[str, Any] = {"index": 0, "content": content, "id_slot": 0, "stop": stop, "model": model}
    if stop:
        answer |= {"tokens_predicted": figures.predicted_tokens, "tokens_evaluated": figures.prompt_tokens,
                   "tokens_cached": figures.prompt_tokens + figures.predicted_tokens, "truncated": False,
                   "stop_type": kind, "stopping_word": stopped_by, "timings": timings_json(figures)}
    return answer


def select_fields(answer: dict[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """llama.cpp's `response_fields`: only the listed values, each under its path (`timings/prompt_n`); paths that
    name nothing are left out."""
    picked = {}
    for path in paths:
        value: Any = answer
        for key in path.split("/"):
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            picked[path] = value
    return picked
