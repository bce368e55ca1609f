"""Triton kernels for the denoising step, each with a torch reference (installed as mercury_lsp.kernels).

Each op's dispatcher runs the Triton kernel for CUDA tensors when Triton is installed and the reference
otherwise; MERCURY_KERNELS=reference forces the references everywhere.
"""
