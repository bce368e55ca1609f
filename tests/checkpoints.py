"""Tiny random checkpoints in the real folder format, for tests (built in a temp folder, in seconds)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from mercury_lsp.engine.checkpoint import save_checkpoint
from mercury_lsp.engine.model import ModelConfig, Transformer

SAMPLE_CODE = '''
def add(a, b):
    return a + b


def total(items):
    result = []
    for item in items:
        result.append(item * 2)
    return sum(result)


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm(self):
        return (self.x ** 2 + self.y ** 2) ** 0.5


if __name__ == "__main__":
    print(total([1, 2, 3]), "done")
'''

SPECIALS = ["<|endoftext|>", "<|mask|>", "<|pad|>", "<|expand|>", "<|delete|>"]


def make_tokenizer(vocab_size: int = 320, expand: bool = False) -> Tokenizer:
    """A byte-level BPE tokenizer trained on a few lines of Python."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = SPECIALS if expand else SPECIALS[:3]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([SAMPLE_CODE] * 4, trainer=trainer)
    return tokenizer


def make_tiny_checkpoint(
    path: str | Path,
    family: str = "qwen2",
    shifted: bool | None = None,
    expand: bool = False,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
) -> Path:
    """Write a random model folder (config.json, model.safetensors, tokenizer.json) and return its path."""
    folder = Path(path)
    tokenizer = make_tokenizer(expand=expand)
    vocab = tokenizer.get_vocab()
    vocab_size = tokenizer.get_vocab_size() + 3  # real checkpoints pad the embedding past the tokenizer
    config = ModelConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        qkv_bias=family == "qwen2",
        tie_embeddings=family == "llada",
        rope_theta=10000.0,
    )
    torch.manual_seed(seed)
    model = Transformer(config)
    with torch.no_grad():
        model.embed_tokens.weight.normal_(0, 1.0)
        for p in model.parameters():
            if p.dim() == 1 and p is not model.norm.weight:
                p.uniform_(-0.1, 0.1) if p.shape[0] != hidden else p.uniform_(0.5, 1.5)
    specials = {
        "mask_token_id": vocab["<|mask|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|pad|>"],
    }
    if expand:
        specials |= {"expand_token_id": vocab["<|expand|>"], "delete_token_id": vocab["<|delete|>"]}
    if family == "llada":
        config_json = {
            "architectures": ["LLaDAModelLM"],
            "model_type": "llada",
            "d_model": hidden,
            "n_heads": heads,
            "n_kv_heads": kv_heads,
            "n_layers": layers,
            "mlp_hidden_size": hidden * 2,
            "vocab_size": vocab_size,
            "embedding_size": vocab_size,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-6,
            "weight_tying": True,
            "max_sequence_length": 4096,
        }
    else:
        config_json = {
            "architectures": ["DreamModel"],
            "model_type": "Dream",
            "hidden_size": hidden,
            "intermediate_size": hidden * 2,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "vocab_size": vocab_size,
            "rope_theta": 10000.0,
            "rms_norm_eps": 1e-6,
            "tie_word_embeddings": False,
            "max_position_embeddings": 4096,
        }
    config_json |= specials
    if shifted is not None:
        config_json["mercury_prediction"] = "shifted" if shifted else "in_place"
    save_checkpoint(model, tokenizer, folder, config_json, family=family)
    return folder
