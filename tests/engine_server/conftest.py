"""Real engine processes on ephemeral ports, serving tiny random checkpoints from a temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_process import EngineProcess
from standins import KEY


@pytest.fixture
def start_engine(tmp_path: Path, tiny_checkpoint: Path) -> Iterator:
    """Factory: start_engine(*serve_args, model=..., env=...) -> a running EngineProcess, stopped afterwards."""
    started: list[EngineProcess] = []

    def start(*args: str, model: Path | None = None, env: dict[str, str] | None = None) -> EngineProcess:
        folder = tmp_path / f"engine{len(started)}"
        folder.mkdir()
        engine = EngineProcess(folder, model or tiny_checkpoint, list(args), env)
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


@pytest.fixture(scope="session")
def shared_engine(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[EngineProcess]:
    """One ready engine for the tests that only need to talk to it."""
    engine = EngineProcess(tmp_path_factory.mktemp("shared"), tiny_checkpoint, ["--max-batch", "16"])
    engine.wait_ready()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def keyed_engine(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[EngineProcess]:
    """A real engine that wants the team's key (`standins.KEY`), as a shared engine is run."""
    engine = EngineProcess(tmp_path_factory.mktemp("keyed"), tiny_checkpoint, [], env={"MERCURY_API_KEY": KEY})
    engine.wait_ready()
    yield engine
    engine.stop()
