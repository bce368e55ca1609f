"""mercury-lsp: a code-completion language server backed by a diffusion language model."""

__version__ = "0.1.0"
