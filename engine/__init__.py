"""The diffusion engine: model, loader, sampler, server (installed as mercury_lsp.engine)."""
