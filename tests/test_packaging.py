"""The built wheel installs one top-level import name, `mercury_lsp` (PyPI already has `kernels` and `engine`), and
carries the bundled model whole."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_has_only_the_mercury_lsp_top_level_package(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, timeout=300, capture_output=True,
    )
    (wheel,) = tmp_path.glob("mercury_lsp-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"mercury_lsp"}
    for module in ("mercury_lsp/engine/model.py", "mercury_lsp/kernels/attention.py", "mercury_lsp/engine/cli.py",
                   "mercury_lsp/engine/training/train.py"):
        assert module in names

    # The bundled model: every weight file its index names, so an installed package completes out of the box.
    model = "mercury_lsp/models/default/"
    for file in ("config.json", "tokenizer.json", "MODEL_CARD.md"):
        assert model + file in names
    bundled = ROOT / model
    index = bundled / "model.safetensors.index.json"
    weights = set(json.loads(index.read_text())["weight_map"].values()) if index.exists() else {"model.safetensors"}
    if index.exists():
        weights.add(index.name)
    assert {model + w for w in weights} <= set(names)


SERVING = """
import importlib.abc, sys

class HideTraining(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mercury_lsp.engine.training" or name.startswith("mercury_lsp.engine.training."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideTraining())
import mercury_lsp.engine.server, mercury_lsp.engine.batcher, mercury_lsp.engine.infill, mercury_lsp.server
from mercury_lsp.engine.cli import build_parser
commands = build_parser()._subparsers._group_actions[0].choices
assert "serve" in commands and "train" not in commands, sorted(commands)
print("served without training")
"""


def test_serving_imports_no_training_module():
    done = subprocess.run([sys.executable, "-c", SERVING], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "served without training" in done.stdout
