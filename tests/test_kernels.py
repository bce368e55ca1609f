"""Every Triton kernel against its torch reference, run on the CPU by Triton's interpreter (float32, small shapes).

Triton reads TRITON_INTERPRET when it is imported, so these tests run only in a process started with it set:
`TRITON_INTERPRET=1 pytest tests/test_kernels.py`. In an ordinary run test_kernel_interpreter_process.py starts
that process, and this module skips itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip(
        "needs TRITON_INTERPRET=1 from process start; test_kernel_interpreter_process.py runs it so",
        allow_module_level=True,
    )
pytest.importorskip("triton")

from mercury_lsp.kernels import attention, commit, confidence, rmsnorm, rope, swiglu  # noqa: E402
from mercury_lsp.kernels.dispatch import use_triton  # noqa: E402

_real_empty, _real_empty_like = torch.empty, torch.empty_like


def _poison(t: torch.Tensor, flag: bool) -> torch.Tensor:
    if t.dtype.is_floating_point:
        return t.fill_(float("nan"))
    if t.dtype == torch.bool:
        return t.fill_(flag)
    return t.fill_(-12345)


@pytest.fixture(autouse=True)
def fresh_seed() -> Iterator[None]:
    """Fresh random inputs per test; the seed is printed so a failure can be replayed."""
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    torch.manual_seed(seed)
    yield


@pytest.fixture
def poisoned(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every buffer a launcher allocates starts as NaN / -12345 / a bool (True unless parametrized)."""
    flag = getattr(request, "param", True)
    monkeypatch.setattr(torch, "empty", lambda *a, **kw: _poison(_real_empty(*a, **kw), flag))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **kw: _poison(_real_empty_like(*a, **kw), flag))


@pytest.mark.parametrize("shape", [(1, 1, 64), (2, 3, 40), (5, 96)])
@pytest.mark.parametrize("with_residual", [True, False])
def test_rms_norm(poisoned: None, shape: tuple[int, ...], with_residual: bool) -> None:
    x = torch.randn(shape)
    residual = torch.randn(shape) if with_residual else None
    weight = torch.randn(shape[-1])
    normed, hidden = rmsnorm.rms_norm_triton(x, weight, 1e-6, residual)
    ref_normed, ref_hidden = rmsnorm.rms_norm_reference(x, weight, 1e-6, residual)
    torch.testing.assert_close(normed, ref_normed)
    torch.testing.assert_close(hidden, ref_hidden, rtol=0, atol=0)


@pytest.mark.parametrize("rows, width", [(1, 7), (3, 1500), (65, 33)])
def test_swiglu_on_halves_of_a_fused_projection(poisoned: None, rows: int, width: int) -> None:
    fused = torch.randn(rows, 2 * width) * 3
    gate, up = fused[:, :width], fused[:, width:]
    out = swiglu.swiglu_triton(gate, up)
    torch.testing.assert_close(out, swiglu.swiglu_reference(gate, up))


@pytest.mark.parametrize("n_heads, n_kv_heads", [(2, 2), (7, 1), (28, 4)])
@pytest.mark.parametrize("seq_len", [1, 3, 65])
def test_rope_in_place_on_a_fused_qkv(n_heads: int, n_kv_heads: int, seq_len: int) -> None:
    batch, head_dim = 2, 16
    qkv = torch.randn(batch, seq_len, n_heads + 2 * n_kv_heads, head_dim)
    angles = torch.rand(batch, seq_len, head_dim // 2) * 100
    cos, sin = angles.cos(), angles.sin()
    ref = qkv.clone()
    q, k = qkv[:, :, :n_heads], qkv[:, :, n_heads : n_heads + n_kv_heads]
    rq, rk = ref[:, :, :n_heads], ref[:, :, n_heads : n_heads + n_kv_heads]
    rope.rope_triton(q, k, cos, sin)
    rope.rope_reference(rq, rk, cos, sin)
    # The whole fused tensor: rotated q and k, and values the kernel must leave alone.
    torch.testing.assert_close(qkv, ref)


@pytest.mark.parametrize(
    "rows, fillers", [(1, []), (3, []), (1, [5]), (3, [5]), (1, [3, 999, 17]), (65, [3, 999, 17])]
)
def test_confidence(poisoned: None, rows: int, fillers: list[int]) -> None:
    vocab = 1000  # four chunks of two 128-wide blocks, the last chunk and block ragged
    logits = torch.randn(rows, vocab) * 4
    filler_ids = torch.tensor(fillers, dtype=torch.long)
    if fillers:
        # Make a filler the overall best in some rows, so best and best-non-filler differ.
        logits[::2, fillers[-1]] = 30.0
    # Ties across lanes and blocks: the first index wins, as in torch.
    logits[-1, [700, 6, 900]] = 25.0
    got = confidence.confidence_triton(logits, filler_ids, block_v=128, blocks_per_chunk=2)
    ref = confidence.confidence_reference(logits, filler_ids)
    for g, r in zip(got, ref, strict=True):
        if r.dtype.is_floating_point:
            torch.testing.assert_close(g, r)
        else:
            assert torch.equal(g, r)


def _commit_case(batch: int, canvas: int) -> tuple[torch.Tensor, ...]:
    """Random step state with filler clustered towards the right edge, where the run rules bite."""
    p_best = torch.rand(batch, canvas)
    p_best[:, : canvas // 3] = 0.5  # ties: the lowest index must win, as in the reference
    p_nonfiller = p_best * torch.rand(batch, canvas)
    id_best = torch.randint(0, 1000, (batch, canvas))
    id_nonfiller = torch.randint(0, 1000, (batch, canvas))
    cut = torch.randint(0, canvas + 1, (batch, 1))
    right = torch.arange(canvas)[None, :] >= cut
    best_is_filler = right & (torch.rand(batch, canvas) < 0.9) | (torch.rand(batch, canvas) < 0.1)
    masked = torch.rand(batch, canvas) < 0.7
    committed_filler = ~masked & right & (torch.rand(batch, canvas) < 0.8)
    threshold = torch.rand(batch) * 0.6 + 0.4
    filler_rule = torch.rand(batch) < 0.75
    return (
        p_best, id_best, p_nonfiller, id_nonfiller, best_is_filler, masked, committed_filler,
        threshold, filler_rule,
    )  # fmt: skip


@pytest.mark.parametrize("poisoned", [True, False], indirect=True, ids=["poison-true", "poison-false"])
@pytest.mark.parametrize("canvas", [1, 3, 65, 256])
@pytest.mark.parametrize("with_min_commits", [False, True])
@pytest.mark.parametrize("with_filler_threshold", [False, True])
def test_commit_matches_the_reference_exactly(
    poisoned: None, canvas: int, with_min_commits: bool, with_filler_threshold: bool
) -> None:
    batch = 6
    for _ in range(4):
        args = _commit_case(batch, canvas)
        min_commits = torch.randint(0, 9, (batch,)) if with_min_commits else None
        filler_threshold = torch.rand(batch) * 0.8 + 0.2 if with_filler_threshold else None
        got = commit.commit_confident_triton(*args, min_commits=min_commits, filler_threshold=filler_threshold)
        ref = commit.commit_confident_reference(*args, min_commits=min_commits, filler_threshold=filler_threshold)
        for name, g, r in zip(("commit", "token", "confidence"), got, ref, strict=True):
            assert torch.equal(g, r), f"{name} differs from the reference"


@pytest.mark.parametrize("n_heads, n_kv_heads", [(2, 2), (7, 1), (14, 2)])
@pytest.mark.parametrize("canvas", [1, 3, 65])
@pytest.mark.parametrize("splits", [1, 3])
def test_canvas_attention(
    poisoned: None, n_heads: int, n_kv_heads: int, canvas: int, splits: int
) -> None:
    batch, capacity, head_dim = 3, 150, 16
    q = torch.randn(batch, n_heads, canvas, head_dim)
    k_ctx, v_ctx = torch.randn(2, batch, n_kv_heads, capacity, head_dim).unbind(0)
    k_new, v_new = torch.randn(2, batch, n_kv_heads, canvas, head_dim).unbind(0)
    # Context lengths differ per row (one row has no context, one claims more than the buffer holds);
    # the canvas of one row is partly padding.
    ctx_len = torch.tensor([capacity + 5, 37, 0])
    new_len = torch.tensor([canvas, max(1, canvas - 2), canvas])
    # The output is written through a transposed view, as the model's [B, C, H, D] layout needs.
    out = _real_empty(batch, canvas, n_heads, head_dim).fill_(float("nan")).transpose(1, 2)
    got = attention.canvas_attention_triton(
        q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, 0.25, out=out, num_splits=splits
    )
    assert got.data_ptr() == out.data_ptr()
    ref = attention.canvas_attention_reference(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, 0.25)
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("splits", [1, 3])
def test_canvas_attention_reads_each_rows_context_slot(poisoned: None, splits: int) -> None:
    """The engine keeps every request's context in a slot of one cache; rows name their slot (two may share)."""
    slots, batch, canvas, n_heads, n_kv_heads, head_dim, capacity = 4, 3, 6, 4, 2, 16, 90
    q = torch.randn(batch, n_heads, canvas, head_dim)
    k_cache, v_cache = torch.randn(2, slots, n_kv_heads, capacity, head_dim).unbind(0)
    k_new, v_new = torch.randn(2, batch, n_kv_heads, canvas, head_dim).unbind(0)
    rows, ctx_len, new_len = torch.tensor([2, 0, 2]), torch.tensor([90, 13, 40]), torch.tensor([6, 3, 1])
    got = attention.canvas_attention_triton(
        q, k_cache, v_cache, ctx_len, k_new, v_new, new_len, 0.3, ctx_rows=rows, num_splits=splits
    )
    gathered = attention.canvas_attention_reference(
        q, k_cache[rows], v_cache[rows], ctx_len, k_new, v_new, new_len, 0.3
    )
    torch.testing.assert_close(got, gathered)
    by_rows = attention.canvas_attention_reference(q, k_cache, v_cache, ctx_len, k_new, v_new, new_len, 0.3, rows)
    torch.testing.assert_close(by_rows, gathered)


def test_canvas_attention_without_a_context(poisoned: None) -> None:
    """The engine's first window has an empty context: [B, Hkv, 0, D] slices."""
    batch, canvas, n_heads, n_kv_heads, head_dim = 2, 9, 7, 1, 16
    q = torch.randn(batch, n_heads, canvas, head_dim)
    k_new, v_new = torch.randn(2, batch, n_kv_heads, canvas, head_dim).unbind(0)
    ctx_len, new_len = torch.zeros(batch, dtype=torch.long), torch.tensor([9, 4])
    empty = torch.empty(batch, n_kv_heads, 0, head_dim)
    got = attention.canvas_attention_triton(q, empty, empty, ctx_len, k_new, v_new, new_len, 0.3)
    ref = attention.canvas_attention_reference(q, empty, empty, ctx_len, k_new, v_new, new_len, 0.3)
    torch.testing.assert_close(got, ref)


def test_canvas_attention_with_strided_inputs_and_its_own_output(poisoned: None) -> None:
    """q and the canvas K/V as views of one fused projection, as the model hands them over."""
    batch, canvas, n_heads, n_kv_heads, head_dim, capacity = 2, 5, 4, 2, 32, 70
    qkv = torch.randn(batch, canvas, n_heads + 2 * n_kv_heads, head_dim)
    q = qkv[:, :, :n_heads].transpose(1, 2)
    k_new = qkv[:, :, n_heads : n_heads + n_kv_heads].transpose(1, 2)
    v_new = qkv[:, :, n_heads + n_kv_heads :].transpose(1, 2)
    k_ctx, v_ctx = torch.randn(2, batch, n_kv_heads, capacity, head_dim).unbind(0)
    ctx_len, new_len = torch.tensor([64, 70]), torch.tensor([5, 4])
    got = attention.canvas_attention_triton(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, 0.2)
    ref = attention.canvas_attention_reference(q, k_ctx, v_ctx, ctx_len, k_new, v_new, new_len, 0.2)
    torch.testing.assert_close(got, ref)


def test_dispatch_takes_the_reference_on_cpu() -> None:
    assert not use_triton(torch.zeros(1))
    x, w = torch.randn(3, 8), torch.randn(8)
    torch.testing.assert_close(rmsnorm.rms_norm(x, w, 1e-6), rmsnorm.rms_norm_reference(x, w, 1e-6))
