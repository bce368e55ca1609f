"""Real processes for the fuzz suites: one engine and one language server per module, fed raw bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_server.engine_process import EngineProcess


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Iterator[EngineProcess]:
    process = EngineProcess(tmp_path_factory.mktemp("fuzz-engine"), tiny_checkpoint, ["--max-queue", "256"])
    process.wait_ready()
    yield process
    process.stop()
