"""Per-row softmax confidence over the vocabulary: best token, and best token that is not filler."""

from __future__ import annotations

import torch

from .dispatch import triton_half_attribute, use_triton


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
    if use_triton(logits):
        # The Triton half (and Triton itself) is imported at the first launch on a CUDA tensor.
        from .confidence_triton import confidence_triton

        return confidence_triton(logits, filler_ids)
    return confidence_reference(logits, filler_ids)


def __getattr__(name: str) -> object:
    """The Triton half's names (confidence.confidence_triton, its kernels), imported when first asked for."""
    return triton_half_attribute(__name__, name)
