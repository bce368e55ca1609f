"""Batch Emacs evaluates the README's lsp-mode setup and completes against the real mercury-lsp."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_FILE = REPO / "editors" / "emacs" / "lsp-mode-test.el"


def emacs_with_lsp_mode() -> str | None:
    """An `emacs` on PATH that can load lsp-mode (Debian: apt-get install emacs-nox elpa-lsp-mode)."""
    emacs = shutil.which("emacs")
    if emacs is None:
        return None
    probe = subprocess.run([emacs, "--batch", "--eval", "(require 'lsp-mode)"], capture_output=True, timeout=60)
    return emacs if probe.returncode == 0 else None


@pytest.mark.slow
def test_lsp_mode_completion_against_the_real_server(editor_env: dict[str, str]) -> None:
    emacs = emacs_with_lsp_mode()
    if emacs is None:
        pytest.skip("no Emacs with lsp-mode here (apt-get install emacs-nox elpa-lsp-mode)")
    done = subprocess.run([emacs, "--batch", "-l", str(TEST_FILE)], env=editor_env, capture_output=True, text=True,
                          timeout=400, cwd=REPO)
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, f"lsp-mode-test.el failed (exit {done.returncode}):\n{output}"
    assert re.search(r"^2 passed, 0 failed$", done.stdout, re.MULTILINE), output
