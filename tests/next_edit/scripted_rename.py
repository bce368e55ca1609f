"""An engine whose scripted model knows a file after a rename: at each position it predicts the renamed file's
token. Scoring the file halfway through the rename then finds the stale occurrence, and the rewrite finds the
new name, without training anything."""

from __future__ import annotations

import torch

from mercury_lsp.engine.checkpoint import LoadedModel
from mercury_lsp.engine.infill import EngineSettings, InfillEngine
from mercury_lsp.engine.vocab import Vocabulary

from checkpoints import make_tokenizer
from scripted import ScriptedModel

BEFORE = "def add(a, b):\n    result = a + b\n    return result\n"
EDITED = "def add(a, b):\n    item = a + b\n    return result\n"  # the user renamed on line 1
RENAMED = "def add(a, b):\n    item = a + b\n    return item\n"  # what the model knows comes next


def tiny_vocab() -> Vocabulary:
    tokenizer = make_tokenizer()
    ids = tokenizer.get_vocab()
    return Vocabulary(tokenizer=tokenizer, mask_id=ids["<|mask|>"], eos_id=ids["<|endoftext|>"],
                      pad_id=ids["<|pad|>"],
                      special_ids=frozenset(ids[t] for t in ("<|mask|>", "<|endoftext|>", "<|pad|>")))


def scripted_model(vocab: Vocabulary, known: str, p: float = 0.9) -> ScriptedModel:
    script = {i: [(token, p)] for i, token in enumerate(vocab.encode(known))}
    return ScriptedModel(vocab.size, script, default=[(vocab.eos_id, 0.99)])


def scripted_loaded(known: str = RENAMED, p: float = 0.9) -> LoadedModel:
    vocab = tiny_vocab()
    return LoadedModel(scripted_model(vocab, known, p), vocab, "scripted", "scripted-rename", torch.device("cpu"),
                       torch.float32)


def scripted_engine(known: str = RENAMED, p: float = 0.9) -> InfillEngine:
    return InfillEngine(scripted_loaded(known, p), EngineSettings(reuse_suffix=False))  # it rotates no keys
