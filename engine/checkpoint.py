"""Read (and write) Hugging Face style model folders: config.json, safetensors weights, tokenizer.json.

One explicit weight-name map per family; every problem with a folder becomes one CheckpointError sentence.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer

from mercury_lsp.engine.commit_probe import PROBE_FILE, CommitProbe, load_commit_probe
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.engine.model import ModelConfig, Transformer, rope_inv_freq
from mercury_lsp.engine.vocab import Vocabulary


@dataclass
class LoadedModel:
    model: Transformer
    vocab: Vocabulary
    family: str
    name: str
    device: torch.device
    dtype: torch.dtype
    commit_probe: CommitProbe | None = None  # the learned commit rule shipped beside the weights, if any


QWEN2_NAMES = {  # ours (unfused) -> checkpoint (Qwen2, Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder, our bundled model)
    "embed_tokens.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
    "layers.{i}.input_layernorm.weight": "model.layers.{i}.input_layernorm.weight",
    "layers.{i}.post_attention_layernorm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "layers.{i}.self_attn.q_proj.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "layers.{i}.self_attn.k_proj.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "layers.{i}.self_attn.v_proj.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "layers.{i}.self_attn.q_proj.bias": "model.layers.{i}.self_attn.q_proj.bias",
    "layers.{i}.self_attn.k_proj.bias": "model.layers.{i}.self_attn.k_proj.bias",
    "layers.{i}.self_attn.v_proj.bias": "model.layers.{i}.self_attn.v_proj.bias",
    "layers.{i}.self_attn.o_proj.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "layers.{i}.mlp.gate_proj.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "layers.{i}.mlp.up_proj.weight": "model.layers.{i}.mlp.up_proj.weight",
    "layers.{i}.mlp.down_proj.weight": "model.layers.{i}.mlp.down_proj.weight",
}

LLADA_NAMES = {  # ours (unfused) -> checkpoint (LLaDA's OLMo-derived naming)
    "embed_tokens.weight": "model.transformer.wte.weight",
    "norm.weight": "model.transformer.ln_f.weight",
    "lm_head.weight": "model.transformer.ff_out.weight",
    "layers.{i}.input_layernorm.weight": "model.transformer.blocks.{i}.attn_norm.weight",
    "layers.{i}.post_attention_layernorm.weight": "model.transformer.blocks.{i}.ff_norm.weight",
    "layers.{i}.self_attn.q_proj.weight": "model.transformer.blocks.{i}.q_proj.weight",
    "layers.{i}.self_attn.k_proj.weight": "model.transformer.blocks.{i}.k_proj.weight",
    "layers.{i}.self_attn.v_proj.weight": "model.transformer.blocks.{i}.v_proj.weight",
    "layers.{i}.self_attn.q_proj.bias": "model.transformer.blocks.{i}.q_proj.bias",
    "layers.{i}.self_attn.k_proj.bias": "model.transformer.blocks.{i}.k_proj.bias",
    "layers.{i}.self_attn.v_proj.bias": "model.transformer.blocks.{i}.v_proj.bias",
    "layers.{i}.self_attn.o_proj.weight": "model.transformer.blocks.{i}.attn_out.weight",
    "layers.{i}.mlp.gate_proj.weight": "model.transformer.blocks.{i}.ff_proj.weight",
    "layers.{i}.mlp.up_proj.weight": "model.transformer.blocks.{i}.up_proj.weight",
    "layers.{i}.mlp.down_proj.weight": "model.transformer.blocks.{i}.ff_out.weight",
}

NAME_MAPS = {"qwen2": QWEN2_NAMES, "llada": LLADA_NAMES}

# The model fuses projections that checkpoints store apart: each fused weight is its parts stacked along dim 0.
FUSED_PARTS = {
    "layers.{i}.self_attn.qkv_proj.weight": (
        "layers.{i}.self_attn.q_proj.weight", "layers.{i}.self_attn.k_proj.weight", "layers.{i}.self_attn.v_proj.weight",
    ),
    "layers.{i}.self_attn.qkv_proj.bias": (
        "layers.{i}.self_attn.q_proj.bias", "layers.{i}.self_attn.k_proj.bias", "layers.{i}.self_attn.v_proj.bias",
    ),
    "layers.{i}.mlp.gate_up_proj.weight": ("layers.{i}.mlp.gate_proj.weight", "layers.{i}.mlp.up_proj.weight"),
}

# Values of config.json fields this engine implements; any other value changes the maths and is refused.
SUPPORTED_FIELDS = {
    "llada": {
        "scale_logits": (False,), "input_emb_norm": (False,), "layer_norm_type": ("rms",), "include_bias": (False,),
        "alibi": (False,), "rope": (True,), "attention_layer_norm": (False,), "clip_qkv": (None,),
        "block_type": ("llama",), "activation_type": ("swiglu", "silu"), "norm_after": (False,),
        "rope_full_precision": (True,), "bias_for_layer_norm": (False, None),
    },
    "qwen2": {"hidden_act": ("silu",), "attention_dropout": (0, 0.0), "use_sliding_window": (False,)},
}

# Ids the authors' own generation code hard-codes, for checkpoints whose config.json and tokenizer name none.
FAMILY_TOKEN_IDS = {
    "dream": {"mask": 151666},
    "dreamon": {"mask": 151666, "expand": 151667},  # DreamOn: expand turns one mask into two
    "llada": {"mask": 126336, "eos": 126081},
}

MASK_TOKENS = ("<|mask|>", "<|mdm_mask|>", "[MASK]", "<mask>")
EOS_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "</s>", "<|eos|>")
PAD_TOKENS = ("<|pad|>", "<pad>", "[PAD]")
EXPAND_TOKENS = ("<|expand|>",)
DELETE_TOKENS = ("<|delete|>",)


def detect_family(config: dict) -> str:
    """'qwen2' or 'llada' from config.json's model_type / architectures."""
    model_type = str(config.get("model_type", "")).lower()
    archs = " ".join(config.get("architectures") or []).lower()
    if model_type == "llada" or "llada" in archs:
        return "llada"
    if model_type in ("qwen2", "dream", "mercury", "llama") or any(
        a in archs for a in ("qwen2", "dream", "mercury", "llama")
    ):
        return "qwen2"
    raise CheckpointError(
        f"config.json names an unknown architecture (model_type {config.get('model_type')!r}, "
        f"architectures {config.get('architectures')!r}); supported: Qwen2/Dream family and LLaDA."
    )


def check_supported(config: dict, family: str) -> None:
    """Refuse a config.json field whose value the engine does not implement: it would give wrong logits."""
    for field, allowed in SUPPORTED_FIELDS[family].items():
        if field in config and config[field] not in allowed:
            raise CheckpointError(
                f"config.json sets {field} = {json.dumps(config[field])}, which this engine does not implement "
                f"(it takes {' or '.join(json.dumps(a) for a in allowed)})."
            )


def token_family(config: dict) -> str | None:
    """Which published model's hard-coded special ids apply: dream, dreamon, llada, or None."""
    names = " ".join([str(config.get("model_type", "")), str(config.get("_name_or_path", "")),
                      *(config.get("architectures") or [])]).lower()
    if "llada" in names:
        return "llada"
    if "dreamon" in names or "expand_token_id" in config:
        return "dreamon"
    if "dream" in names:
        return "dream"
    return None


def parse_config(config: dict, family: str, has_qkv_bias: bool) -> ModelConfig:
    """Our ModelConfig from either family's config.json keys."""
    try:
        if family == "llada":
            heads = int(config["n_heads"])
            hidden = int(config["d_model"])
            model_config = ModelConfig(
                vocab_size=int(config.get("embedding_size") or config["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(config["mlp_hidden_size"]),
                num_layers=int(config["n_layers"]),
                num_heads=heads,
                num_kv_heads=int(config.get("n_kv_heads") or heads),
                head_dim=hidden // heads,
                rms_norm_eps=float(config.get("rms_norm_eps", 1e-5)),
                rope_theta=float(config.get("rope_theta", 10000.0)),
                max_position_embeddings=int(config.get("max_sequence_length", 4096)),
                tie_embeddings=bool(config.get("weight_tying", False)),
                qkv_bias=has_qkv_bias,
                shifted=False,
            )
        else:
            heads = int(config["num_attention_heads"])
            hidden = int(config["hidden_size"])
            rope = config.get("rope_parameters") or {}
            scaling = config.get("rope_scaling") or (
                rope if rope.get("rope_type", "default") != "default" else None
            )
            model_config = ModelConfig(
                vocab_size=int(config["vocab_size"]),
                hidden_size=hidden,
                intermediate_size=int(config["intermediate_size"]),
                num_layers=int(config["num_hidden_layers"]),
                num_heads=heads,
                num_kv_heads=int(config.get("num_key_value_heads") or heads),
                head_dim=int(config.get("head_dim") or hidden // heads),
                rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
                rope_theta=float(config.get("rope_theta") or rope.get("rope_theta", 10000.0)),
                rope_scaling=scaling,
                max_position_embeddings=int(config.get("max_position_embeddings", 32768)),
                tie_embeddings=bool(config.get("tie_word_embeddings", False)),
                qkv_bias=has_qkv_bias,
                shifted=True,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"config.json is missing or has a bad value for {exc}.") from None
    prediction = config.get("mercury_prediction")
    if prediction is not None:
        if prediction not in ("shifted", "in_place"):
            raise CheckpointError(f"config.json mercury_prediction must be 'shifted' or 'in_place', not {prediction!r}.")
        model_config.shifted = prediction == "shifted"
    threshold = config.get("mercury_threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise CheckpointError(f"config.json mercury_threshold must be a number in (0, 1], not {threshold!r}.")
        model_config.commit_threshold = float(threshold)
    return model_config


def _weight_files(folder: Path) -> dict[str, Path]:
    """Map each checkpoint tensor name to the safetensors file holding it."""
    index = folder / "model.safetensors.index.json"
    single = folder / "model.safetensors"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
            raise CheckpointError(f"{index} is not a valid safetensors index.") from None
        files = {name: folder / shard for name, shard in weight_map.items()}
        for shard in sorted(set(files.values())):
            if not shard.exists():
                raise CheckpointError(f"weight shard {shard.name} named in the index is missing from {folder}.")
        return files
    if single.exists():
        try:
            with safe_open(str(single), framework="pt") as f:
                return {name: single for name in f.keys()}
        except Exception as exc:  # safetensors raises several types for corrupt headers
            raise CheckpointError(f"{single} is not a readable safetensors file ({exc}).") from None
    raise CheckpointError(f"{folder} has neither model.safetensors nor model.safetensors.index.json.")


def _special_id(config: dict, key: str, vocab_table: dict[str, int], names: tuple[str, ...]) -> int | None:
    value = config.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, int):
        return value
    for name in names:
        if name in vocab_table:
            return vocab_table[name]
    return None


def load_vocabulary(folder: Path, config: dict, vocab_size: int | None = None) -> Vocabulary:
    path = folder / "tokenizer.json"
    if not path.exists():
        raise CheckpointError(f"{folder} has no tokenizer.json.")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path} is not a valid tokenizers file ({exc}).") from None
    table = tokenizer.get_vocab(with_added_tokens=True)
    known = FAMILY_TOKEN_IDS.get(token_family(config) or "", {})
    size = vocab_size or tokenizer.get_vocab_size(with_added_tokens=True)

    def family_id(role: str) -> int | None:
        value = known.get(role)
        return value if value is not None and value < size else None

    mask = _special_id(config, "mask_token_id", table, MASK_TOKENS)
    mask = family_id("mask") if mask is None else mask
    if mask is None:
        raise CheckpointError(f"{folder} defines no mask token (mask_token_id in config.json or <|mask|>).")
    eos = _special_id(config, "eos_token_id", table, EOS_TOKENS)
    eos = family_id("eos") if eos is None else eos
    if eos is None:
        raise CheckpointError(f"{folder} defines no end-of-text token (eos_token_id in config.json).")
    expand = _special_id(config, "expand_token_id", table, EXPAND_TOKENS)
    expand = family_id("expand") if expand is None else expand
    if token_family(config) == "dreamon" and expand is None and config.get("mercury_length_control") != "filler":
        raise CheckpointError(
            f"{folder} looks like DreamOn but its expand token is not found (expand_token_id in config.json)."
        )
    pad = _special_id(config, "pad_token_id", table, PAD_TOKENS)
    delete = _special_id(config, "delete_token_id", table, DELETE_TOKENS)
    specials = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    filler_only = config.get("mercury_length_control") == "filler"
    return Vocabulary(
        tokenizer=tokenizer,
        mask_id=mask,
        eos_id=eos,
        pad_id=eos if pad is None else pad,
        # A checkpoint trained only with filler may still carry the tokens: `mercury_length_control` says so.
        expand_id=None if filler_only else expand,
        delete_id=None if filler_only else delete,
        special_ids=frozenset(specials.values()) | {i for i in (mask, eos, pad, expand, delete) if i is not None},
    )


def pick_device(device: str) -> torch.device:
    """'auto' picks CUDA when present."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CheckpointError("--device cuda was asked for but no CUDA device is available.")
    if device != "cpu" and not device.startswith("cuda"):
        raise CheckpointError(f"unknown device {device!r}; use auto, cpu or cuda.")
    return torch.device(device)


CPU_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX512-BF16); elsewhere bf16 is emulated
    and slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(target: torch.device) -> torch.dtype:
    """bf16 on a GPU. On a CPU, bf16 where the hardware does it natively (the bundled model then answers in about
    60% of the float32 time with the same exact-match rate), else float32; `MERCURY_CPU_DTYPE=float32` or
    `bfloat16` decides instead."""
    if target.type == "cuda":
        return torch.bfloat16
    choice = os.environ.get("MERCURY_CPU_DTYPE", "auto")
    if choice == "auto":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if choice not in CPU_DTYPES:
        raise CheckpointError(f"MERCURY_CPU_DTYPE must be auto, float32 or bfloat16, not {choice!r}.")
    return CPU_DTYPES[choice]


@dataclass
class CheckpointLayout:
    """What a model folder holds, read from its config.json and weight headers without loading a weight."""

    folder: Path
    raw: dict
    family: str
    config: ModelConfig
    files: dict[str, Path]


def read_layout(path: str | Path) -> CheckpointLayout:
    """The folder's family, model shape and weight files; CheckpointError when the engine cannot run it."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist.")
    config_path = folder / "config.json"
    if not config_path.exists():
        raise CheckpointError(f"{folder} has no config.json.")
    try:
        raw = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{config_path} is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{config_path} does not hold a JSON object.")
    family = detect_family(raw)
    check_supported(raw, family)
    files = _weight_files(folder)
    has_bias = NAME_MAPS[family]["layers.{i}.self_attn.q_proj.bias"].format(i=0) in files
    return CheckpointLayout(folder, raw, family, parse_config(raw, family, has_bias), files)


def load_checkpoint(path: str | Path, device: str = "auto", dtype: torch.dtype | None = None,
                    layout: CheckpointLayout | None = None) -> LoadedModel:
    """Load a model folder (its `layout` when already read); weights are memory-mapped, in `dtype` or else as
    `pick_dtype` decides."""
    layout = layout or read_layout(path)
    folder, raw, family, config = layout.folder, layout.raw, layout.family, layout.config
    vocab = load_vocabulary(folder, raw, config.vocab_size)
    if vocab.size > config.vocab_size:
        raise CheckpointError(
            f"tokenizer.json has {vocab.size} tokens but the model's vocabulary is {config.vocab_size}."
        )
    target = pick_device(device)
    dtype = dtype or pick_dtype(target)
    with torch.device("meta"):
        model = Transformer(config)
    state = _read_weights(model, config, NAME_MAPS[family], layout.files, target, dtype)
    model.load_state_dict(state, assign=True, strict=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.embed_tokens.weight
    model.inv_freq = rope_inv_freq(config).to(target)  # non-persistent buffer: still on the meta device
    model.eval().requires_grad_(False)
    probe = load_commit_probe(folder)
    return LoadedModel(model, vocab, family, raw.get("_name_or_path") or folder.name, target, dtype,
                       probe.to(target) if probe is not None else None)


def _read_weights(
    model: Transformer,
    config: ModelConfig,
    names: dict[str, str],
    files: dict[str, Path],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    expected = dict(model.state_dict())
    if config.tie_embeddings:
        expected.pop("lm_head.weight", None)
    handles: dict[Path, object] = {}

    def read(theirs: str) -> torch.Tensor:
        if theirs not in files:
            raise CheckpointError(f"weight {theirs} is missing from the checkpoint.")
        file = files[theirs]
        if file not in handles:
            try:
                handles[file] = safe_open(str(file), framework="pt", device="cpu")
            except Exception as exc:  # safetensors raises several types for corrupt headers
                raise CheckpointError(f"weight file {file.name} cannot be read ({exc}).") from None
        try:
            return handles[file].get_tensor(theirs)
        except Exception as exc:
            raise CheckpointError(f"weight {theirs} in {file.name} cannot be read ({exc}).") from None

    state: dict[str, torch.Tensor] = {}
    try:
        for ours, param in expected.items():
            parts = [_their_name(part, names) for part in _unfused_names(ours)]
            tensors = [read(theirs) for theirs in parts]
            tensor = tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)
            if tuple(tensor.shape) != tuple(param.shape):
                shapes = " + ".join(str(tuple(t.shape)) for t in tensors)
                raise CheckpointError(
                    f"weight {' + '.join(parts)} has shape {shapes} but config.json implies {tuple(param.shape)}."
                )
            state[ours] = tensor.to(device=device, dtype=dtype)
    except OSError as exc:
        raise CheckpointError(f"a weight file cannot be read ({exc}).") from None
    if config.tie_embeddings:
        state["lm_head.weight"] = state["embed_tokens.weight"]
    return state


def _unfused_names(ours: str) -> tuple[str, ...]:
    """The checkpoint-layout names (in our naming) a model weight is made of: itself, or its fused parts."""
    if ours.startswith("layers."):
        _, index, rest = ours.split(".", 2)
        parts = FUSED_PARTS.get("layers.{i}." + rest)
        if parts is not None:
            return tuple(part.format(i=index) for part in parts)
    return (ours,)


def _their_name(ours: str, names: dict[str, str]) -> str:
    if ours.startswith("layers."):
        _, index, rest = ours.split(".", 2)
        return names["layers.{i}." + rest].format(i=index)
    return names[ours]


def checkpoint_state(model: Transformer, family: str) -> dict[str, torch.Tensor]:
    """The model's weights under a family's checkpoint names, fused projections split into their parts."""
    names = NAME_MAPS[family]
    state = {}
    for ours, tensor in model.state_dict().items():
        if ours == "lm_head.weight" and model.config.tie_embeddings:
            continue
        parts = _unfused_names(ours)
        sizes = _part_sizes(model.config, ours) if len(parts) > 1 else [tensor.shape[0]]
        for part, piece in zip(parts, tensor.split(sizes, dim=0)):
            state[_their_name(part, names)] = piece.detach().contiguous().cpu()
    return state


def _part_sizes(config: ModelConfig, ours: str) -> list[int]:
    if ".qkv_proj." in ours:
        q, kv = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        return [q, kv, kv]
    return [config.intermediate_size, config.intermediate_size]


def save_checkpoint(
    model: Transformer,
    tokenizer: Tokenizer,
    folder: str | Path,
    config_json: dict,
    family: str = "qwen2",
    max_shard_bytes: int | None = None,
) -> None:
    """Write a model folder in a family's naming that our loader reads; weights in the model's dtype.

    With `max_shard_bytes`, weights larger than that go to numbered shards plus model.safetensors.index.json
    (the Hugging Face layout), so no single file exceeds it; weight files of an earlier save are removed, and so
    is a commit probe: it was trained on the old weights' trajectories (mercury-engine train-probe makes a new one)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = checkpoint_state(model, family)
    stale_files = [*out.glob("model-*-of-*.safetensors"), out / "model.safetensors", out / "model.safetensors.index.json",
                   out / PROBE_FILE]
    for stale in stale_files:
        stale.unlink(missing_ok=True)
    shards = _pack_shards(state, max_shard_bytes)
    if len(shards) == 1:
        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map = {}
        for number, names in enumerate(shards, start=1):
            file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
            save_file({name: state[name] for name in names}, str(out / file), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(names, file))
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(config_json, indent=2) + "\n")
    tokenizer.save(str(out / "tokenizer.json"))


def _pack_shards(state: dict[str, torch.Tensor], max_bytes: int | None) -> list[list[str]]:
    """Tensor names grouped into shards of at most max_bytes each (in order; a larger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if max_bytes is not None and shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards
