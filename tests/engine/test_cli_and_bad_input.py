"""`mercury-engine infill` end to end, and every kind of bad input: one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mercury_lsp.engine.cli import main

SOURCE = "def add(a, b):\n    return a + b\n\n\ndef total(items):\n    result = 0\n"


@pytest.fixture()
def source(tmp_path) -> Path:
    path = tmp_path / "example.py"
    path.write_text(SOURCE)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_output_has_the_contract_fields(capsys, source, tiny_checkpoint):
    code, out, err = run_cli(capsys, "infill", f"{source}:6:14", "--model", str(tiny_checkpoint), "--json",
                             "--max-tokens", "8", "--device", "cpu")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"text", "tokens", "steps", "ms", "model", "device"}
    assert result["device"] == "cpu" and result["steps"] >= 1 and isinstance(result["text"], str)


def test_real_process_prints_the_text(source, tiny_checkpoint):
    done = subprocess.run(
        [sys.executable, "-m", "mercury_lsp.engine.cli", "infill", f"{source}:2:11", "--model", str(tiny_checkpoint),
         "--max-tokens", "4", "--seed", "3"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n")


@pytest.mark.parametrize("location", ["1:1", "7:1"], ids=["empty-prefix", "empty-suffix"])
def test_empty_prefix_or_suffix_works(capsys, source, tiny_checkpoint, location):
    code, out, err = run_cli(capsys, "infill", f"{source}:{location}", "--model", str(tiny_checkpoint),
                             "--max-tokens", "4", "--json")
    assert code == 0, err
    assert "text" in json.loads(out)


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mercury-engine: error: ")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("location", "word"),
    [("9:1", "line 9"), ("2:99", "column 99"), ("0:1", "line 0"), ("x:y", "FILE:LINE:COL")],
)
def test_cursor_outside_the_file(capsys, source, tiny_checkpoint, location, word):
    code, _, err = run_cli(capsys, "infill", f"{source}:{location}", "--model", str(tiny_checkpoint))
    assert_one_line_error(code, err, word)


def test_invalid_utf8_file(capsys, tmp_path, tiny_checkpoint):
    path = tmp_path / "bad.py"
    path.write_bytes(b"x = '\xff\xfe'\n")
    code, _, err = run_cli(capsys, "infill", f"{path}:1:1", "--model", str(tiny_checkpoint))
    assert_one_line_error(code, err, "UTF-8")


def test_missing_file(capsys, tmp_path, tiny_checkpoint):
    code, _, err = run_cli(capsys, "infill", f"{tmp_path}/nope.py:1:1", "--model", str(tiny_checkpoint))
    assert_one_line_error(code, err, "does not exist")


def test_five_megabyte_file_is_cut_to_the_token_budget(capsys, tmp_path, tiny_checkpoint):
    path = tmp_path / "huge.py"
    block = "def f(x):\n    return x + 1\n\n"
    text = block * (5_000_000 // len(block))
    path.write_text(text)
    middle = text.count("\n") // 2
    code, out, err = run_cli(capsys, "infill", f"{path}:{middle}:1", "--model", str(tiny_checkpoint),
                             "--max-tokens", "4", "--json")
    assert code == 0, err
    assert "text" in json.loads(out)


@pytest.mark.parametrize("value", ["0", "100000", "-3"])
def test_max_tokens_out_of_range(capsys, source, tiny_checkpoint, value):
    code, _, err = run_cli(capsys, "infill", f"{source}:1:1", "--model", str(tiny_checkpoint), "--max-tokens", value)
    assert_one_line_error(code, err, "max_tokens")


def test_bad_threshold(capsys, source, tiny_checkpoint):
    code, _, err = run_cli(capsys, "infill", f"{source}:1:1", "--model", str(tiny_checkpoint), "--threshold", "1.5")
    assert_one_line_error(code, err, "threshold")


@pytest.mark.parametrize("command", ["serve", "eval"])
@pytest.mark.parametrize(("option", "value"), [("--threshold", "1.5"), ("--threshold", "none"),
                                               ("--tail-threshold", "0"), ("--tail-threshold", "often")])
def test_engine_wide_thresholds_out_of_range_are_refused(capsys, command, option, value):
    with pytest.raises(SystemExit) as exited:
        main([command, option, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "Traceback" not in err


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(checkpoint, folder)
    return folder


def _sharded(checkpoint: Path, tmp_path: Path) -> Path:
    """Split the single weight file into two shards with an index, as large checkpoints are stored."""
    from safetensors.torch import save_file

    folder = _copy(checkpoint, tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(weights)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for shard, keys in halves.items():
        save_file({k: weights[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
        weight_map |= {k: shard for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def test_sharded_checkpoint_loads(capsys, source, tiny_checkpoint, tmp_path):
    folder = _sharded(tiny_checkpoint, tmp_path)
    code, out, err = run_cli(capsys, "infill", f"{source}:2:5", "--model", str(folder), "--max-tokens", "4")
    assert code == 0, err


BROKEN = {
    "missing-shard": (lambda f: (f / "model-00002-of-00002.safetensors").unlink(), "missing"),
    "corrupt-shard": (lambda f: (f / "model-00001-of-00002.safetensors").write_bytes(b"\x00\x01garbage"), "cannot"),
    "no-config": (lambda f: (f / "config.json").unlink(), "config.json"),
    "bad-config-json": (lambda f: (f / "config.json").write_text("{nope"), "not valid JSON"),
    "no-tokenizer": (lambda f: (f / "tokenizer.json").unlink(), "tokenizer.json"),
    "unknown-architecture": (
        lambda f: (f / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})),
        "unknown architecture",
    ),
    "no-mask-token": (lambda f: _edit_config(f, mask_token_id=None, remove_mask=True), "mask token"),
    "shape-mismatch": (lambda f: _edit_config(f, hidden_size=48), "shape"),
}


def _edit_config(folder: Path, remove_mask: bool = False, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update({k: v for k, v in changes.items() if v is not None})
    if remove_mask:
        config.pop("mask_token_id")
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
        for token in tokenizer["added_tokens"]:
            if token["content"] == "<|mask|>":
                token["content"] = "<|not-a-mask|>"
        tokenizer["model"]["vocab"] = {
            ("<|not-a-mask|>" if k == "<|mask|>" else k): v for k, v in tokenizer["model"]["vocab"].items()
        }
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_folder(capsys, source, tiny_checkpoint, tmp_path, case):
    breaker, word = BROKEN[case]
    folder = _sharded(tiny_checkpoint, tmp_path)
    breaker(folder)
    code, _, err = run_cli(capsys, "infill", f"{source}:2:5", "--model", str(folder))
    assert_one_line_error(code, err, word)


def test_missing_model_folder(capsys, source, tmp_path):
    code, _, err = run_cli(capsys, "infill", f"{source}:2:5", "--model", str(tmp_path / "none"))
    assert_one_line_error(code, err, "does not exist")


def test_save_checkpoint_shards_and_round_trips(tiny_checkpoint, tmp_path):
    """A size cap splits the weights into indexed shards none over the cap; the loader reads back the same weights;
    saving again without the cap leaves one file and no stale shards."""
    from tokenizers import Tokenizer

    from mercury_lsp.engine.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(tiny_checkpoint, device="cpu")
    tokenizer = Tokenizer.from_file(str(tiny_checkpoint / "tokenizer.json"))
    config_json = json.loads((tiny_checkpoint / "config.json").read_text())
    folder = tmp_path / "sharded"
    weights = {k: v for k, v in loaded.model.state_dict().items() if k != "lm_head.weight"}
    cap = max(v.numel() * v.element_size() for v in weights.values())  # the largest tensor just fits
    save_checkpoint(loaded.model, tokenizer, folder, config_json, max_shard_bytes=cap)

    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 3 and not (folder / "model.safetensors").exists()
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [s.name for s in shards]
    for shard in shards:
        assert sum(t.numel() * t.element_size() for t in load_file(str(shard)).values()) <= cap
    again = load_checkpoint(folder, device="cpu").model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(again[name], tensor), name

    save_checkpoint(loaded.model, tokenizer, folder, config_json)
    assert (folder / "model.safetensors").exists()
    assert not list(folder.glob("model-*-of-*.safetensors")) and not (folder / "model.safetensors.index.json").exists()


def test_cpu_dtype_follows_the_hardware_unless_the_environment_says(monkeypatch, tiny_checkpoint):
    """bf16 on CPUs that multiply it natively, float32 elsewhere; MERCURY_CPU_DTYPE overrides; a bad value is one
    sentence; a bf16 model on the CPU still completes."""
    from mercury_lsp.engine import checkpoint
    from mercury_lsp.engine.errors import CheckpointError
    from mercury_lsp.engine.infill import InfillEngine, InfillRequest

    cpu = torch.device("cpu")
    monkeypatch.setenv("MERCURY_CPU_DTYPE", "auto")
    for native, expected in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(checkpoint, "cpu_has_native_bf16", lambda native=native: native)
        assert checkpoint.pick_dtype(cpu) == expected
    assert checkpoint.pick_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setenv("MERCURY_CPU_DTYPE", "float32")
    assert checkpoint.pick_dtype(cpu) == torch.float32
    monkeypatch.setenv("MERCURY_CPU_DTYPE", "fp8")
    with pytest.raises(CheckpointError, match="MERCURY_CPU_DTYPE must be auto, float32 or bfloat16"):
        checkpoint.pick_dtype(cpu)

    monkeypatch.setenv("MERCURY_CPU_DTYPE", "bfloat16")
    loaded = checkpoint.load_checkpoint(tiny_checkpoint, device="cpu")
    assert loaded.dtype == torch.bfloat16 and loaded.model.embed_tokens.weight.dtype == torch.bfloat16
    result = InfillEngine(loaded).infill(InfillRequest(prefix="def f(x):\n    return ", suffix="\n", max_tokens=6))
    assert isinstance(result.text, str) and result.steps >= 1
