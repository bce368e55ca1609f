"""The engine owns its contracts: nothing under engine/ reaches up into the language server, and the contracts the
language server imports from engine/api/ stay pure Python (no torch, no HTTP server)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"
ALLOWED = ("mercury_lsp.engine", "mercury_lsp.kernels", "mercury_lsp.models")
API_ALLOWED_STDLIB = {"__future__", "collections", "dataclasses", "hashlib", "hmac", "math", "pathlib", "re",
                           "secrets", "typing", "datetime", "json"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every absolute module a file imports (relative imports are named as such)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


ENGINE_FILES = sorted(ENGINE.rglob("*.py"))


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_engine_module_imports_the_language_server(path: Path) -> None:
    for line, module in imported_modules(path):
        assert not module.startswith("."), f"{path.name}:{line} imports relatively ({module})"
        if module == "mercury_lsp" or module.startswith("mercury_lsp."):
            assert module.startswith(ALLOWED), f"{path.name}:{line} reaches up into {module}"


@pytest.mark.parametrize("path", sorted((ENGINE / "api").glob("*.py")), ids=lambda p: p.name)
def test_the_contracts_are_pure_python(path: Path) -> None:
    for line, module in imported_modules(path):
        top = module.split(".")[0]
        assert module.startswith("mercury_lsp.engine.api") or top in API_ALLOWED_STDLIB, \
            f"{path.name}:{line} imports {module}"


def test_the_check_sees_the_engine() -> None:
    assert len(ENGINE_FILES) > 20 and any(p.parent.name == "api" for p in ENGINE_FILES)
