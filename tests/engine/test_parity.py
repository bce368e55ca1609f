"""Our model against transformers' Qwen2 (bidirectional and causal), and against a plain LLaDA-layout reference."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from mercury_lsp.engine.autoregressive import generate_autoregressive
from mercury_lsp.engine.checkpoint import load_checkpoint

from checkpoints import make_tiny_checkpoint, make_tokenizer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_qwen2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "qwen2"
    tokenizer = make_tokenizer()
    config = transformers.Qwen2Config(
        vocab_size=tokenizer.get_vocab_size() + 5,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_theta=1000.0,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    raw = json.loads((folder / "config.json").read_text())
    raw["mask_token_id"] = tokenizer.token_to_id("<|mask|>")
    raw["eos_token_id"] = tokenizer.token_to_id("<|endoftext|>")
    (folder / "config.json").write_text(json.dumps(raw))
    return model, folder, tokenizer.get_vocab_size()


def test_bidirectional_logits_match_transformers(hf_qwen2):
    hf, folder, vocab = hf_qwen2
    ours = load_checkpoint(folder, device="cpu")
    ids = torch.randint(0, vocab, (2, 19))
    with torch.no_grad():
        # A 4D all-zero additive mask makes transformers' attention non-causal.
        reference = hf(ids, attention_mask=torch.zeros(2, 1, 19, 19)).logits
        causal_reference = hf(ids).logits
    got = ours.model(ids)
    assert (got - reference).abs().max() < 1e-4
    assert (got - causal_reference).abs().max() > 1e-2  # the two modes really differ


def test_causal_logits_match_transformers(hf_qwen2):
    hf, folder, vocab = hf_qwen2
    ours = load_checkpoint(folder, device="cpu")
    ids = torch.randint(0, vocab, (1, 23))
    with torch.no_grad():
        reference = hf(ids).logits
    assert (ours.model(ids, causal=True) - reference).abs().max() < 1e-4
    assert ours.model.config.shifted and ours.model.config.qkv_bias


def test_windowed_forward_over_cached_keys_matches_full_forward(hf_qwen2):
    _, folder, vocab = hf_qwen2
    model = load_checkpoint(folder, device="cpu").model
    ids = torch.randint(0, vocab, (1, 30))
    full_hidden, full_kv = model.forward_window(ids)
    # Keys/values of positions 0..19 from the full pass, window 20..29 recomputed over them.
    past = [(k[:, :, :20], v[:, :, :20]) for k, v in full_kv]
    positions = torch.arange(20, 30)[None]
    hidden, _ = model.forward_window(ids[:, 20:], positions, past=past, past_len=torch.tensor([20]))
    # The window's queries see all 30 keys, as in the full pass; only positions 0..19 differ in that the full
    # pass let them see the window, which their cached keys already reflect.
    assert (hidden - full_hidden[:, 20:]).abs().max() < 1e-4


def test_autoregressive_with_cache_matches_recomputation(hf_qwen2):
    _, folder, vocab = hf_qwen2
    model = load_checkpoint(folder, device="cpu").model
    prompt = torch.randint(0, vocab, (9,)).tolist()
    result = generate_autoregressive(model, prompt, max_new_tokens=6)
    ids = list(prompt)
    for _ in range(6):
        ids.append(int(model(torch.tensor([ids]), causal=True)[0, -1].argmax()))
    assert result.ids == ids[len(prompt):]


def _llada_reference(weights: dict[str, torch.Tensor], ids: torch.Tensor, heads: int, kv_heads: int, eps: float):
    """A plain transcription of LLaDA's block (attn_norm, q/k/v, rope, attn_out, ff_norm, ff_proj*up_proj, ff_out)."""
    w = {k.removeprefix("model.transformer."): v.float() for k, v in weights.items()}
    x = w["wte.weight"][ids]
    b, n, d = x.shape
    hd = d // heads
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(n).float()[:, None] * inv
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)

    def norm(t, g):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * g

    def rot(t):
        return torch.cat([-t[..., hd // 2 :], t[..., : hd // 2]], -1)

    layer = 0
    while f"blocks.{layer}.attn_norm.weight" in w:
        p = f"blocks.{layer}."
        h = norm(x, w[p + "attn_norm.weight"])
        q = (h @ w[p + "q_proj.weight"].T).view(b, n, heads, hd).transpose(1, 2)
        k = (h @ w[p + "k_proj.weight"].T).view(b, n, kv_heads, hd).transpose(1, 2)
        v = (h @ w[p + "v_proj.weight"].T).view(b, n, kv_heads, hd).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(heads // kv_heads, 1), v.repeat_interleave(heads // kv_heads, 1)
        att = (q @ k.transpose(-1, -2) / math.sqrt(hd)).softmax(-1) @ v
        x = x + att.transpose(1, 2).reshape(b, n, d) @ w[p + "attn_out.weight"].T
        h = norm(x, w[p + "ff_norm.weight"])
        gate = torch.nn.functional.silu(h @ w[p + "ff_proj.weight"].T)
        x = x + (gate * (h @ w[p + "up_proj.weight"].T)) @ w[p + "ff_out.weight"].T
        layer += 1
    x = norm(x, w["ln_f.weight"])
    head = w.get("ff_out.weight", w["wte.weight"])
    return x @ head.T


def test_llada_layout_matches_plain_reference(tmp_path):
    folder = make_tiny_checkpoint(tmp_path / "llada", family="llada", hidden=32, heads=4, kv_heads=4)
    loaded = load_checkpoint(folder, device="cpu")
    assert loaded.family == "llada" and not loaded.model.config.shifted
    weights = load_file(str(folder / "model.safetensors"))
    assert "model.transformer.wte.weight" in weights and "model.transformer.blocks.0.attn_out.weight" in weights
    ids = torch.randint(0, 300, (2, 15))
    reference = _llada_reference(weights, ids, heads=4, kv_heads=4, eps=1e-6)
    assert (loaded.model(ids) - reference).abs().max() < 1e-4


def test_prediction_convention_comes_from_the_checkpoint(tmp_path):
    assert load_checkpoint(make_tiny_checkpoint(tmp_path / "a"), device="cpu").model.config.shifted
    in_place = make_tiny_checkpoint(tmp_path / "b", shifted=False)
    assert not load_checkpoint(in_place, device="cpu").model.config.shifted


def test_length_control_follows_the_checkpoint(tmp_path):
    expand = make_tiny_checkpoint(tmp_path / "expand", expand=True)
    assert load_checkpoint(expand, device="cpu").vocab.expand_id is not None
    raw = json.loads((expand / "config.json").read_text())
    for key in ("expand_token_id", "delete_token_id"):
        raw.pop(key)
    (expand / "config.json").write_text(json.dumps(raw))
    # The tokens alone (DreamOn-style tokenizer) still turn expand/delete on...
    assert load_checkpoint(expand, device="cpu").vocab.expand_id is not None
    # ...unless the checkpoint says it was trained with filler only.
    (expand / "config.json").write_text(json.dumps({**raw, "mercury_length_control": "filler"}))
    vocab = load_checkpoint(expand, device="cpu").vocab
    assert vocab.expand_id is None and vocab.delete_id is None
