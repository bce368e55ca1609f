"""The dispatchers on a CUDA device: Triton at bf16 against the float32 references, and inside a CUDA graph."""

from __future__ import annotations

import os

import pytest
import torch

from mercury_lsp.kernels import attention, commit, confidence, rmsnorm, rope, swiglu
from mercury_lsp.kernels.dispatch import TRITON_AVAILABLE, use_triton

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    pytest.mark.skipif(not TRITON_AVAILABLE, reason="needs Triton"),
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="the interpreter replaces the GPU here"),
]


def _relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def _bf16(*size: int, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(size, device="cuda") * scale).to(torch.bfloat16)


def test_rms_norm_swiglu_rope() -> None:
    x, res, w = _bf16(64, 3584), _bf16(64, 3584), _bf16(3584, scale=0.1) + 1
    assert use_triton(x)
    normed, hidden = rmsnorm.rms_norm(x, w, 1e-6, res)
    ref_normed, ref_hidden = rmsnorm.rms_norm_reference(x.float(), w.float(), 1e-6, res.float())
    assert _relative_error(normed, ref_normed) < 1e-2 and _relative_error(hidden, ref_hidden) < 1e-2

    gate_up = _bf16(64, 2 * 4864, scale=2.0)
    gate, up = gate_up[:, :4864], gate_up[:, 4864:]
    assert _relative_error(swiglu.swiglu(gate, up), swiglu.swiglu_reference(gate.float(), up.float())) < 1e-2

    qkv = _bf16(1, 64, 28 + 8, 128)
    ref = qkv.float()
    angles = torch.rand(1, 64, 64, device="cuda") * 1000
    rope.apply_rope(qkv[:, :, :28], qkv[:, :, 28:32], angles.cos(), angles.sin())
    rope.rope_reference(ref[:, :, :28], ref[:, :, 28:32], angles.cos(), angles.sin())
    assert _relative_error(qkv, ref) < 1e-2


@pytest.mark.parametrize("canvas, context", [(1, 1024), (64, 1024), (256, 32768)])
def test_canvas_attention(canvas: int, context: int) -> None:
    q = _bf16(2, 28, canvas, 128)
    k_ctx, v_ctx = _bf16(2, 4, context, 128), _bf16(2, 4, context, 128)
    k_new, v_new = _bf16(2, 4, canvas, 128), _bf16(2, 4, canvas, 128)
    ctx_len = torch.tensor([context, context // 3], device="cuda")
    new_len = torch.tensor([canvas, max(1, canvas - 7)], device="cuda")
    out = attention.canvas_attention(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, 128**-0.5)
    ref = attention.canvas_attention_reference(
        q.float(), k_ctx.float(), v_ctx.float(), ctx_len, k_new.float(), v_new.float(), new_len, 128**-0.5
    )
    assert _relative_error(out, ref) < 1e-2


def test_step_tail_replays_in_a_cuda_graph() -> None:
    """confidence + commit without host synchronisation: captured once, replayed on new logits."""
    vocab, rows = 152064, 64
    logits = _bf16(rows, vocab, scale=3.0)
    fillers = torch.tensor([151643, 151645], device="cuda")
    masked = torch.ones(1, rows, dtype=torch.bool, device="cuda")
    flags = torch.zeros(1, rows, dtype=torch.bool, device="cuda")
    threshold, rule = torch.full((1,), 0.9, device="cuda"), torch.ones(1, dtype=torch.bool, device="cuda")
    min_commits = torch.full((1,), 8, device="cuda")

    def tail() -> tuple[torch.Tensor, ...]:
        p, i, p_nf, i_nf = (t.view(1, rows) for t in confidence.confidence(logits, fillers))
        return commit.commit_confident(
            p, i, p_nf, i_nf, (i[..., None] == fillers).any(-1), masked, flags, threshold, rule,
            min_commits=min_commits,
        )

    tail()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = tail()
    logits.copy_(_bf16(rows, vocab, scale=3.0))
    graph.replay()
    expected = tail()
    for got, want in zip(outputs, expected):
        assert torch.equal(got, want)
    assert int(outputs[0].sum()) == 8
