"""The shipped model, loaded from the package the way the engine loads it, completes everyday lines as a person
would: a guard against a broken weight folder and against engine changes (tokenization, healing, sampling) that
would quietly undo what the model learned. Greedy decoding is deterministic, so exact texts are checked."""

from __future__ import annotations

import pytest
import torch

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.training.evaluate import common_code_completions
from mercury_lsp.models import BUNDLED_MODEL

# Rows of COMMON_CODE the shipped model gets exactly right on the language server's 16-token single-line canvas
# (MODEL_CARD.md has the whole table, wrong rows too; `items():` was right on the 32-token canvas only).
EXPECTED_RIGHT = ("[]", "total", "i in range(n):")


@pytest.fixture(scope="module", params=[torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
def rows(request) -> list[tuple[str, str, str]]:
    """(cursor line, completion, what a person would type) for every everyday prompt, in both CPU dtypes."""
    loaded = load_checkpoint(BUNDLED_MODEL, device="cpu", dtype=request.param)
    assert loaded.model.config.max_position_embeddings == 1024 and loaded.model.config.shifted
    return common_code_completions(loaded)


@pytest.mark.parametrize("expected", EXPECTED_RIGHT)
def test_the_bundled_model_completes_everyday_lines(rows, expected: str) -> None:
    assert [text for _, text, wanted in rows if wanted == expected] == [expected]


def test_after_indentation_the_completion_is_not_indented_again(rows) -> None:
    after_indent = [text for line, text, _ in rows if line == "    "]  # an empty line, cursor after its indentation
    assert len(after_indent) == 2 and all(text and not text[0].isspace() for text in after_indent)
