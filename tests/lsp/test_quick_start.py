"""The README's first command, `make demo`: the real language server, the engine it auto-starts and the bundled
model complete tests/data/demo.py at 6:12 (`    return ` → `total`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo.py"
ENGINE_CLI = [sys.executable, "-c", "import sys; from mercury_lsp.engine.cli import main; sys.exit(main())"]


def test_the_quick_start_demo_completes_with_the_bundled_model(tmp_path: Path) -> None:
    # A runtime folder of its own: other tests' engines (tiny random models) must not answer for the bundled one.
    env = {**os.environ, "MERCURY_RUNTIME_DIR": str(tmp_path / "runtime")}
    try:
        done = subprocess.run([sys.executable, "-m", "mercury_lsp.cli", "demo", f"{DEMO}:6:12", "--json"],
                              env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["state"] == "ready" and report["engine"] == "default on cpu", report
        assert report["text"] == "total", report
    finally:
        subprocess.run([*ENGINE_CLI, "stop"], env=env, capture_output=True, timeout=60)
