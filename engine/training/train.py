"""Training the bundled diffusion code model: infill examples built the way the engine sees them, and the loop.

Each example is either an infill (prefix tokens, a canvas of target tokens plus filler, suffix tokens; only the canvas
is masked) or plain masked diffusion over a whole window (MDLM / LLaDA: mask ratio t ~ U(0, 1), loss weighted 1/t).
Infill examples are cut at random characters and healed with the engine's own `heal_prefix`, as inference does.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch.nn import functional as F

from mercury_lsp.engine.api.file_header import file_header
from mercury_lsp.engine.checkpoint import load_checkpoint, load_vocabulary, save_checkpoint
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.engine.healing import encode_prefix, encode_suffix, heal_prefix
from mercury_lsp.engine.model import ModelConfig, Transformer
from mercury_lsp.engine.training.corpus import Corpus, collect_corpus
from mercury_lsp.engine.training.tokenizer import sample_texts, special_token_ids, train_tokenizer
from mercury_lsp.engine.vocab import Vocabulary

# Canvas lengths the language server asks for (max_tokens; healing adds one): single-line 16-32, multi-line 64.
CANVAS_CHOICES = (16, 24, 32, 64)
MIN_MASK_RATIO = 0.05  # keeps the 1/t weight bounded
HEADER_FRACTION = 0.9  # infill examples that start with the file's header line, as the language server sends


@dataclass
class TrainConfig:
    # The CPU default: small enough to see a few million tokens in an hour on two shared cores.
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 3
    intermediate_size: int = 512
    vocab_size: int = 8192
    seq_len: int = 384
    batch_size: int = 8
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    decay_fraction: float = 0.2  # the last part of each run's time decays the learning rate
    weight_decay: float = 0.1
    infill_fraction: float = 0.6  # the rest is plain masked diffusion over the window
    # Token i read from output i-1 (Dream's convention): the left neighbour's identity is then already in the
    # residual stream that predicts, so a small model learns from the start instead of first having to grow
    # attention to its neighbours (in-place prediction sat at the unigram loss for thousands of CPU steps).
    shifted: bool = True
    seed: int = 0

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            num_kv_heads=self.num_heads,
            head_dim=self.hidden_size // self.num_heads,
            tie_embeddings=True,
            qkv_bias=True,
            shifted=self.shifted,
            max_position_embeddings=self.seq_len,
        )


PRESETS = {
    "tiny": TrainConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=512,
                        seq_len=96, batch_size=8, lr=3e-3, warmup_steps=5),
    "cpu": TrainConfig(),
    # 23.5M parameters, 47 MB in bf16: inside the 50 MB package budget.
    "gpu": TrainConfig(hidden_size=512, num_layers=6, num_heads=8, intermediate_size=1408, vocab_size=8192,
                       seq_len=1024, batch_size=64, lr=1e-3, warmup_steps=200),
}


# Weight files of at most 15 MiB: small enough for any file-size limit on the way (git hosts, the GPU machine's
# 16 MiB per returned file), and the loader reads the sharded layout anyway.
SHARD_BYTES = 15 * 2**20


@dataclass
class Example:
    ids: list[int]
    targets: list[int]
    weights: list[float]  # loss weight per position; 0 where nothing is predicted
    kind: str


@dataclass
class ExampleBuilder:
    """Builds training examples from source texts with the engine's tokenization and healing."""

    texts: list[str]
    vocab: Vocabulary
    seq_len: int
    infill_fraction: float = 0.8
    rng: random.Random = field(default_factory=random.Random)
    keys: list[str] | None = None  # each text's path, for the header line the engine keeps before the prefix

    def __post_init__(self) -> None:
        self._ends = []
        total = 0
        for text in self.texts:
            total += len(text)
            self._ends.append(total)

    # -- picking text --------------------------------------------------------------------------------------------
    def _pick_text(self) -> str:
        return self.texts[self._pick()]

    def _pick(self) -> int:
        """A file's index, with probability proportional to its length."""
        return bisect.bisect_right(self._ends, self.rng.randrange(self._ends[-1]))

    def _context_chars(self) -> int:
        return self.seq_len * 6  # more characters than the window holds in tokens

    def _fill_tokens(self, count: int) -> list[int]:
        """`count` tokens of another file's tail followed by end-of-text, to go before a short prefix."""
        if count <= 0:
            return []
        text = self._pick_text()
        ids = self.vocab.encode(text[-self._context_chars() :])
        head = ids[-(count - 1) :] if count > 1 else []
        return ([self.vocab.eos_id] * (count - 1 - len(head))) + head + [self.vocab.eos_id]

    # -- examples ------------------------------------------------------------------------------------------------
    def example(self) -> Example:
        if self.rng.random() < self.infill_fraction:
            for _ in range(8):
                made = self.infill_example()
                if made is not None:
                    return made
        return self.diffusion_example()

    def diffusion_example(self) -> Example:
        """Plain masked diffusion over a window of one file (another file's tail fills a short one)."""
        text = self._pick_text()
        start = _line_start(text, self.rng.randrange(len(text)))
        ids = self.vocab.encode(text[start : start + self._context_chars()])[: self.seq_len]
        ids = self._fill_tokens(self.seq_len - len(ids)) + ids
        t = self.rng.uniform(MIN_MASK_RATIO, 1.0)
        masked = [self.rng.random() < t for _ in ids]
        masked[self.rng.randrange(len(ids))] = True
        weight = 1.0 / (t * len(ids))
        return Example(
            ids=[self.vocab.mask_id if m else i for i, m in zip(ids, masked)],
            targets=ids,
            weights=[weight if m else 0.0 for m in masked],
            kind="diffusion",
        )

    def infill_example(self) -> Example | None:
        """A hole at a random character: [header] healed prefix, canvas = target + filler, suffix; None when
        unusable. The engine's layout: the header (the file's path) is never trimmed, the prefix is."""
        index = self._pick()
        text = self.texts[index]
        header = []
        if self.keys is not None and self.rng.random() < HEADER_FRACTION:
            header = self.vocab.encode(file_header(self.keys[index], "python"))
        a, b = pick_hole(text, self.rng)
        max_tokens = self.rng.choice(CANVAS_CHOICES) if self.rng.random() < 0.7 else self.rng.randint(4, 64)
        parts = infill_parts(self.vocab, text, a, b, max_tokens, self._context_chars())
        if parts is None:
            return None
        prefix_ids, target, suffix_ids, canvas_len = parts
        room = self.seq_len - canvas_len - len(header)
        if self.rng.random() < 0.05:
            suffix_ids = []  # the cursor at the end of what is written so far
        suffix_keep = min(len(suffix_ids), self.rng.randint(room // 8, room // 2))
        prefix_keep = min(len(prefix_ids), room - suffix_keep)
        suffix_keep = min(len(suffix_ids), room - prefix_keep)
        prefix = header + prefix_ids[len(prefix_ids) - prefix_keep :]
        suffix = suffix_ids[:suffix_keep]
        lead = self._fill_tokens(room - prefix_keep - suffix_keep)

        masked, weight = self._canvas_mask(canvas_len, len(target))
        canvas_target = target + [self.vocab.eos_id] * (canvas_len - len(target))
        # Revealed filler shows as end-of-text or pad: the sampler writes pad after a single-line stop.
        canvas_input = [
            self.vocab.mask_id if m else (self.rng.choice(self.vocab.filler_ids) if i >= len(target) else tok)
            for i, (tok, m) in enumerate(zip(canvas_target, masked))
        ]
        context = len(lead) + len(prefix)
        return Example(
            ids=lead + prefix + canvas_input + suffix,
            targets=lead + prefix + canvas_target + suffix,
            weights=[0.0] * context + [weight if m else 0.0 for m in masked] + [0.0] * len(suffix),
            kind="infill",
        )

    def _canvas_mask(self, canvas_len: int, content_len: int) -> tuple[list[bool], float]:
        """Which canvas positions are masked, and the loss weight of each masked one.

        Either MDLM's random ratio t (weight 1/t per position), or the state the sampler is in midway: content
        committed from the left up to a frontier and a filler run from the right edge (mean over the masks)."""
        if self.rng.random() < 0.6:
            t = self.rng.uniform(MIN_MASK_RATIO, 1.0)
            masked = [self.rng.random() < t for _ in range(canvas_len)]
            masked[self.rng.randrange(canvas_len)] = True
            return masked, 1.0 / (t * canvas_len)
        frontier = self.rng.randint(0, max(0, content_len - 1))
        filler_run = self.rng.randint(0, min(canvas_len - content_len, canvas_len - frontier - 1))
        masked = [frontier <= i < canvas_len - filler_run for i in range(canvas_len)]
        return masked, 1.0 / sum(masked)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        examples = [self.example() for _ in range(size)]
        return (
            torch.tensor([e.ids for e in examples]),
            torch.tensor([e.targets for e in examples]),
            torch.tensor([e.weights for e in examples]),
        )


def infill_parts(
    vocab: Vocabulary, text: str, a: int, b: int, max_tokens: int, context_chars: int
) -> tuple[list[int], list[int], list[int], int] | None:
    """(prefix ids, canvas target, suffix ids, canvas length) for the hole text[a:b], tokenized as the engine
    does: prefix and suffix separately, the prefix healed, the suffix after the cursor's word with that word's
    rest written by the canvas; a target longer than the canvas is cut (the suffix then starts where it stops).
    None when the cut falls inside a character or healing has no valid first token."""
    prefix_start = _line_start(text, max(0, a - context_chars), forward=True) if a > context_chars else 0
    prefix = text[prefix_start:a]
    healed = heal_prefix(vocab, *encode_prefix(vocab, prefix))
    canvas_len = max_tokens + (1 if healed.heal else 0)
    suffix_ids, held = encode_suffix(vocab, text[b : b + context_chars], prefix) if b < len(text) else ([], b"")
    try:
        heal_text, word_rest = healed.heal.decode("utf-8"), held.decode("utf-8")
    except UnicodeDecodeError:
        return None
    target = vocab.encode(heal_text + text[a:b] + word_rest)
    if len(target) > canvas_len:
        target = target[:canvas_len]
        try:
            covered = vocab.token_bytes_of(target).decode("utf-8")
        except UnicodeDecodeError:
            return None
        b = a + len(covered) - len(heal_text)
        suffix_ids = vocab.encode(text[b : b + context_chars]) if b < len(text) else []
    if healed.heal and (not target or not vocab.token_bytes[target[0]].startswith(healed.heal)):
        return None  # the engine constrains canvas position 0 to start with the healed bytes
    return healed.ids, target, suffix_ids, canvas_len


def _line_start(text: str, index: int, forward: bool = False) -> int:
    """The start of the line holding `index` (or of the next line, when `forward`)."""
    if forward:
        if index == 0:
            return 0
        nl = text.find("\n", index)
        return len(text) if nl < 0 else nl + 1
    return text.rfind("\n", 0, index) + 1


def pick_hole(text: str, rng: random.Random) -> tuple[int, int]:
    """A hole [a, b) the way cursors fall: rest of a line, a few lines, an arbitrary span, or nothing."""
    if rng.random() < 0.1:
        a = rng.randrange(max(1, len(text) - 400), len(text) + 1)  # writing at the end of the file
    else:
        a = rng.randrange(len(text) + 1)
    line_start = _line_start(text, a)
    line_end = text.find("\n", a)
    line_end = len(text) if line_end < 0 else line_end
    line = text[line_start:line_end]
    indent = len(line) - len(line.lstrip())
    where = rng.random()
    if where < 0.25:
        a = line_start  # right after a newline
    elif where < 0.45:
        a = line_start + indent  # after the indentation
    # else: any character of the line, mid-word and inside strings included
    kind = rng.random()
    if kind < 0.45:
        b = line_end
    elif kind < 0.75:
        b = a
        for _ in range(rng.randint(1, 6)):
            nl = text.find("\n", b + 1)
            b = len(text) if nl < 0 else nl
        if b < len(text) and rng.random() < 0.3:
            b += 1  # sometimes the hole takes the line break as well
    elif kind < 0.95:
        b = min(len(text), a + rng.randint(1, 160))
    else:
        b = a
    return a, max(a, b)


# -- the loop ------------------------------------------------------------------------------------------------------
def masked_diffusion_loss(
    model: Transformer, ids: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, body=None
) -> torch.Tensor:
    """Weighted cross-entropy on the positions that carry weight; logits only where needed (the head is costly).

    `body` may be a compiled `model.forward_window`: its shapes are static, unlike the gather that follows."""
    hidden, _ = (body or model.forward_window)(ids)
    if model.config.shifted:
        hidden, targets, weights = hidden[:, :-1], targets[:, 1:], weights[:, 1:]
    chosen = weights > 0
    logits = model.logits(hidden[chosen]).float()
    losses = F.cross_entropy(logits, targets[chosen], reduction="none")
    return (losses * weights[chosen]).sum() / ids.shape[0]


def autoregressive_loss(model: Transformer, tokens: torch.Tensor, body=None) -> torch.Tensor:
    """Next-token loss with causal attention: the warm start (Dream and DiffuCoder start from AR models too).

    Output i predicts token i+1, the same reading as shifted diffusion prediction, so the head carries over."""
    hidden, _ = (body or model.forward_window)(tokens, causal=True)
    logits = model.logits(hidden[:, :-1]).float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


def learning_rate(config: TrainConfig, step: int, run_fraction: float) -> float:
    """Warmup, a constant plateau, and a linear decay over the last `decay_fraction` of the run (resumable)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    decay_start = 1.0 - config.decay_fraction
    if run_fraction <= decay_start:
        return config.lr
    progress = min(1.0, (run_fraction - decay_start) / config.decay_fraction)
    return config.lr * (1.0 - (1.0 - config.min_lr_ratio) * progress)


@dataclass
class TrainState:
    step: int = 0
    tokens_seen: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    optimizer_start: int = 0  # the step the optimizer's state began at: warm-up counts from here


def model_config_json(model_config: ModelConfig, tokenizer: Tokenizer, state: TrainState, config: TrainConfig) -> dict:
    """config.json for the bundled model: Qwen2-style keys, the prediction the run trained (shifted by default),
    filler length control."""
    table = tokenizer.get_vocab(with_added_tokens=True)
    return {
        "architectures": ["MercuryDiffusionLM"],
        "model_type": "mercury",
        "hidden_size": model_config.hidden_size,
        "intermediate_size": model_config.intermediate_size,
        "num_hidden_layers": model_config.num_layers,
        "num_attention_heads": model_config.num_heads,
        "num_key_value_heads": model_config.num_kv_heads,
        "head_dim": model_config.head_dim,
        "vocab_size": model_config.vocab_size,
        "rope_theta": model_config.rope_theta,
        "rms_norm_eps": model_config.rms_norm_eps,
        "tie_word_embeddings": True,
        "max_position_embeddings": model_config.max_position_embeddings,
        "torch_dtype": "bfloat16",
        "mask_token_id": table["<|mask|>"],
        "eos_token_id": table["<|endoftext|>"],
        "pad_token_id": table["<|pad|>"],
        # No expand/delete ids: the model was trained for filler length control only (the tokens exist, unused).
        "mercury_prediction": "shifted" if model_config.shifted else "in_place",
        "mercury_length_control": "filler",
        "mercury_training": {
            "objective": "masked diffusion + span infilling with filler, character-level cuts, healed prefixes",
            "steps": state.step,
            "tokens_seen": state.tokens_seen,
            "train_seconds": round(state.seconds, 1),
            "seq_len": config.seq_len,
            "batch_size": config.batch_size,
        },
    }


def export_model(model: Transformer, tokenizer: Tokenizer, folder: Path, state: TrainState, config: TrainConfig) -> None:
    """Write the model folder the engine loads, weights in bf16."""
    copy = Transformer(model.config)
    copy.load_state_dict({k: v.detach().to("cpu") for k, v in model.state_dict().items()})
    copy.to(torch.bfloat16)
    save_checkpoint(
        copy, tokenizer, folder, model_config_json(model.config, tokenizer, state, config), max_shard_bytes=SHARD_BYTES
    )


def save_state(path: Path, model: Transformer, optimizer: torch.optim.Optimizer, state: TrainState, config: TrainConfig) -> None:
    """Everything a later run needs to continue; written to a temporary file first so a kill never corrupts it."""
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": asdict(state),
         "config": asdict(config)},
        tmp,
    )
    tmp.replace(path)


def make_optimizer(model: Transformer, config: TrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), eps=1e-8, fused=torch.cuda.is_available())


def init_weights(model: Transformer) -> None:
    """Small normal init, output projections scaled down by depth (GPT-2 style)."""
    std = 0.02
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            scale = 1.0 / math.sqrt(2 * model.config.num_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
            torch.nn.init.normal_(p, 0.0, std * scale)
        elif name.endswith("bias"):
            torch.nn.init.zeros_(p)


def batches(builder: ExampleBuilder, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    while True:
        yield builder.batch(batch_size)


def train(
    work_dir: Path,
    builder_batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    tokenizer: Tokenizer,
    config: TrainConfig,
    minutes: float,
    checkpoint_minutes: float = 5.0,
    export_to: Path | None = None,
    device: torch.device | None = None,
    max_steps: int | None = None,
    log=print,
    compile_model: bool = False,
    log_every: int = 50,
    bf16: bool = True,
    objective: str = "diffusion",
    init_from: Path | None = None,
) -> TrainState:
    """Train for `minutes` of wall time (or `max_steps`), resuming from work_dir/state.pt when it exists.

    Without a state.pt, `init_from` (a model folder, e.g. the bundled model) gives the starting weights: a new
    session can continue a model whose optimizer state stayed on another machine. Every `log_every` steps the mean
    loss and throughput go to `log` and the state's history."""
    device = device or torch.device("cpu")
    work_dir.mkdir(parents=True, exist_ok=True)
    state_path = work_dir / "state.pt"
    vocab_size = _padded_vocab(tokenizer.get_vocab_size(with_added_tokens=True))
    torch.manual_seed(config.seed)
    model = Transformer(config.model_config(vocab_size))
    init_weights(model)
    model.to(device)
    optimizer = make_optimizer(model, config)
    state = TrainState()
    if state_path.exists():
        saved = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState(**saved["state"])
        log(f"resumed at step {state.step} ({state.tokens_seen / 1e6:.1f}M tokens seen)")
    elif init_from is not None:
        state = _load_initial_weights(model, init_from)
        log(f"started from the weights in {init_from} ({state.tokens_seen / 1e6:.1f}M tokens seen there)")
    body = torch.compile(model.forward_window) if compile_model else model.forward_window
    compiled_ok = not compile_model  # the first step proves the compiled graph, or falls back to eager
    # bf16 matmuls with float32 weights: flash attention on GPU, AMX on recent Xeons (1.5x on our 2-core machine).
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    started = time.perf_counter()
    last_save = started
    budget = minutes * 60.0
    window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, started
    model.train()
    while True:
        elapsed = time.perf_counter() - started
        if elapsed >= budget or (max_steps is not None and state.step >= max_steps):
            break
        fraction = state.step / max_steps if max_steps else elapsed / budget
        lr = learning_rate(config, state.step - state.optimizer_start, fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = tuple(t.to(device, non_blocking=True) for t in next(builder_batches))
        optimizer.zero_grad(set_to_none=True)
        try:
            loss = _batch_loss(model, objective, batch, body, autocast)
            loss.backward()
        except Exception as exc:
            if compiled_ok:
                raise
            # A compiler failure (it surfaces at the first call) must not cost the run: eager is slower, not wrong.
            log(f"torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); training eagerly")
            body = model.forward_window
            optimizer.zero_grad(set_to_none=True)
            loss = _batch_loss(model, objective, batch, body, autocast)
            loss.backward()
        compiled_ok = True
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state.step += 1
        state.tokens_seen += batch[0].numel()
        window_loss += loss.detach()  # summed on the device: no host sync per step
        window_steps += 1
        window_tokens += batch[0].numel()
        now = time.perf_counter()
        if state.step % log_every == 0:
            record = {
                "step": state.step,
                "loss": round(float(window_loss) / window_steps, 4),
                "lr": lr,
                "tokens_per_s": round(window_tokens / (now - window_start)),
                "tokens_seen": state.tokens_seen,
            }
            state.history.append(record)
            log(json.dumps(record))
            window_loss, window_steps, window_tokens, window_start = 0.0, 0, 0, now
        if now - last_save >= checkpoint_minutes * 60:
            state.seconds += now - last_save
            last_save = now
            _checkpoint(model, optimizer, state, config, tokenizer, work_dir, export_to)
            log(f"checkpoint at step {state.step}")
    state.seconds += time.perf_counter() - last_save
    _checkpoint(model, optimizer, state, config, tokenizer, work_dir, export_to)
    return state


def _load_initial_weights(model: Transformer, folder: Path) -> TrainState:
    """Copy a model folder's weights into `model` (same shape required); its training record carries over."""
    loaded = load_checkpoint(folder, device="cpu", dtype=torch.float32)
    mine, theirs = model.config, loaded.model.config
    fields = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "shifted")
    different = [f for f in fields if getattr(mine, f) != getattr(theirs, f)]
    if different:
        raise CheckpointError(f"{folder} does not match the training configuration ({', '.join(different)} differ).")
    model.load_state_dict(loaded.model.state_dict())
    record = json.loads((Path(folder) / "config.json").read_text()).get("mercury_training", {})
    step = int(record.get("steps", 0))
    return TrainState(step=step, tokens_seen=int(record.get("tokens_seen", 0)),
                      seconds=float(record.get("train_seconds", 0.0)), optimizer_start=step)


def _batch_loss(model: Transformer, objective: str, batch, forward, autocast) -> torch.Tensor:
    ids, targets, weights = batch
    with autocast:
        if objective == "autoregressive":
            return autoregressive_loss(model, targets, forward)
        return masked_diffusion_loss(model, ids, targets, weights, forward)


def _checkpoint(model, optimizer, state, config, tokenizer, work_dir: Path, export_to: Path | None) -> None:
    save_state(work_dir / "state.pt", model, optimizer, state, config)
    export_model(model, tokenizer, work_dir / "model", state, config)
    if export_to is not None:
        export_model(model, tokenizer, export_to, state, config)


def _padded_vocab(size: int) -> int:
    """Round the embedding up to a multiple of 64 (matmul-friendly; the extra rows are never produced)."""
    return -(-size // 64) * 64


def prepare_tokenizer(work_dir: Path, texts: list[str], vocab_size: int, reuse: Path | None, log=print) -> Tokenizer:
    """The run's tokenizer: kept from an earlier run, copied from `reuse`, or trained on a sample of the corpus."""
    path = work_dir / "tokenizer.json"
    if not path.exists():
        work_dir.mkdir(parents=True, exist_ok=True)
        if reuse is not None:
            Tokenizer.from_file(str(reuse)).save(str(path))
        else:
            started = time.perf_counter()
            tokenizer = train_tokenizer(sample_texts(texts, max_chars=40_000_000), vocab_size)
            tokenizer.save(str(path))
            log(f"tokenizer: {tokenizer.get_vocab_size()} tokens in {time.perf_counter() - started:.0f} s")
    return Tokenizer.from_file(str(path))


def training_vocabulary(work_dir: Path, tokenizer: Tokenizer) -> Vocabulary:
    """The engine's Vocabulary for the run's tokenizer, loaded the way a checkpoint's is."""
    return load_vocabulary(work_dir, special_token_ids(tokenizer))


def run_training(
    work_dir: Path,
    config: TrainConfig,
    minutes: float,
    export_to: Path | None = None,
    roots: list[Path] | None = None,
    exclude_repo: Path | None = None,
    tokenizer_from: Path | None = None,
    device: torch.device | None = None,
    checkpoint_minutes: float = 5.0,
    max_steps: int | None = None,
    workers: int = 0,
    compile_model: bool = False,
    bf16: bool = True,
    objective: str = "diffusion",
    log=print,
    corpus: Corpus | None = None,
    init_from: Path | None = None,
) -> TrainState:
    """Corpus, tokenizer, examples and the loop, for one (resumable) training run.

    `corpus`, when given, is used instead of walking the roots (a warm start and the run after it share one)."""
    if objective not in ("diffusion", "autoregressive"):
        raise ValueError(f"objective must be diffusion or autoregressive, not {objective!r}")
    if objective == "autoregressive":
        config = replace(config, infill_fraction=0.0)  # plain windows of code
    started = time.perf_counter()
    if corpus is None:  # a corpus handed in was reported by whoever walked it
        corpus = collect_corpus(roots, exclude_repo=exclude_repo)
        log(
            f"corpus: {len(corpus.train)} train files ({corpus.chars() / 1e6:.0f}M chars), "
            f"{len(corpus.heldout)} held out, skipped {corpus.skipped} ({time.perf_counter() - started:.0f} s)"
        )
    if not corpus.train:
        raise ValueError("the corpus is empty: no usable .py files under the given roots")
    texts = [f.text for f in corpus.train]
    keys = [f.key for f in corpus.train]
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "heldout.json").write_text(json.dumps(sorted(f.key for f in corpus.heldout), indent=0) + "\n")
    tokenizer = prepare_tokenizer(work_dir, texts, config.vocab_size, tokenizer_from, log)
    vocab = training_vocabulary(work_dir, tokenizer)
    stream = example_batches(texts, vocab, config, workers, keys)
    return train(
        work_dir, stream, tokenizer, config, minutes, checkpoint_minutes, export_to, device, max_steps, log,
        compile_model, bf16=bf16, objective=objective, init_from=init_from,
    )


class _ExampleStream(torch.utils.data.IterableDataset):
    """Endless batches; each loader worker builds its own with its own seed."""

    def __init__(self, texts: list[str], vocab: Vocabulary, config: TrainConfig, keys: list[str] | None = None):
        self.texts, self.vocab, self.config, self.keys = texts, vocab, config, keys

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        # The run's seed decides the data too: the same seed and corpus give the same examples.
        seed = self.config.seed * 1000 + (info.id if info else 0)
        builder = ExampleBuilder(
            self.texts, self.vocab, self.config.seq_len, self.config.infill_fraction, random.Random(seed), self.keys
        )
        return batches(builder, self.config.batch_size)


def example_batches(
    texts: list[str], vocab: Vocabulary, config: TrainConfig, workers: int = 0, keys: list[str] | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches built in this process (workers=0) or in loader worker processes (GPU runs)."""
    stream = _ExampleStream(texts, vocab, config, keys)
    if workers <= 0:
        return iter(stream)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=workers, pin_memory=torch.cuda.is_available(), prefetch_factor=4,
        persistent_workers=True,
    )
    return iter(loader)
