"""A learned commit rule: a tiny probe over one step's predictions that says which masked positions already hold
their final token, so they are committed together (Learn2PD's idea, over features of the logits rather than
hidden states, so any checkpoint's own trajectories can train one).

The threshold rule commits a position when its probability passes 0.9, and a small model is rarely that sure even
where its best token is the one slow decoding ends with. The probe reads each masked position's probability,
margin, certainty and filler mass, the chance that the answer has ended before it, whether its neighbours are
settled and where it sits, and predicts whether its best non-filler token is final. It is trained from the
checkpoint's trajectories on training files (engine/training/commit_probe.py) and ships beside the weights as
`commit_probe.safetensors`; a checkpoint without one keeps the threshold rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mercury_lsp.engine.errors import CheckpointError

PROBE_FILE = "commit_probe.safetensors"
FEATURES = (
    "p_nonfiller", "p_best", "margin", "certainty", "filler", "ended", "left_settled", "right_settled",
    "masked_left", "position", "masked_fraction", "step", "left_p", "right_p", "single_line", "length",
)


def _neighbour(values: torch.Tensor, shift: int, fill: float) -> torch.Tensor:
    """values[:, j - shift] at j (shift 1: the left neighbour, -1: the right one), `fill` past the canvas."""
    pad = torch.full_like(values[:, :1], fill)
    return torch.cat([pad, values[:, :-1]], 1) if shift == 1 else torch.cat([values[:, 1:], pad], 1)


def vocab_features(logits: torch.Tensor, filler_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(certainty, second) [N] of logits [N, V]: exp(-entropy), 1 when sure and 1/V when uniform, and the runner-up
    non-filler token's probability. The features that read the whole vocabulary; the sampler computes them in
    chunks of positions, since a 150k vocabulary makes every [positions, V] temporary large."""
    log_p = logits.float().log_softmax(-1).clamp_(min=-1e4)  # tokens the sampler ruled out are -inf: 0 * -inf
    certainty = torch.exp((log_p.exp() * log_p).sum(-1))
    second = log_p.index_fill_(-1, filler_ids, float("-inf")).topk(2, dim=-1).values[..., 1].exp()
    return certainty, second


def probe_features(certainty: torch.Tensor, second: torch.Tensor, log_filler: torch.Tensor, p_best: torch.Tensor,
                   p_nonfiller: torch.Tensor, ended: torch.Tensor, masked: torch.Tensor, settled_content: torch.Tensor,
                   length: torch.Tensor, steps_done: torch.Tensor, single_line: torch.Tensor) -> torch.Tensor:
    """Features [B, C, len(FEATURES)] of every canvas position from one step's predictions.

    `certainty` and `second` come from the logits (vocab_features), `log_filler` is each position's log filler
    mass, `settled_content` marks committed positions that hold answer tokens (not filler); every input is [B, C]
    except `length`, `steps_done`, `single_line` ([B]). Only masked positions' features are read."""
    batch, width = masked.shape
    margin = p_nonfiller - second
    masked_f = masked.float()
    left_settled = _neighbour(~masked, 1, 1.0)  # position 0 sits beside the prefix
    right_settled = _neighbour(settled_content, -1, 0.0)
    masked_left = (masked_f.cumsum(-1) - masked_f).clamp(max=8) / 8
    position = torch.arange(width, device=masked.device).float().clamp(max=32)[None].expand(batch, -1) / 32
    masked_fraction = (masked_f.sum(-1) / length.clamp(min=1)).unsqueeze(-1).expand(-1, width)
    step = (steps_done.float().clamp(max=16) / 16).unsqueeze(-1).expand(-1, width)
    left_p = torch.where(_neighbour(masked, 1, 0.0), _neighbour(p_nonfiller, 1, 1.0), torch.ones_like(p_nonfiller))
    right_p = torch.where(_neighbour(masked, -1, 0.0), _neighbour(p_nonfiller, -1, 1.0), torch.ones_like(p_nonfiller))
    line = single_line.float().unsqueeze(-1).expand(-1, width)
    canvas = (length.float().clamp(max=64) / 64).unsqueeze(-1).expand(-1, width)
    columns = (p_nonfiller, p_best, margin, certainty, log_filler.exp(), ended, left_settled.float(),
               right_settled.float(), masked_left, position, masked_fraction, step, left_p, right_p, line, canvas)
    return torch.stack([c.float() for c in columns], -1)


@dataclass
class CommitProbe:
    """Standardised features -> one hidden ReLU layer -> P(the position's best non-filler token is final)."""

    mean: torch.Tensor  # [F]
    std: torch.Tensor  # [F]
    w1: torch.Tensor  # [H, F]
    b1: torch.Tensor  # [H]
    w2: torch.Tensor  # [H]
    b2: torch.Tensor  # [1]
    threshold: float  # scores at or above this commit

    def score(self, features: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Scores [B, C] of features [B, C, F]; `candidates` [B, C] are the tokens scored (a trajectory recorder
        reads them; the probe itself does not)."""
        x = (features - self.mean) / self.std
        hidden = torch.relu(x @ self.w1.T + self.b1)
        return torch.sigmoid(hidden @ self.w2 + self.b2)

    def rescale(self, score: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        """Scores mapped monotonically onto another rule's scale: this probe's threshold lands on `threshold`, 0
        and 1 stay put, so a commit rule comparing against `threshold` commits exactly what the probe would."""
        t = self.threshold
        below = score / t * threshold
        above = threshold + (score - t) / max(1 - t, 1e-6) * (1 - threshold)
        return torch.where(score >= t, above, below).clamp(0.0, 1.0)

    def to(self, device: torch.device) -> CommitProbe:
        tensors = {name: getattr(self, name).to(device=device, dtype=torch.float32) for name in self._TENSORS}
        return CommitProbe(**tensors, threshold=self.threshold)

    _TENSORS = ("mean", "std", "w1", "b1", "w2", "b2")

    def save(self, folder: Path) -> Path:
        path = Path(folder) / PROBE_FILE
        tensors = {name: getattr(self, name).detach().float().contiguous().cpu() for name in self._TENSORS}
        save_file(tensors, str(path), metadata={"threshold": repr(self.threshold), "features": ",".join(FEATURES)})
        return path


def load_commit_probe(folder: Path) -> CommitProbe | None:
    """The probe shipped in a model folder, None when it has none; a broken one is a CheckpointError."""
    path = Path(folder) / PROBE_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in CommitProbe._TENSORS}
        threshold = float(metadata["threshold"])
        features = metadata.get("features", "").split(",")
    except Exception as error:  # any unreadable file: one sentence, not a traceback
        raise CheckpointError(f"{path} is not a readable commit probe ({type(error).__name__}: {error}).") from error
    if features != list(FEATURES):
        raise CheckpointError(f"{path} was trained on other features ({', '.join(features)}); retrain it.")
    hidden = tensors["w1"].shape[0]
    shapes_ok = (tensors["mean"].shape == tensors["std"].shape == (len(FEATURES),)
                 and tensors["w1"].shape == (hidden, len(FEATURES)) and tensors["b1"].shape == (hidden,)
                 and tensors["w2"].shape == (hidden,) and tensors["b2"].shape == (1,))
    if not shapes_ok or not 0 < threshold <= 1:
        raise CheckpointError(f"{path} has tensors of the wrong shapes or a threshold outside (0, 1].")
    return CommitProbe(**{k: v.float() for k, v in tensors.items()}, threshold=threshold)
