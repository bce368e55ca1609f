"""Shared test setup: tests/ on sys.path for the checkpoint factory, and a session-wide tiny checkpoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Tests compare exact outputs across batch shapes and processes; float32 keeps a random model's near-ties stable.
# (Servers started by tests inherit it.) The bf16 CPU path has tests of its own that ask for it explicitly.
os.environ.setdefault("MERCURY_CPU_DTYPE", "float32")

from checkpoints import make_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Dream-layout checkpoint shared by the whole session."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")
