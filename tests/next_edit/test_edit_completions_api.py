"""The Mercury Edit prompt and answer: what the language server builds is what the engine reads back."""

from __future__ import annotations

import pytest

from mercury_lsp.engine.api.edit_completions import (
    EditPrompt,
    Snippet,
    build_edit_prompt,
    edit_answer,
    parse_edit_answer,
    parse_edit_prompt,
    parse_edit_request,
)
from mercury_lsp.engine.api.validation import RequestError

TEXT = "def add(a, b):\n    item = a + b\n    return result\n\nprint(add(1, 2))\n"
REGION = (TEXT.index("    item"), TEXT.index("\nprint") + 1)
HISTORY = "--- calc.py\n+++ calc.py\n@@ -2,1 +2,1 @@\n-    result = a + b\n+    item = a + b\n"


def prompt() -> EditPrompt:
    return EditPrompt("calc.py", TEXT, REGION, TEXT.index(" = a"), HISTORY, (Snippet("util.py", "def f(): pass"),))


def test_a_built_prompt_reads_back_as_it_was() -> None:
    built = build_edit_prompt(prompt())
    assert "<|code_to_edit|>\n    item<|cursor|> = a + b\n    return result\n\n<|/code_to_edit|>\n" in built
    assert built.startswith("<|recently_viewed_code_snippets|>\n<|recently_viewed_code_snippet|>\n"
                            "code_snippet_file_path: util.py\ndef f(): pass\n<|/recently_viewed_code_snippet|>\n")
    assert built.endswith("<|edit_diff_history|>\n" + HISTORY + "\n<|/edit_diff_history|>")
    read = parse_edit_prompt(built)
    assert (read.path, read.text, read.region, read.cursor) == ("calc.py", TEXT, REGION, TEXT.index(" = a"))
    assert read.history == HISTORY.strip("\n") and read.snippets == prompt().snippets
    assert read.last_edit_lines() == (1, 2)


def test_inceptions_documented_example_is_read() -> None:
    example = ("<|recently_viewed_code_snippets|>\n\n<|/recently_viewed_code_snippets|>\n<|current_file_content|>\n"
               "current_file_path: add.py\n<|code_to_edit|>\ndef add(a, b):\n    return a - b<|cursor|>\n"
               "<|/code_to_edit|>\n<|/current_file_content|>\n<|edit_diff_history|>\n"
               "# Implement addition rather than subtraction.\n<|/edit_diff_history|>")
    read = parse_edit_prompt(example)
    assert read.path == "add.py" and read.text[slice(*read.region)] == "def add(a, b):\n    return a - b\n"
    assert read.cursor == len("def add(a, b):\n    return a - b") and read.last_edit_lines() is None


@pytest.mark.parametrize(("body", "message"), [
    ([], "JSON object"),
    ({"messages": []}, "exactly one message"),
    ({"messages": [{"role": "system", "content": "x"}]}, "exactly one message"),
    ({"messages": [{"role": "user", "content": "no tags"}]}, "exactly one <|recently_viewed_code_snippets|>"),
    ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "does not stream"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "min_confidence": 2}, "min_confidence"),
])
def test_bad_requests_get_one_sentence(body, message) -> None:
    with pytest.raises(RequestError, match=message.replace("|", r"\|")):
        parse_edit_request(body)


def test_a_second_cursor_or_region_is_refused() -> None:
    built = build_edit_prompt(prompt())
    with pytest.raises(RequestError, match="one <"):
        parse_edit_prompt(built.replace(" = a + b", "<|cursor|> = a + b", 1).replace("item<|cursor|>", "item<|cursor|><|cursor|>"))
    with pytest.raises(RequestError, match="exactly one <\\|code_to_edit"):
        parse_edit_prompt(built.replace("<|/code_to_edit|>\n", "", 1))


def test_the_answer_carries_the_region_in_backticks_and_reads_back() -> None:
    answer = edit_answer("cmpl-1", 0, "m", "    return item", 10, 2)
    assert answer["choices"][0]["message"]["content"] == "```\n    return item\n```"
    assert parse_edit_answer(answer) == "    return item\n"
    assert parse_edit_answer({"choices": [{"message": {"content": "```python\nx = 1\n```"}}]}) == "x = 1\n"
    with pytest.raises(ValueError):
        parse_edit_answer({"choices": []})
