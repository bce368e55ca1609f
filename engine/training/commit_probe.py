"""Train the learned commit rule (engine/commit_probe) from a checkpoint's own trajectories on training files.

Slow decoding (the threshold rule) fills holes punched in the corpus's training split; at every step each
masked position's features are recorded with whether its best non-filler token is the one the canvas finally
holds there (Learn2PD's label: committing it early changes nothing). A small MLP learns the label; its threshold
is the lowest score at which the held-back holes' positions stay at or above the asked precision. The evaluation
side of the corpus is never read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from mercury_lsp.engine.api.file_header import file_header
from mercury_lsp.engine.checkpoint import LoadedModel
from mercury_lsp.engine.commit_probe import FEATURES, CommitProbe
from mercury_lsp.engine.infill import InfillEngine
from mercury_lsp.engine.training.corpus import SourceFile
from mercury_lsp.engine.training.evaluate import (
    Hole,
    evaluation_engine,
    heldout_holes,
    hole_request,
)

ENDED = FEATURES.index("ended")


class TrajectoryRecorder:
    """Takes the probe's place during slow decoding: records each step's features and candidates for the
    positions still to decide, and scores nothing (the threshold rule commits)."""

    def __init__(self, engine: InfillEngine) -> None:
        self.engine = engine
        self.steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (positions, features, candidates)

    def score(self, features: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        # One request at a time, in slot 0; denoise has not written this step back yet, so `masked` is the state
        # the features describe. Positions the length rule commits as filler this step are not candidates.
        assert not bool(self.engine.canvases.probe_on[0]), "recording needs the threshold rule to commit"
        width = features.shape[1]
        masked = self.engine.canvases.masked[0, :width]
        tail_threshold = self.engine.settings.tail_threshold
        if tail_threshold is not None:
            masked = masked & (features[0, :, ENDED] < tail_threshold)
        positions = masked.nonzero().flatten()
        self.steps.append((positions, features[0, positions].clone(), candidates[0, positions].clone()))
        return torch.zeros(candidates.shape, dtype=torch.float32, device=candidates.device)

    def rescale(self, score: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
        return score


@dataclass
class Trajectories:
    features: list[torch.Tensor] = field(default_factory=list)  # per hole: [N, F]
    labels: list[torch.Tensor] = field(default_factory=list)  # per hole: [N] 1.0 where the candidate is final


def record_trajectories(loaded: LoadedModel, holes: list[Hole]) -> Trajectories:
    """Slow-decode every hole with the threshold rule, recording features and final-token labels."""
    engine = evaluation_engine(loaded, commit_rule="threshold")
    recorder = TrajectoryRecorder(engine)
    engine.canvas_step.probe = recorder  # the step reads features through it; the threshold rule still commits
    out = Trajectories()
    for hole in holes:
        recorder.steps.clear()
        result = engine.infill(hole_request(hole.prefix, hole.suffix, hole.kind, file_header(hole.key, "python")))
        assert result.steps == len(recorder.steps)
        final = engine.canvases.ids[0].clone()
        steps = recorder.steps or [(torch.zeros(0, dtype=torch.long), torch.zeros(0, len(FEATURES)), torch.zeros(0))]
        out.features.append(torch.cat([features for _, features, _ in steps]).cpu())
        out.labels.append(torch.cat([(candidates == final[positions]).float() for positions, _, candidates in steps]).cpu())
    return out


def training_holes(files: list[SourceFile], single: int, multi: int, seed: int) -> list[Hole]:
    """Holes from training files only, drawn as the evaluation draws its held-out ones."""
    return heldout_holes(single, multi, seed=seed, files=files)


def fit_probe(features: torch.Tensor, labels: torch.Tensor, hidden: int = 32, epochs: int = 400,
              seed: int = 0) -> CommitProbe:
    """Full-batch Adam on the binary cross-entropy of one hidden layer; threshold set later."""
    generator = torch.Generator().manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp_min(1e-3)
    x = (features - mean) / std
    w1 = (torch.randn(hidden, x.shape[1], generator=generator) / x.shape[1] ** 0.5).requires_grad_()
    b1 = torch.zeros(hidden, requires_grad=True)
    w2 = (torch.randn(hidden, generator=generator) / hidden**0.5).requires_grad_()
    b2 = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([w1, b1, w2, b2], lr=1e-2)
    for _ in range(epochs):
        optimizer.zero_grad()
        logit = torch.relu(x @ w1.T + b1) @ w2 + b2
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, labels)
        loss.backward()
        optimizer.step()
    return CommitProbe(mean, std, w1.detach(), b1.detach(), w2.detach(), b2.detach(), threshold=1.0)


def precision_threshold(scores: torch.Tensor, labels: torch.Tensor, precision: float) -> float:
    """The lowest score whose positions at or above it are right at least `precision` of the time."""
    order = scores.argsort(descending=True)
    hits = labels[order].cumsum(0)
    ranks = torch.arange(1, len(order) + 1)
    ok = (hits / ranks) >= precision
    if not bool(ok.any()):
        return 1.0
    last = int(ok.nonzero().max())  # the deepest cut that still meets the precision
    return min(1.0, float(scores[order][last]))


@dataclass
class ProbeReport:
    probe: CommitProbe
    rows: int
    holdout_rows: int
    base_rate: float  # share of positions whose candidate is final
    holdout_commits: float  # share of held-back positions the probe commits at its threshold
    holdout_precision: float


def train_commit_probe(loaded: LoadedModel, files: list[SourceFile], single: int, multi: int, precision: float,
                       seed: int = 0, holdout: float = 0.2, progress=None) -> ProbeReport:
    holes = training_holes(files, single, multi, seed)
    random.Random(seed).shuffle(holes)
    cut = max(1, int(len(holes) * (1 - holdout)))
    if progress:
        progress(f"recording trajectories of {len(holes)} training holes")
    fit_side, check_side = record_trajectories(loaded, holes[:cut]), record_trajectories(loaded, holes[cut:])
    x, y = torch.cat(fit_side.features), torch.cat(fit_side.labels)
    vx, vy = torch.cat(check_side.features), torch.cat(check_side.labels)
    if progress:
        progress(f"fitting on {len(y)} positions ({float(y.mean()):.1%} final), checking on {len(vy)}")
    probe = fit_probe(x, y, seed=seed)
    scores = probe.score(vx, torch.zeros(len(vy)))
    probe.threshold = precision_threshold(scores, vy, precision)
    chosen = scores >= probe.threshold
    return ProbeReport(probe, len(y), len(vy), float(y.mean()), float(chosen.float().mean()),
                       float(vy[chosen].mean()) if bool(chosen.any()) else 0.0)
