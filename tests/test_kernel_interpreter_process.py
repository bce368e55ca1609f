"""Run tests/test_kernels.py in its own process with TRITON_INTERPRET=1, which Triton reads at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mercury_lsp.kernels.dispatch import TRITON_AVAILABLE, use_triton

KERNEL_TESTS = Path(__file__).with_name("test_kernels.py")


@pytest.mark.skipif(not TRITON_AVAILABLE, reason="Triton is not installed")
@pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") == "1", reason="this process interprets already: test_kernels.py runs here"
)
def test_kernels_under_the_triton_interpreter() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", str(KERNEL_TESTS), "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    report = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    assert " passed" in report and " skipped" not in report and " failed" not in report, report


def test_mercury_kernels_reference_forces_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert use_triton(torch.zeros(1, device=device)) == (TRITON_AVAILABLE and device == "cuda")
    monkeypatch.setenv("MERCURY_KERNELS", "reference")
    assert not use_triton(torch.zeros(1, device=device))
