"""Fill-in-the-middle as servers other than ours take it: a prompt written here for a model family and sent as
`prompt` only (vLLM refuses `suffix`), and llama.cpp's `POST /infill`. Pure Python: request bodies and answers.

The templates themselves are the engine's (`engine/api/fim_templates.py`), so both sides read one table.
"""

from __future__ import annotations

from typing import Any

from mercury_lsp.engine.api import fim_templates
from mercury_lsp.engine.api.infill import (
    Completion,
    InfillAnswer,
    InfillRequest,
    answer_count,
    answer_ms,
)

LLAMACPP_INFILL_PATH = "/infill"
# llama.cpp stops predicting this long after the first line break: an editor's suggestion later than this is
# worth less than a shorter one sooner (llama.vim sends the same field).
LLAMACPP_PREDICT_MS = 1000


def prompt_body(request: InfillRequest, template: str, model: str | None) -> dict[str, Any]:
    """A `/v1/completions` body with the family's FIM prompt and its stop tokens, and no `suffix`; raises
    ValueError (one sentence) when the code holds one of the family's marker strings."""
    spec = fim_templates.TEMPLATES[template]
    # The header and extra context are code before the prefix, as our engine lays them out.
    prompt = fim_templates.render(template, request.extra_context + request.header + request.prefix, request.suffix)
    stop = list(spec.stop) + (["\n"] if request.single_line else [])
    body: dict[str, Any] = {"prompt": prompt, "max_tokens": request.max_tokens, "n": request.n,
                            "temperature": request.temperature, "stop": stop}
    if model:
        body["model"] = model
    if request.seed:
        body["seed"] = request.seed
    return body


def llamacpp_body(request: InfillRequest) -> dict[str, Any]:
    """llama.cpp's `/infill` body: the code around the cursor, our extra context as one `input_extra` chunk (it
    names each file in its own header lines), a prediction budget, and the server's prompt cache kept warm."""
    body: dict[str, Any] = {
        "input_prefix": request.header + request.prefix,
        "input_suffix": request.suffix,
        "input_extra": [{"filename": "", "text": request.extra_context}] if request.extra_context else [],
        "prompt": "",
        "n_predict": request.max_tokens,
        "t_max_predict_ms": LLAMACPP_PREDICT_MS,
        "cache_prompt": True,
        "temperature": request.temperature,
    }
    if request.single_line:
        body["stop"] = ["\n"]
    if request.seed:
        body["seed"] = request.seed
    return body


def parse_llamacpp_answer(body: Any) -> InfillAnswer:
    """The one completion of an `/infill` answer (`content`), its token count and the server's time; raises
    ValueError on another shape."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        raise ValueError("the answer has no content text")
    tokens = answer_count(body.get("tokens_predicted"))
    timings = body.get("timings") if isinstance(body.get("timings"), dict) else {}
    spent = [answer_ms(timings.get(name)) for name in ("prompt_ms", "predicted_ms")]
    ms = sum(s for s in spent if s is not None) if any(s is not None for s in spent) else None
    return InfillAnswer((Completion(body["content"], tokens or 0),), tokens, None, ms)


def refuses_suffix(status: int | None, message: str) -> bool:
    """Whether an error is a server refusing the `suffix` field: vLLM ("suffix is not currently supported") and
    llama.cpp's `/v1/completions` ("Unsupported param: suffix") answer 400."""
    text = message.lower()
    return status == 400 and "suffix" in text and "support" in text
