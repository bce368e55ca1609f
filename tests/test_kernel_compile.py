"""Every Triton kernel compiles for an H100 / H200 (sm_90, bf16, the 7B shapes' block sizes) down to a cubin.

Triton's interpreter runs the kernels' Python and misses what only the compiler checks (types across branches
and loops, dot shapes); this runs the real front end and ptxas, which need no GPU.
"""

from __future__ import annotations

import os

import pytest

triton = pytest.importorskip("triton")
if os.environ.get("TRITON_INTERPRET") == "1":
    pytest.skip("the interpreter replaces the compiler in this process", allow_module_level=True)

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.compiler import compile as compile_kernel  # noqa: E402

from mercury_lsp.kernels import attention, commit, confidence, rmsnorm, rope, swiglu  # noqa: E402
from mercury_lsp.kernels.dispatch import FP_FUSION  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)


def _compile(
    kernel: object, types: dict[str, str], constexprs: dict[str, object], num_warps: int = 4
) -> dict[str, object]:
    """Compile with a type ("*bf16", "i32", "fp32") per runtime argument and a value per constexpr."""
    names = kernel.arg_names  # ASTSource binds the signature by position
    signature = {n: types[n] if n in types else "constexpr" for n in names}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    compiled = compile_kernel(source, target=HOPPER, options={"num_warps": num_warps, "enable_fp_fusion": FP_FUSION})
    assert compiled.asm["cubin"], "ptxas produced no cubin"
    return compiled.metadata._asdict()


def _ints(*names: str) -> dict[str, str]:
    return dict.fromkeys(names, "i32")


@pytest.mark.slow
@pytest.mark.parametrize("has_residual", [True, False])
def test_rms_norm_compiles(has_residual: bool) -> None:
    ptrs = dict.fromkeys(("x_ptr", "res_ptr", "w_ptr", "out_ptr", "hidden_ptr"), "*bf16")
    args = {**ptrs, **_ints("n_cols", "stride_x", "stride_res", "stride_out", "stride_hidden"), "eps": "fp32"}
    _compile(rmsnorm._rms_norm_kernel, args, {"HAS_RESIDUAL": has_residual, "BLOCK": 4096}, num_warps=16)


@pytest.mark.slow
def test_swiglu_and_rope_compile() -> None:
    ptrs = dict.fromkeys(("gate_ptr", "up_ptr", "out_ptr"), "*bf16")
    strides = _ints("n_cols", "stride_gate", "stride_up", "stride_out")
    _compile(swiglu._swiglu_kernel, {**ptrs, **strides}, {"BLOCK": 1024})
    ptrs = {"q_ptr": "*bf16", "k_ptr": "*bf16", "cos_ptr": "*fp32", "sin_ptr": "*fp32"}
    strides = _ints("seq_len", "n_q_heads", "n_k_heads", "sq_b", "sq_l", "sq_h", "sk_b", "sk_l", "sk_h", "sc_b", "sc_l")
    _compile(rope._rope_kernel, {**ptrs, **strides}, {"HALF": 64, "BLOCK_HQ": 32, "BLOCK_HK": 4})


@pytest.mark.slow
def test_confidence_compiles() -> None:
    parts = {"part_max_ptr": "*fp32", "part_sum_ptr": "*fp32", "part_id_ptr": "*i32", "part_nf_ptr": "*fp32",
             "part_nf_id_ptr": "*i32"}  # fmt: skip
    sizes = _ints("vocab", "stride_row", "n_filler", "chunk", "n_chunks")
    partial = {"logits_ptr": "*bf16", "filler_ptr": "*i64", **parts, **sizes}
    _compile(confidence._confidence_partial_kernel, partial, {"BLOCK_V": 2048}, num_warps=8)
    outputs = {"p_best_ptr": "*fp32", "id_best_ptr": "*i64", "p_nf_ptr": "*fp32", "id_nf_ptr": "*i64"}
    merge = {**parts, **outputs, **_ints("vocab", "n_chunks")}
    _compile(confidence._confidence_merge_kernel, merge, {"BLOCK_CHUNKS": 16}, num_warps=1)


@pytest.mark.slow
@pytest.mark.parametrize("has_min_commits", [True, False])
def test_commit_compiles(has_min_commits: bool) -> None:
    args = {
        "p_best_ptr": "*fp32", "id_best_ptr": "*i64", "p_nf_ptr": "*fp32", "id_nf_ptr": "*i64",
        "is_filler_ptr": "*i1", "masked_ptr": "*i1", "committed_ptr": "*i1", "threshold_ptr": "*fp32",
        "filler_threshold_ptr": "*fp32",
        "rule_ptr": "*i1", "min_commits_ptr": "*i64", "commit_ptr": "*i1", "token_ptr": "*i64", "conf_ptr": "*fp32",
        "n_cols": "i32",
    }  # fmt: skip
    _compile(commit._commit_kernel, args, {"HAS_MIN_COMMITS": has_min_commits, "BLOCK_C": 256})


@pytest.mark.slow
@pytest.mark.parametrize("dtype, split", [("bf16", True), ("bf16", False), ("fp32", False)])
def test_canvas_attention_compiles(dtype: str, split: bool) -> None:
    tensors = ("q_ptr", "k_ctx_ptr", "v_ctx_ptr", "k_new_ptr", "v_new_ptr", "out_ptr")
    strides = _ints(
        "n_batch", "n_kv_heads", "group", "n_canvas", "ctx_capacity",
        "sq_b", "sq_h", "sq_c", "skc_b", "skc_h", "skc_t", "svc_b", "svc_h", "svc_t",
        "skn_b", "skn_h", "skn_c", "svn_b", "svn_h", "svn_c", "so_b", "so_h", "so_c",
    )  # fmt: skip
    args = {
        **dict.fromkeys(tensors, f"*{dtype}"), "ctx_len_ptr": "*i64", "new_len_ptr": "*i64",
        "part_ptr": "*fp32", "lse_ptr": "*fp32", **strides, "qk_scale": "fp32",
    }  # fmt: skip
    blocks = {"HEAD_DIM": 128, "BLOCK_M": 64, "BLOCK_N": 64, "SPLIT": split}
    precision = {"PRECISION": "ieee" if dtype == "fp32" else "tf32"}
    meta = _compile(attention._canvas_attention_kernel, args, {**blocks, **precision})
    assert meta["shared"] <= 228 * 1024, "more shared memory than an H100 SM has"
    if split:
        combine = {
            "part_ptr": "*fp32", "lse_ptr": "*fp32", "out_ptr": f"*{dtype}",
            **_ints("n_rows", "n_heads", "n_canvas", "n_splits", "so_b", "so_h", "so_c"),
        }  # fmt: skip
        _compile(attention._combine_splits_kernel, combine, {"HEAD_DIM": 128, "BLOCK_R": 16})
