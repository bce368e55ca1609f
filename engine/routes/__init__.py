"""Every route the engine serves, one file per API surface: `native` (/health, /v1/infill, /v1/cancel, /v1/models,
/metrics), `openai` (/v1/completions, /v1/fim/completions), `ollama` (/api/*), `llama_cpp` (/infill). `plumbing`
holds what they share: reading bodies, queuing on the batcher, deadlines, cancellation, streaming, JSON errors."""
