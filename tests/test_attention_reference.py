"""The canvas attention's torch reference (what a CPU runs, and what the Triton kernel is tested against) keeps the
plain definition: needs no Triton, so it runs in every process."""

from __future__ import annotations

import pytest
import torch

from mercury_lsp.kernels import attention


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
@pytest.mark.parametrize("canvas", [7, 40])  # a float32 slot: scores against it in place; one copy for SDPA
@pytest.mark.parametrize("slot_dtype", [torch.float32, torch.bfloat16])
def test_the_canvas_attention_reference_is_softmax_over_the_gathered_and_concatenated_keys(
    kv_heads: int, canvas: int, slot_dtype: torch.dtype
) -> None:
    """The reference attends over views of each row's slot; the definition it keeps: gather the rows' contexts,
    concatenate the canvas keys, mask what is past each row's lengths, softmax(q k^T * scale) v. A bfloat16
    context (EngineSettings.context_dtype) is read as float32."""
    torch.manual_seed(0)
    slots, batch, heads, head_dim, capacity = 5, 4, 4, 16, 40
    q = torch.randn(batch, canvas, heads, head_dim).transpose(1, 2)  # a view of the projection, as the model has it
    k_cache, v_cache = torch.randn(2, slots, kv_heads, capacity, head_dim).to(slot_dtype).unbind(0)
    k_new, v_new = torch.randn(2, batch, kv_heads, canvas, head_dim).unbind(0)
    # Two rows share a slot; one has no context, one claims more than the slot holds; canvases partly padding.
    rows, ctx_len, new_len = torch.tensor([3, 0, 3, 1]), torch.tensor([25, 0, capacity + 9, 40]), torch.tensor([7, 2, 5, 1])
    keys = torch.cat([k_cache[rows], k_new], dim=2).float().repeat_interleave(heads // kv_heads, dim=1)
    values = torch.cat([v_cache[rows], v_new], dim=2).float().repeat_interleave(heads // kv_heads, dim=1)
    valid = torch.cat([torch.arange(capacity)[None] < ctx_len[:, None], torch.arange(canvas)[None] < new_len[:, None]], 1)
    scores = (q @ keys.mT * 0.3).masked_fill(~valid[:, None, None, :], float("-inf"))
    expected = scores.softmax(-1) @ values
    got = attention.canvas_attention_reference(q, k_cache, v_cache, ctx_len, k_new, v_new, new_len, 0.3, rows)
    torch.testing.assert_close(got, expected)
