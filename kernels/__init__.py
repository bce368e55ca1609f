"""Triton kernels for the denoising step, each with a torch reference (installed as mercury_lsp.kernels)."""
