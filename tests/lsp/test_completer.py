"""The completer's pure decisions: whether a trigger at a cursor wants a suggestion at all."""

from __future__ import annotations

import pytest

from mercury_lsp.completer import wanted
from mercury_lsp.settings import parse_settings

CODE, COMMENT, STRING = "x = 1\ny = ", "x = 1  # note ", "s = 'half "


@pytest.mark.parametrize(
    ("settings", "trigger", "before", "want"),
    [
        ({}, "automatic", COMMENT, True),
        ({}, "invoked", STRING, True),
        ({"triggerKinds": ["invoked"]}, "automatic", CODE, False),
        ({"triggerKinds": ["invoked"]}, "invoked", CODE, True),
        ({"triggerKinds": ["automatic"]}, "invoked", CODE, False),
        ({"disableInComments": True}, "automatic", COMMENT, False),
        ({"disableInComments": True}, "invoked", COMMENT, False),
        ({"disableInComments": True}, "automatic", STRING, True),
        ({"disableInStrings": True}, "automatic", STRING, False),
        ({"disableInStrings": True}, "automatic", CODE, True),
    ],
)
def test_trigger_kinds_and_regions(settings: dict, trigger: str, before: str, want: bool) -> None:
    parsed, problems = parse_settings(settings)
    assert problems == []
    assert wanted(parsed, trigger, before, "python") is want


def test_languages_without_a_scanner_are_never_suppressed() -> None:
    parsed, _ = parse_settings({"disableInComments": True, "disableInStrings": True})
    assert wanted(parsed, "automatic", COMMENT, "markdown")
