"""The OpenAI-compatible completion contract in both directions: `/v1/completions` (OpenAI, with `suffix`, as
vLLM and SGLang serve it) and `/v1/fim/completions` (Inception's Mercury Edit shape).

The engine reads a body into an `InfillRequest` through `parse_infill` (one validation for every route) and writes
answers and stream chunks here; a prompt that a client wrote in a FIM template (and sent without `suffix`) is read
into prefix, suffix, header and extra context; the language server's client writes bodies from an `InfillRequest` and reads answers
here. Pure Python: the language server imports it without the engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mercury_lsp.engine.api import fim_templates
from mercury_lsp.engine.api.file_header import extra_file, file_header, language_of
from mercury_lsp.engine.api.infill import (
    MAX_CANVAS,
    Completion,
    InfillAnswer,
    InfillRequest,
    RequestError,
    Span,
    answer_count,
    answer_ms,
    parse_infill,
)
from mercury_lsp.engine.api.validation import is_int

Route = Literal["completions", "fim"]
ROUTE_PATHS: dict[Route, str] = {"completions": "/v1/completions", "fim": "/v1/fim/completions"}

DEFAULT_MAX_TOKENS = 64  # OpenAI's default is 16 and Inception's 512; an editor's completion wants 64


def predicted_tokens(value: Any, name: str) -> int:
    """A token budget in llama.cpp's and Ollama's convention: a negative one (until the end of text, or fill the
    context) is the engine's default canvas, and more than the canvas holds is served as the most it holds."""
    if value is None:
        return DEFAULT_MAX_TOKENS
    if not is_int(value):
        raise RequestError(f"Field '{name}' must be an integer.")
    return DEFAULT_MAX_TOKENS if value < 0 else min(value, MAX_CANVAS)


# Inception's documented default for /v1/fim/completions: stop at code-block boundaries.
FIM_DEFAULT_STOP = ("\n\n", "\n \n")
MAX_STOP_STRINGS = 16
MAX_STOP_CHARS = 200
MAX_LOGPROBS = 5
LOGPROB_FLOOR = math.log(1e-9)  # a confidence of 0 has no logarithm; JSON has no -Infinity

# Sampling fields other servers apply and a diffusion sampler has no use for: accepted so that existing clients
# work, checked like the servers that define them, and named in the answer's `warning` when they would change
# anything there. name -> (lowest, highest, the value that changes nothing)
COMPAT_FIELDS: dict[str, tuple[float, float, float]] = {
    "top_p": (0.0, 1.0, 1.0),
    "top_k": (-1, 1000, -1),
    "frequency_penalty": (-2.0, 2.0, 0.0),
    "presence_penalty": (-2.0, 2.0, 0.0),
    "repetition_penalty": (0.0, 10.0, 1.0),
}
# Our own fields beyond the OpenAI shape, passed to the engine as they are.
EXTENSION_FIELDS = ("suffix", "temperature", "n", "seed", "id", "timeout_ms", "steps", "threshold")


@dataclass(frozen=True)
class CompletionRequest:
    """An OpenAI-style completion request: the infill it asks for and how the answer is shaped."""

    infill: InfillRequest
    route: Route
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False
    ignored: tuple[str, ...] = ()  # sampling fields given that this engine does not apply


def _fail(message: str) -> RequestError:
    return RequestError(message)


def _prompt(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        raise _fail("Field 'prompt' must be one string: one prompt per request.")
    if not isinstance(prompt, str):
        raise _fail("Field 'prompt' must be a string." if "prompt" in body else "Field 'prompt' is required.")
    return prompt


def _stop(body: dict[str, Any], route: Route) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return FIM_DEFAULT_STOP if route == "fim" and "stop" not in body else ()
    if isinstance(stop, str):
        stop = [stop]
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_STRINGS
            or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_CHARS for s in stop)):
        raise _fail(f"Field 'stop' must be a non-empty string or a list of up to {MAX_STOP_STRINGS} of them "
                    f"(each at most {MAX_STOP_CHARS} characters).")
    return tuple(dict.fromkeys(stop))


def _stream_options(body: dict[str, Any], stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise _fail("Field 'stream_options' must be an object with a true/false 'include_usage'.")
    if not stream:
        raise _fail("Field 'stream_options' needs stream: true.")
    return options.get("include_usage", False)


def _compat(body: dict[str, Any]) -> tuple[str, ...]:
    ignored = []
    for name, (low, high, neutral) in COMPAT_FIELDS.items():
        value = body.get(name)
        if value is None:
            continue
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not numeric or not low <= value <= high or (name == "top_k" and value == 0):
            raise _fail(f"Field '{name}' must be a number from {low:g} to {high:g}"
                        + (" (-1 for no limit, not 0)." if name == "top_k" else "."))
        if value != neutral:
            ignored.append(name)
    return tuple(ignored)


def _unsupported(body: dict[str, Any]) -> None:
    if body.get("echo"):
        raise _fail("Field 'echo' is not supported; send false.")
    logprobs = body.get("logprobs")
    if logprobs is not None and (isinstance(logprobs, bool) or not isinstance(logprobs, int)
                                 or not 0 <= logprobs <= MAX_LOGPROBS):
        raise _fail(f"Field 'logprobs' must be an integer from 0 to {MAX_LOGPROBS}.")
    best_of = body.get("best_of")
    if best_of is not None and best_of != body.get("n", 1):
        raise _fail("Field 'best_of' is not supported; leave it out (or equal to n).")
    if body.get("logit_bias"):
        raise _fail("Field 'logit_bias' is not supported; leave it out.")
    if "model" in body and not isinstance(body["model"], (str, type(None))):
        raise _fail("Field 'model' must be a string.")


def parse_completion_request(body: Any, route: Route) -> CompletionRequest:
    """The request in a decoded `/v1/completions` or `/v1/fim/completions` body; raises RequestError (one sentence).

    Unknown fields are ignored, as OpenAI-compatible servers do; the infill fields go through `parse_infill`.
    """
    if not isinstance(body, dict):
        raise _fail("The request body must be a JSON object.")
    prompt = _prompt(body)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _fail("Field 'stream' must be true or false.")
    include_usage = _stream_options(body, stream)
    _unsupported(body)
    ignored = _compat(body)
    stop = _stop(body, route)
    # OpenAI clients send null for "the default"; the engine's own fields keep their names.
    fields: dict[str, Any] = {"prefix": prompt, "max_tokens": DEFAULT_MAX_TOKENS}
    fields |= {key: body[key] for key in ("max_tokens", *EXTENSION_FIELDS) if body.get(key) is not None}
    if body.get("suffix") in (None, ""):
        fields |= prompt_fields(prompt)
    if "\n" in stop:
        fields["single_line"] = True  # the text is cut at its first line break anyway: the engine can stop there
    return CompletionRequest(parse_infill(fields), route, stop, stream, include_usage, ignored)


def prompt_fields(prompt: str) -> dict[str, str]:
    """The infill fields of a prompt: prefix, suffix, header and extra context when it is written in a FIM template
    (its other files become extra context, its file path the header), else the whole prompt as the prefix."""
    parsed = fim_templates.parse(prompt)
    if parsed is None:
        return {"prefix": prompt}
    fields = {"prefix": parsed.prefix, "suffix": parsed.suffix,
              "extra_context": "".join(extra_file(f.path, f.text) for f in parsed.files)}
    if parsed.path:
        fields["header"] = file_header(parsed.path, language_of(parsed.path))
    return fields


# -- answers ------------------------------------------------------------------------------------------------------

def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def streamable_length(text: str, stop: Sequence[str]) -> tuple[int, bool]:
    """How much of a growing text can be sent now, and whether the text is finished there: up to the earliest stop
    string, unless a longer one could still complete before it; else all but a tail that could begin one."""
    longest = max((len(s) for s in stop), default=0)
    # The first position from which the text's end is a proper beginning of some stop string (still undecided).
    open_at = next((q for q in range(max(len(text) - longest + 1, 0), len(text))
                    if any(len(s) > len(text) - q and s.startswith(text[q:]) for s in stop)), len(text))
    cut, stopped = apply_stop(text, stop)
    if stopped and len(cut) <= open_at:
        return len(cut), True
    return min(open_at, len(cut)), False


def logprobs_json(text: str, spans: Sequence[Span]) -> dict[str, Any] | None:
    """The legacy completions `logprobs` object from confidence spans: one entry per span, the logarithm of its
    confidence, offsets into the completion text (vLLM's convention without echo). None without spans."""
    kept = [s for s in spans if s.start < len(text)]
    if not kept:
        return None
    return {
        "tokens": [text[s.start : min(s.end, len(text))] for s in kept],
        "token_logprobs": [round(max(math.log(s.confidence), LOGPROB_FLOOR) if s.confidence > 0 else LOGPROB_FLOOR, 4)
                           for s in kept],
        "top_logprobs": None,
        "text_offset": [s.start for s in kept],
    }


def finish_reason(completion: Completion, max_tokens: int, stopped: bool) -> str:
    return "stop" if stopped or completion.tokens < max_tokens else "length"


def usage_json(route: Route, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if route == "fim":  # Inception's FIMUsage names these too; a diffusion infill neither reasons nor bills a cache
        usage |= {"reasoning_tokens": 0, "cached_input_tokens": 0}
    return usage


def warning_text(request: CompletionRequest) -> str | None:
    if not request.ignored:
        return None
    return f"This engine does not apply {', '.join(request.ignored)}; the answer was sampled without them."


@dataclass(frozen=True)
class AnswerHead:
    """What every answer and chunk of one request repeats."""

    completion_id: str
    created: int
    model: str

    def wrap(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.completion_id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": choices}


def completion_answer(head: AnswerHead, request: CompletionRequest, completions: Sequence[Completion],
                      prompt_tokens: int, cut: Sequence[tuple[str, tuple[Span, ...], bool]]) -> dict[str, Any]:
    """The whole (non-streamed) answer; `cut` holds each completion's text and spans after the stop strings."""
    choices = [
        {"text": text, "index": index, "logprobs": logprobs_json(text, spans),
         "finish_reason": finish_reason(completion, request.infill.max_tokens, stopped)}
        for index, (completion, (text, spans, stopped)) in enumerate(zip(completions, cut))
    ]
    answer = head.wrap(choices)
    answer["usage"] = usage_json(request.route, prompt_tokens, sum(c.tokens for c in completions))
    if (warning := warning_text(request)) is not None:
        answer["warning"] = warning
    return answer


def chunk_json(head: AnswerHead, request: CompletionRequest, index: int, text: str,
               reason: str | None = None) -> dict[str, Any]:
    """One streamed piece of one choice (`reason` on its last piece)."""
    chunk = head.wrap([{"text": text, "index": index, "logprobs": None, "finish_reason": reason}])
    if request.include_usage:
        chunk["usage"] = None  # OpenAI: every chunk names usage, null until the last one
    return chunk


def usage_chunk_json(head: AnswerHead, request: CompletionRequest, prompt_tokens: int,
                     completion_tokens: int) -> dict[str, Any]:
    chunk = head.wrap([])
    chunk["usage"] = usage_json(request.route, prompt_tokens, completion_tokens)
    return chunk


# -- the client's side --------------------------------------------------------------------------------------------

def completion_body(request: InfillRequest, route: Route, model: str | None) -> dict[str, Any]:
    """The body another server is sent for an infill request: only fields its documented shape has. Those
    servers know no header or extra context: both go before the prefix, in the order our engine lays them."""
    prompt = request.extra_context + request.header + request.prefix
    body: dict[str, Any] = {"prompt": prompt, "suffix": request.suffix, "max_tokens": request.max_tokens}
    if model:
        body["model"] = model
    if request.single_line:
        body["stop"] = ["\n"]
    if route == "completions":  # Inception's FIM shape has neither; its sampling is its own
        body |= {"n": request.n, "temperature": request.temperature}
        if request.seed:
            body["seed"] = request.seed
    return body


def spans_from_logprobs(raw: Any, text: str) -> tuple[Span, ...]:
    """Confidence spans from a legacy `logprobs` object whose tokens spell `text`; () when absent or inconsistent."""
    if not isinstance(raw, dict):
        return ()
    tokens, logprobs = raw.get("tokens"), raw.get("token_logprobs")
    if not (isinstance(tokens, list) and isinstance(logprobs, list) and len(tokens) == len(logprobs)):
        return ()
    spans, at = [], 0
    for token, logprob in zip(tokens, logprobs):
        if not isinstance(token, str) or not isinstance(logprob, (int, float)) or isinstance(logprob, bool):
            return ()
        if not token:
            continue
        if text[at : at + len(token)] != token:
            return ()
        spans.append(Span(at, at + len(token), math.exp(min(float(logprob), 0.0))))
        at += len(token)
    return tuple(spans) if at == len(text) else ()


def parse_completion_answer(body: Any) -> InfillAnswer:
    """The completions in an OpenAI-style answer (either route), in choice order; raises ValueError on another
    shape."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
        raise ValueError("the answer has no list of choices")
    choices = sorted(body["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    completions = []
    for choice in choices:
        if not isinstance(choice, dict) or not isinstance(choice.get("text"), str):
            raise ValueError("a choice has no text")
        text = choice["text"]
        completions.append(Completion(text, 0, spans_from_logprobs(choice.get("logprobs"), text)))
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    # steps and ms are our engine's extensions: None from other servers
    return InfillAnswer(tuple(completions), answer_count(usage.get("completion_tokens")),
                        answer_count(body.get("steps")), answer_ms(body.get("ms")))
