"""From a --model value to a model in memory: find or download its folder, check that it fits, then load it."""

from __future__ import annotations

from mercury_lsp.engine.checkpoint import (
    LoadedModel,
    load_checkpoint,
    pick_device,
    pick_dtype,
    read_layout,
)
from mercury_lsp.engine.infill import EngineSettings
from mercury_lsp.engine.memory_check import check_memory, memory_need
from mercury_lsp.engine.model_source import ProgressListener, ResolvedModel, fetch, parse_model


def load_model(spec: str | None, device: str, settings: EngineSettings,
               progress: ProgressListener | None = None) -> tuple[LoadedModel, ResolvedModel]:
    """The loaded model and where it came from; CheckpointError (one sentence) for any problem on the way."""
    resolved = fetch(parse_model(spec), progress)
    layout = read_layout(resolved.folder)
    target = pick_device(device)
    dtype = pick_dtype(target)
    need = memory_need(layout.config, dtype, settings.max_batch, settings.max_context_tokens,
                       settings.context_cache_bytes(target))
    check_memory(need, target, dtype, settings.max_batch)
    loaded = load_checkpoint(resolved.folder, device=str(target), dtype=dtype, layout=layout)
    if resolved.source.repo_id is not None:
        loaded.name = resolved.source.repo_id  # a snapshot folder is named after its commit
    return loaded, resolved
