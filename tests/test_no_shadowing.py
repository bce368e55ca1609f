"""The suite sees the project only as the installed package (`mercury_lsp`, `mercury_lsp.engine`,
`mercury_lsp.kernels`): the repository's top-level `engine/` and `kernels/` folders must never stand in for
third-party packages of those names. transformers imports Hugging Face's `kernels`; `python -m pytest` puts the
repository root on sys.path and hands it ours instead (run the `pytest` entry point, as `make test` does)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_repository_root_is_not_on_sys_path() -> None:
    on_path = [Path(entry or ".").resolve() for entry in sys.path]
    assert REPO not in on_path, (
        f"{REPO} is on sys.path, so its engine/ and kernels/ folders shadow installed packages of those names: "
        "run the pytest entry point (make test), not python -m pytest"
    )


@pytest.mark.parametrize("name", ["kernels", "engine"])
def test_top_level_name_is_not_our_folder(name: str) -> None:
    spec = importlib.util.find_spec(name)
    places = [spec.origin] if spec is not None and spec.origin else []
    places += list(spec.submodule_search_locations or []) if spec is not None else []
    folder = REPO / name
    ours = [place for place in places if Path(place).resolve() in (folder, folder / "__init__.py")]
    assert not ours, f"import {name} would load {ours[0]}, the repository's folder, not an installed package"


def test_hugging_face_kernels_is_the_one_imported() -> None:
    """The real package is in the test environment (requirements/test.txt), so shadowing would show here too."""
    import kernels

    assert hasattr(kernels, "CUDAProperties"), f"{kernels.__file__} is not Hugging Face's kernels package"
    assert "site-packages" in Path(kernels.__file__).parts
