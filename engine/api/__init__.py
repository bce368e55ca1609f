"""The HTTP contracts the engine serves, one module per API surface (pure Python: the language server imports them
without torch)."""
