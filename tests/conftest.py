"""Shared test setup: tests/ on sys.path for the checkpoint factory, and a session-wide tiny checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from checkpoints import make_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Dream-layout checkpoint shared by the whole session."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")
