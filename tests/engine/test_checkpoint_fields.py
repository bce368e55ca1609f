"""config.json fields the engine does not implement are refused by name; published models' special ids are
known from the family when the tokenizer does not name them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mercury_lsp.engine import checkpoint
from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.errors import CheckpointError

from checkpoints import make_tiny_checkpoint


def edited(folder: Path, tmp_path: Path, **changes) -> Path:
    copy = tmp_path / "edited"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.fixture(scope="module")
def llada(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("llada") / "model", family="llada")


@pytest.mark.parametrize(("field", "value"), [
    ("scale_logits", True), ("input_emb_norm", True), ("layer_norm_type", "default"), ("include_bias", True),
    ("alibi", True), ("attention_layer_norm", True),
])
def test_llada_fields_the_engine_does_not_implement_are_refused_by_name(llada, tmp_path, field, value):
    folder = edited(llada, tmp_path, **{field: value})
    with pytest.raises(CheckpointError, match=f"config.json sets {field} = "):
        load_checkpoint(folder, device="cpu")


def test_llada_fields_at_the_implemented_values_load(llada, tmp_path):
    folder = edited(llada, tmp_path, scale_logits=False, input_emb_norm=False, layer_norm_type="rms",
                    include_bias=False, rope=True, block_type="llama", activation_type="swiglu")
    load_checkpoint(folder, device="cpu")


def test_a_qwen2_activation_other_than_silu_is_refused(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match='hidden_act = "gelu"'):
        load_checkpoint(edited(tiny_checkpoint, tmp_path, hidden_act="gelu"), device="cpu")


def _dreamon_without_named_expand(tmp_path: Path) -> tuple[Path, int]:
    """A DreamOn-like checkpoint whose tokenizer calls its expand token something else and whose config.json
    does not name it: only the family says which id it is."""
    folder = make_tiny_checkpoint(tmp_path / "dreamon", expand=True)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    expand_id = next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == "<|expand|>")
    for token in tokenizer["added_tokens"]:
        if token["content"] == "<|expand|>":
            token["content"] = "<|grow|>"
    tokenizer["model"]["vocab"]["<|grow|>"] = tokenizer["model"]["vocab"].pop("<|expand|>")
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    return edited(folder, tmp_path, expand_token_id=None, _name_or_path="Dream-org/DreamOn-v0-7B"), expand_id


def test_dreamons_expand_token_is_known_from_the_family(tmp_path, monkeypatch):
    folder, expand_id = _dreamon_without_named_expand(tmp_path)
    with pytest.raises(CheckpointError, match="looks like DreamOn but its expand token is not found"):
        load_checkpoint(folder, device="cpu")  # the published id, 151667, is past this tiny vocabulary
    monkeypatch.setitem(checkpoint.FAMILY_TOKEN_IDS, "dreamon", {"mask": 151666, "expand": expand_id})
    assert load_checkpoint(folder, device="cpu").vocab.expand_id == expand_id


def test_a_calibrated_threshold_is_the_default_for_requests_that_name_none(tiny_checkpoint, tmp_path):
    from mercury_lsp.engine.infill import DEFAULT_THRESHOLD, EngineSettings, InfillEngine

    assert InfillEngine(load_checkpoint(tiny_checkpoint, device="cpu")).default_threshold == DEFAULT_THRESHOLD
    loaded = load_checkpoint(edited(tiny_checkpoint, tmp_path, mercury_threshold=0.5), device="cpu")
    assert InfillEngine(loaded).default_threshold == 0.5
    assert InfillEngine(loaded, EngineSettings(threshold=0.8)).default_threshold == 0.8  # --threshold wins


@pytest.mark.parametrize("value", [0, 1.5, "high", True])
def test_a_calibrated_threshold_out_of_range_is_refused(tiny_checkpoint, tmp_path, value):
    with pytest.raises(CheckpointError, match="mercury_threshold must be a number in"):
        load_checkpoint(edited(tiny_checkpoint, tmp_path, mercury_threshold=value), device="cpu")
