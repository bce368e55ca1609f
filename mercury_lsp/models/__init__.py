"""Bundled model folders (package data): `default/` is the small diffusion code model we train ourselves."""

from __future__ import annotations

from pathlib import Path

BUNDLED_MODEL = Path(__file__).parent / "default"


def resolve_model_path(model: str | None) -> Path:
    """The folder named by the user, or the bundled model when none is named."""
    return Path(model).expanduser() if model else BUNDLED_MODEL
