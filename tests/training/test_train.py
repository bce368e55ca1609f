"""The training loop at a tiny size: the loss goes down, runs resume, the export loads in the engine."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.engine.infill import InfillEngine, InfillRequest
from mercury_lsp.engine.training.train import (
    PRESETS,
    ExampleBuilder,
    TrainConfig,
    batches,
    learning_rate,
    train,
)
from mercury_lsp.engine.vocab import Vocabulary

from corpus_sample import MODULES

TINY = PRESETS["tiny"]
ENGINE_CLI = [sys.executable, "-c", "import sys; from mercury_lsp.engine.cli import main; sys.exit(main())"]


def tiny_batches(vocab: Vocabulary, seed: int = 0):
    builder = ExampleBuilder(list(MODULES.values()), vocab, TINY.seq_len, TINY.infill_fraction, random.Random(seed))
    return batches(builder, TINY.batch_size)


def test_loss_goes_down_and_the_export_loads(tmp_path: Path, vocab: Vocabulary) -> None:
    torch.manual_seed(0)
    state = train(
        tmp_path / "run", tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=150,
        log=lambda _: None, log_every=25,
    )
    losses = [record["loss"] for record in state.history]
    assert len(losses) == 6
    assert losses[-1] < 0.75 * losses[0], losses

    loaded = load_checkpoint(tmp_path / "run" / "model", device="cpu")
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["mercury_prediction"] == "shifted" and config["model_type"] == "mercury"
    assert "expand_token_id" not in config and "delete_token_id" not in config
    assert config["mercury_training"]["steps"] == 150
    assert loaded.model.config.shifted
    # The exported bf16 weights are the trained weights, rounded.
    saved = torch.load(tmp_path / "run" / "state.pt", weights_only=False)["model"]
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, saved[name].to(torch.bfloat16).float()), name
    result = InfillEngine(loaded).infill(
        InfillRequest("def add(a, b):\n    return ", "\n", max_tokens=8, length_mode="filler")
    )
    assert isinstance(result.text, str) and result.steps >= 1


def test_a_run_resumes_where_it_stopped(tmp_path: Path, vocab: Vocabulary) -> None:
    work = tmp_path / "run"
    first = train(work, tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=4, log=lambda _: None)
    assert first.step == 4
    lines: list[str] = []
    second = train(work, tiny_batches(vocab, 1), vocab.tokenizer, TINY, minutes=5, max_steps=7, log=lines.append)
    assert second.step == 7 and second.tokens_seen == 7 * TINY.batch_size * TINY.seq_len
    assert any("resumed at step 4" in line for line in lines)


def test_learning_rate_warms_up_holds_and_decays() -> None:
    config = TrainConfig(lr=1.0, warmup_steps=10, decay_fraction=0.2, min_lr_ratio=0.1)
    assert learning_rate(config, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(config, 50, 0.5) == 1.0
    assert learning_rate(config, 50, 0.9) == pytest.approx(0.55)
    assert learning_rate(config, 50, 1.0) == pytest.approx(0.1)


def test_train_command_runs_and_rejects_bad_input(tmp_path: Path, corpus_root: Path, tokenizer_folder: Path) -> None:
    command = [*ENGINE_CLI, "train", "--preset", "tiny", "--max-steps", "3",
               "--work-dir", str(tmp_path / "run"), "--root", str(corpus_root), "--device", "cpu",
               "--tokenizer", str(tokenizer_folder / "tokenizer.json"), "--export", str(tmp_path / "export")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"] == 3
    assert Tokenizer.from_file(str(tmp_path / "export" / "tokenizer.json")).get_vocab_size() > 300
    load_checkpoint(tmp_path / "export", device="cpu")

    bad = subprocess.run(command[:-2] + ["--root", str(tmp_path / "missing")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("mercury-engine: error: corpus root") and "Traceback" not in bad.stderr

    # A new run continues the export (--max-steps counts from the export's steps); a model folder of another shape
    # is refused in one line.
    command[command.index("--work-dir") + 1] = str(tmp_path / "continued")
    command[command.index("--max-steps") + 1] = "6"
    again = subprocess.run(command + ["--init-from", str(tmp_path / "export")], capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert "started from the weights" in again.stderr and json.loads(again.stdout)["steps"] == 3 + 3
    command[command.index("--preset") + 1] = "cpu"
    command[command.index("--work-dir") + 1] = str(tmp_path / "other")
    other = subprocess.run(command + ["--init-from", str(tmp_path / "export")], capture_output=True, text=True,
                           timeout=120)
    assert other.returncode == 2 and "Traceback" not in other.stderr
    last = other.stderr.strip().splitlines()[-1]
    assert last.startswith("mercury-engine: error:") and "does not match the training configuration" in last


def test_autoregressive_warm_start_learns_and_diffusion_resumes_from_it(tmp_path: Path, vocab: Vocabulary) -> None:
    work = tmp_path / "run"
    torch.manual_seed(0)
    warm = train(work, tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=60, log=lambda _: None,
                 log_every=20, objective="autoregressive")
    losses = [record["loss"] for record in warm.history]
    assert losses[-1] < 0.8 * losses[0], losses
    lines: list[str] = []
    after = train(work, tiny_batches(vocab, 1), vocab.tokenizer, TINY, minutes=5, max_steps=65, log=lines.append)
    assert after.step == 65 and any("resumed at step 60" in line for line in lines)


def test_a_compiler_failure_falls_back_to_eager(tmp_path: Path, vocab: Vocabulary, monkeypatch) -> None:
    """torch.compile errors surface at the first call: the run logs it and trains eagerly instead of dying."""

    def broken_compile(fn):
        def call(*args, **kwargs):
            raise RuntimeError("inductor: no C compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    lines: list[str] = []
    state = train(tmp_path / "run", tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=3,
                  log=lines.append, compile_model=True)
    assert state.step == 3
    assert [line for line in lines if "torch.compile failed" in line] == [
        "torch.compile failed (RuntimeError: inductor: no C compiler found); training eagerly"
    ]


def test_a_run_can_start_from_an_exported_model(tmp_path: Path, vocab: Vocabulary) -> None:
    """The optimizer state of a GPU run stays on that machine; a later run starts from the exported weights, with
    its training record carried on and a fresh warm-up, and a folder of another shape is refused in one sentence."""
    first = train(tmp_path / "first", tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=40,
                  log=lambda _: None, log_every=40)
    lines: list[str] = []
    second = train(tmp_path / "second", tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=41,
                   log=lines.append, log_every=1, init_from=tmp_path / "first" / "model")
    assert any("started from the weights" in line for line in lines)
    assert second.step == 41 and second.tokens_seen == first.tokens_seen + TINY.batch_size * TINY.seq_len
    assert second.optimizer_start == 40
    assert second.history[-1]["lr"] == pytest.approx(TINY.lr / TINY.warmup_steps)  # warm-up starts again
    # The continued model starts where the first left off, far below a fresh model's loss.
    fresh = train(tmp_path / "fresh", tiny_batches(vocab), vocab.tokenizer, TINY, minutes=5, max_steps=1,
                  log=lambda _: None, log_every=1)
    assert second.history[-1]["loss"] < fresh.history[-1]["loss"]

    wider = dataclasses.replace(TINY, hidden_size=TINY.hidden_size * 2)
    with pytest.raises(CheckpointError, match="hidden_size"):
        train(tmp_path / "wider", tiny_batches(vocab), vocab.tokenizer, wider, minutes=5, max_steps=1,
              log=lambda _: None, init_from=tmp_path / "first" / "model")
