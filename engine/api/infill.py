"""The /v1/infill contract: one request type with its ranges, which every route's body is read into at the
engine's HTTP boundary and which the language server's client builds, and the answer with its per-token confidence
spans, read by the client."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from mercury_lsp.engine.api.validation import (
    RequestError,
    choice_field,
    flag_field,
    int_field,
    is_int,
    is_number,
    number_field,
    text_field,
)

LengthMode = Literal["auto", "filler", "expand"]

MAX_CANVAS = 256  # tokens one request may ask for
# The canvas of a single-line request (the language server and the evaluation ask the same): a line rarely needs
# more, and a smaller canvas is a faster step (bench/RESULTS.md).
SINGLE_LINE_TOKENS = 16
MAX_CANDIDATES = 8
MAX_STEPS = 4 * MAX_CANVAS
MAX_TIMEOUT_MS = 600_000.0
MAX_HEADER_CHARS = 2_000
SEED_RANGE = (0, 2**64 - 1)
LENGTH_MODES: tuple[str, ...] = ("auto", "filler", "expand")


@dataclass(frozen=True)
class InfillRequest:
    """Fill the gap between `prefix` and `suffix`.

    `header` (file path, language) and `extra_context` (code from other files) travel apart from the code: the
    engine fits everything to the model's positions and trims the code body and the extra context, never the
    header. Unset sampler fields (None) take the engine's defaults.
    """

    prefix: str
    suffix: str = ""
    header: str = ""
    extra_context: str = ""
    max_tokens: int = 64
    steps: int | None = None
    threshold: float | None = None
    temperature: float = 0.0
    n: int = 1
    seed: int = 0
    single_line: bool = False
    length_mode: LengthMode = "auto"
    refine: bool = False
    id: str | None = None  # the client's name for it, for POST /v1/cancel
    timeout_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The request body: defaults left out, so an older engine still accepts a plain request."""
        defaults = InfillRequest(prefix="")
        return {
            key: value
            for key, value in asdict(self).items()
            if key in ("prefix", "max_tokens") or value != getattr(defaults, key)
        }


FIELD_NAMES = frozenset(f.name for f in fields(InfillRequest))


def _client_id(body: dict[str, Any]) -> str | None:
    value = body.get("id")
    if value is None:
        return None
    if not (isinstance(value, str) or is_int(value)) or len(str(value)) > 200:
        raise RequestError("Field 'id' must be a string (at most 200 characters) or an integer.")
    return str(value)


def parse_infill(body: Any, *, allow_unknown: bool = False) -> InfillRequest:
    """The request in a decoded JSON body, every field checked; raises RequestError on the first problem."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    unknown = sorted(set(body) - FIELD_NAMES)
    if unknown and not allow_unknown:
        raise RequestError(f"Unknown field '{unknown[0]}'.")
    if "prefix" not in body:
        raise RequestError("Field 'prefix' is required.")
    header = text_field(body, "header")
    if len(header) > MAX_HEADER_CHARS:
        raise RequestError(f"Field 'header' must be at most {MAX_HEADER_CHARS} characters.")
    return InfillRequest(
        prefix=text_field(body, "prefix"),
        suffix=text_field(body, "suffix"),
        header=header,
        extra_context=text_field(body, "extra_context"),
        max_tokens=int_field(body, "max_tokens", 64, 1, MAX_CANVAS),
        steps=int_field(body, "steps", None, 1, MAX_STEPS),
        threshold=number_field(body, "threshold", None, 0.0, 1.0, low_open=True),
        temperature=number_field(body, "temperature", 0.0, 0.0, 5.0),
        n=int_field(body, "n", 1, 1, MAX_CANDIDATES),
        seed=int_field(body, "seed", 0, *SEED_RANGE),
        single_line=flag_field(body, "single_line"),
        length_mode=choice_field(body, "length_mode", LENGTH_MODES, "auto"),
        refine=flag_field(body, "refine"),
        id=_client_id(body),
        timeout_ms=number_field(body, "timeout_ms", None, 0.0, MAX_TIMEOUT_MS, low_open=True),
    )


@dataclass(frozen=True)
class Span:
    """The characters [start, end) of a suggestion that one committed token (or a few, where a character spans
    several tokens) produced, and the lowest confidence among those tokens."""

    start: int
    end: int
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "confidence": round(self.confidence, 4)}


@dataclass(frozen=True)
class Completion:
    """One candidate's text, its content-token count and its confidence spans (they tile the text)."""

    text: str
    tokens: int
    spans: tuple[Span, ...] = field(default_factory=tuple)


def parse_spans(raw: Any, text: str) -> tuple[Span, ...]:
    """Spans from an answer, checked to tile `text`; () when absent or inconsistent (older engines, other servers)."""
    if not isinstance(raw, list):
        return ()
    spans: list[Span] = []
    at = 0
    for item in raw:
        if not isinstance(item, dict):
            return ()
        start, end, confidence = item.get("start"), item.get("end"), item.get("confidence")
        if not (is_int(start) and is_int(end) and is_number(confidence)) or start != at or end < start:
            return ()
        spans.append(Span(start, end, float(confidence)))
        at = end
    return tuple(spans) if at == len(text) else ()


@dataclass(frozen=True)
class InfillAnswer:
    """An engine's answer as the client reads it (from /v1/infill or an OpenAI-style route); None where the server
    gave no such figure."""

    completions: tuple[Completion, ...]
    tokens: int | None
    steps: int | None
    ms: float | None


def answer_count(value: Any) -> int | None:
    return value if is_int(value) and value >= 0 else None


def answer_ms(value: Any) -> float | None:
    return float(value) if is_number(value) and value >= 0 else None


def parse_infill_answer(body: Any) -> InfillAnswer:
    """The candidates (or the one text) of a /v1/infill answer with their spans; raises ValueError on another
    shape."""
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    if body.get("candidates"):
        texts = body["candidates"]
        spans = body.get("candidate_spans")
        if not isinstance(texts, list) or not isinstance(spans, (list, type(None))):
            raise ValueError("the candidates are not a list")
        spans = spans if spans is not None and len(spans) == len(texts) else [None] * len(texts)
    else:
        texts, spans = [body.get("text")], [body.get("spans")]
    if not all(isinstance(text, str) for text in texts):
        raise ValueError("a completion is not a string")
    completions = tuple(Completion(text, 0, parse_spans(raw, text)) for text, raw in zip(texts, spans))
    return InfillAnswer(completions, answer_count(body.get("tokens")), answer_count(body.get("steps")),
                        answer_ms(body.get("ms")))
