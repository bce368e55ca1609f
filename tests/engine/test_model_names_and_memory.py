"""What a --model value names, the catalogue, and the memory check that refuses a model before loading it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mercury_lsp.engine import catalogue
from mercury_lsp.engine.checkpoint import read_layout
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.memory_check import check_memory, memory_need
from mercury_lsp.engine.model import ModelConfig
from mercury_lsp.engine.model_source import ModelSource, parse_model
from mercury_lsp.models import BUNDLED_MODEL

CLI = [sys.executable, "-m", "mercury_lsp.engine.cli"]


def test_a_value_names_a_folder_a_short_name_or_a_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "local").mkdir(parents=True)
    assert parse_model(None) == parse_model("") == parse_model("bundled") == ModelSource(folder=BUNDLED_MODEL)
    assert parse_model("dream-coder-7b") == ModelSource(repo_id="Dream-org/Dream-Coder-v0-Base-7B")
    assert parse_model("Dream-org/DreamOn-v0-7B@main") == ModelSource(repo_id="Dream-org/DreamOn-v0-7B",
                                                                      revision="main")
    assert parse_model("org/local") == ModelSource(folder=tmp_path / "org" / "local")  # a folder here wins
    assert parse_model("./org/absent").folder == tmp_path / "org" / "absent"
    assert parse_model("org/name").spec == "org/name" and parse_model("org/name@abc").spec == "org/name@abc"
    assert parse_model("no slash").folder == tmp_path / "no slash"


def test_every_catalogue_name_parses_to_its_hub_id_and_the_table_is_honest() -> None:
    for entry in catalogue.CATALOGUE:
        source = parse_model(entry.short_name)
        assert source.repo_id == entry.hub_id or (entry.hub_id is None and source.folder == BUNDLED_MODEL)
    assert [e.short_name for e in catalogue.CATALOGUE if e.ran_here] == ["bundled"]
    table = catalogue.render_table()
    assert table.count("\n") == len(catalogue.CATALOGUE) and "unverified" in table


def test_the_cache_estimate_covers_what_the_engine_allocates(tiny_checkpoint: Path) -> None:
    """The context slots and canvases an engine preallocates fit in the estimate's cache share."""
    from mercury_lsp.engine.checkpoint import load_checkpoint

    loaded = load_checkpoint(tiny_checkpoint, device="cpu", dtype=torch.float32)
    settings = EngineSettings(max_batch=4, cuda_graphs=False)
    engine = InfillEngine(loaded, settings)
    allocated = sum(t.numel() * t.element_size() for t in [*engine.context.k, *engine.context.v])
    allocated += sum(t.numel() * t.element_size() for t in vars(engine.canvases).values()
                     if isinstance(t, torch.Tensor))
    config = read_layout(tiny_checkpoint).config
    need = memory_need(config, torch.float32, 4, settings.max_context_tokens,
                       settings.context_cache_bytes(torch.device("cpu")))
    weights = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
    assert need.weights == weights
    assert allocated <= need.caches


def test_a_7b_estimate_matches_its_published_size() -> None:
    """Qwen2.5-7B's shape (Dream-Coder's): 15.2 GB of bf16 weights on the hub page."""
    config = ModelConfig(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28, num_heads=28,
                         num_kv_heads=4, head_dim=128, max_position_embeddings=131072)
    need = memory_need(config, torch.bfloat16, 16, 4096, 1 << 30)  # a GPU engine's default cache bound
    assert 15.0e9 < need.weights < 15.4e9
    assert 4e9 < need.caches < 8e9 and 1e9 < need.growth < 3e9


def test_the_check_refuses_with_both_numbers_and_the_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ModelConfig(vocab_size=1000, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=16)
    need = memory_need(config, torch.float32, 16, 4096, 48 << 20)
    monkeypatch.setenv("MERCURY_MEMORY_AVAILABLE", "1M")
    with pytest.raises(CheckpointError) as refused:
        check_memory(need, torch.device("cpu"), torch.float32, 16)
    message = str(refused.value)
    assert "0.00 GB of RAM available (MERCURY_MEMORY_AVAILABLE)" in message and "--max-batch 16" in message
    assert "a smaller model" in message and "a smaller --max-batch" in message and "\n" not in message
    monkeypatch.setenv("MERCURY_MEMORY_AVAILABLE", "64G")
    check_memory(need, torch.device("cpu"), torch.float32, 16)


def test_the_cli_refuses_a_model_too_large_before_loading_it(tmp_path: Path, tiny_checkpoint: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("def add(a, b):\n    return a\n")
    env = {**os.environ, "MERCURY_MEMORY_AVAILABLE": "100K"}
    done = subprocess.run([*CLI, "infill", f"{source}:2:13", "--model", str(tiny_checkpoint), "--device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "the model needs" in done.stderr and "RAM available" in done.stderr and "--max-batch 1" in done.stderr


def test_models_lists_the_table() -> None:
    done = subprocess.run([*CLI, "models"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "dream-coder-7b" in done.stdout and "Dream-org/Dream-Coder-v0-Base-7B" in done.stdout
    assert "run here" in done.stdout and "layout only" in done.stdout


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    # `mercury-engine models | head -1`: the pipe closes after one line; the engine stops quietly.
    listing = subprocess.Popen([*CLI, "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert listing.stdout.readline()
    listing.stdout.close()
    _, stderr = listing.communicate(timeout=60)
    assert listing.returncode in (0, 141) and stderr == b"", stderr.decode()


def test_pull_refuses_a_folder(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "pull", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "is a folder on this machine" in done.stderr
