"""The /v1/edit/completions contract in the shape of Inception's Mercury Edit 2 (docs.inceptionlabs.ai, "Next
edit"): one user message whose prompt carries the recently viewed snippets, the current file with the region to
edit and the cursor, and the edit history as unified diffs; the answer is the region rewritten, in triple
backticks, in a chat completion.

Both sides live here: the engine reads requests and writes answers, the language server builds prompts and reads
answers (ours, or Inception's own). Pure Python (no torch).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mercury_lsp.engine.api.validation import RequestError

SNIPPETS = ("<|recently_viewed_code_snippets|>", "<|/recently_viewed_code_snippets|>")
SNIPPET = ("<|recently_viewed_code_snippet|>", "<|/recently_viewed_code_snippet|>")
FILE = ("<|current_file_content|>", "<|/current_file_content|>")
REGION = ("<|code_to_edit|>", "<|/code_to_edit|>")
HISTORY = ("<|edit_diff_history|>", "<|/edit_diff_history|>")
CURSOR = "<|cursor|>"
FILE_PATH = "current_file_path: "
SNIPPET_PATH = "code_snippet_file_path: "
MAX_TOKENS = 1024
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


@dataclass(frozen=True)
class Snippet:
    path: str
    code: str


@dataclass(frozen=True)
class EditPrompt:
    """What a next-edit prompt says: the file (markers removed), the region to edit in it, the cursor, the history."""

    path: str
    text: str
    region: tuple[int, int]  # character range of the code to edit in `text`
    cursor: int | None  # character offset in `text`
    history: str  # unified diffs, the most recent last
    snippets: tuple[Snippet, ...] = ()

    def last_edit_lines(self) -> tuple[int, int] | None:
        """0-based [first, last) lines the most recent diff wrote in the file as it is now; None without history."""
        hunks = list(_HUNK.finditer(self.history))
        if not hunks:
            return None
        start, count = int(hunks[-1].group(1)), int(hunks[-1].group(2) or 1)
        first = max(start - 1, 0) if count else start  # a pure deletion sits between two lines
        return first, first + max(count, 1)


@dataclass(frozen=True)
class EditCompletionRequest:
    model: str | None
    prompt: EditPrompt
    max_tokens: int | None
    min_confidence: float | None = None  # our extension: the least confident token a rewrite may have


def _ended(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def build_edit_prompt(prompt: EditPrompt) -> str:
    """The prompt text Mercury Edit expects (empty sections are kept, as its documentation asks).

    The region is whole lines; the prompt ends it, and the file, with a line break where they had none."""
    start, end = prompt.region
    region = prompt.text[start:end]
    if prompt.cursor is not None and start <= prompt.cursor <= end:
        region = region[: prompt.cursor - start] + CURSOR + region[prompt.cursor - start :]
    region = _ended(region)
    snippets = "".join(f"{SNIPPET[0]}\n{SNIPPET_PATH}{s.path}\n{s.code.rstrip()}\n{SNIPPET[1]}\n"
                       for s in prompt.snippets)
    history = prompt.history if not prompt.history or prompt.history.endswith("\n") else prompt.history + "\n"
    return (f"{SNIPPETS[0]}\n{snippets}\n{SNIPPETS[1]}\n\n"
            f"{FILE[0]}\n{FILE_PATH}{prompt.path}\n{prompt.text[:start]}"
            f"{REGION[0]}\n{region}{REGION[1]}\n{_ended(prompt.text[end:])}{FILE[1]}\n\n"
            f"{HISTORY[0]}\n{history}\n{HISTORY[1]}")


def _section(content: str, tags: tuple[str, str]) -> str:
    opened, closed = content.find(tags[0]), content.find(tags[1])
    if opened < 0 or closed < opened or content.count(tags[0]) != 1:
        raise RequestError(f"The prompt needs exactly one {tags[0]} ... {tags[1]} section.")
    return content[opened + len(tags[0]) : closed]


def _snippets(section: str) -> tuple[Snippet, ...]:
    found = []
    for block in section.split(SNIPPET[0])[1:]:
        body = block.split(SNIPPET[1], 1)[0].strip("\n")
        first, _, code = body.partition("\n")
        path = first[len(SNIPPET_PATH):] if first.startswith(SNIPPET_PATH) else ""
        found.append(Snippet(path, code if path else body))
    return tuple(found)


def parse_edit_prompt(content: str) -> EditPrompt:
    """Read a Mercury Edit prompt; a prompt without its sections gets a one-sentence RequestError."""
    snippets = _snippets(_section(content, SNIPPETS))
    history = _section(content, HISTORY).strip("\n")
    body = _section(content, FILE).removeprefix("\n")
    path = ""
    if body.startswith(FILE_PATH):
        first, _, body = body.partition("\n")
        path = first[len(FILE_PATH):]
    before, _, rest = body.partition(REGION[0])
    region, closed, after = rest.partition(REGION[1])
    if not closed or REGION[0] in rest or REGION[1] in after:
        raise RequestError(f"The current file needs exactly one {REGION[0]} ... {REGION[1]} region.")
    region, after = region.removeprefix("\n"), after.removeprefix("\n")
    if region.count(CURSOR) > 1 or CURSOR in before or CURSOR in after:
        raise RequestError(f"The prompt may hold one {CURSOR}, inside the code to edit.")
    cursor = len(before) + region.index(CURSOR) if CURSOR in region else None
    region = region.replace(CURSOR, "")
    text = before + region + after
    return EditPrompt(path, text, (len(before), len(before) + len(region)), cursor, history, snippets)


def parse_edit_request(body: Any) -> EditCompletionRequest:
    """The request body, checked in full: `model`, exactly one user message, `max_tokens`; no streaming."""
    if not isinstance(body, dict):
        raise RequestError("The request body must be a JSON object.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("Field 'model' must be a string.")
    messages = body.get("messages")
    if not (isinstance(messages, list) and len(messages) == 1 and isinstance(messages[0], dict)
            and messages[0].get("role") == "user" and isinstance(messages[0].get("content"), str)):
        raise RequestError("Field 'messages' must hold exactly one message with role 'user' and string content.")
    if body.get("stream"):
        raise RequestError("/v1/edit/completions does not stream; send stream false or leave it out.")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or not 1 <= max_tokens <= MAX_TOKENS):
        raise RequestError(f"Field 'max_tokens' must be an integer from 1 to {MAX_TOKENS}.")
    min_confidence = body.get("min_confidence")
    if min_confidence is not None and (isinstance(min_confidence, bool) or not isinstance(min_confidence, (int, float))
                                       or not 0.0 <= min_confidence <= 1.0):
        raise RequestError("Field 'min_confidence' must be a number from 0 to 1.")
    return EditCompletionRequest(model, parse_edit_prompt(messages[0]["content"]), max_tokens,
                                 None if min_confidence is None else float(min_confidence))


def edit_answer(answer_id: str, created: int, model: str, region: str, prompt_tokens: int,
                completion_tokens: int) -> dict[str, Any]:
    """A chat completion whose message is the rewritten region in triple backticks."""
    content = f"```\n{_ended(region)}```"
    return {
        "id": answer_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def parse_edit_answer(body: Any) -> str:
    """The rewritten region from an answer (ours or Inception's); ValueError when the shape is another."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("no choices[0].message.content") from None
    if not isinstance(content, str):
        raise ValueError("choices[0].message.content is not text")
    fenced = re.search(r"```[^\n]*\n(.*?)```", content, re.DOTALL)
    region = fenced.group(1) if fenced else content
    return region.replace(CURSOR, "")
