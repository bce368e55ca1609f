"""One denoising step over any set of canvas slots, at static shapes: batch and canvas buckets, CUDA graphs.

A step reads every input from the slot tensors (`ContextSlots`, `CanvasSlots`) through one index tensor of
slots, runs the model over [lead + canvas] windows, commits tokens on the device and returns one status per row.
The shapes depend only on the (batch, canvas) bucket, so on CUDA each bucket's step is captured once as a graph
and replayed; a request never triggers a capture. Padding rows read the scratch slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from mercury_lsp.engine.commit_probe import CommitProbe
from mercury_lsp.engine.context_cache import ContextSlots
from mercury_lsp.engine.model import Transformer
from mercury_lsp.engine.sampler import CanvasSlots, SampledRow, VocabTables, denoise

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16)
CANVAS_BUCKETS = (8, 16, 32, 64, 128, 256)  # new tokens; a canvas has one position more for a healed token


def bucket(value: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds `value` (the largest when none does)."""
    for size in buckets:
        if size >= value:
            return size
    return buckets[-1]


def canvas_width(longest: int) -> int:
    """The static canvas width for canvases of up to `longest` positions: a bucket of new tokens plus the
    position a healed token takes (a 64-token request after `retur|` has 65 positions, and stays in bucket 64)."""
    return bucket(max(longest - 1, 1), CANVAS_BUCKETS) + 1


class CanvasStep:
    """Runs denoising steps for rows of slots; on CUDA by replaying graphs captured at start-up."""

    def __init__(self, model: Transformer, context: ContextSlots, canvases: CanvasSlots, tables: VocabTables,
                 max_batch: int, measure: str = "probability", graphs: bool = False,
                 pad_to_buckets: bool | None = None, probe: CommitProbe | None = None) -> None:
        self.model = model
        self.context = context
        self.canvases = canvases
        self.tables = tables
        self.measure = measure
        self.probe = probe
        self.batch_buckets = tuple(b for b in BATCH_BUCKETS if b < max_batch) + (max_batch,)
        self.graphs_wanted = graphs
        # Eager steps pad to the buckets only where shapes must be static (a GPU); on a CPU padding costs compute.
        self.pad_to_buckets = canvases.ids.is_cuda if pad_to_buckets is None else pad_to_buckets
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.captures = 0
        self.replays = 0
        self.graph_error: str | None = None
        self.host_reads = 0  # device-to-host reads of step results, for the tests that bound them

    # -- the step ------------------------------------------------------------------------------------------------
    def _logits(self, rows: torch.Tensor, width: int, span: int | None, slot_range: tuple[int, int] | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits [B, width, V] of the canvases in `rows`, each over its cached context; or, on an eager CPU step,
        (logits [M, V] of the positions still masked, those positions [B, width])."""
        context, canvases = self.context, self.canvases
        canvas = canvases.ids[rows, :width]
        has_lead = context.has_lead[rows]
        lead_first = torch.cat([context.lead[rows, None], canvas], dim=1)
        pad = torch.full_like(canvas[:, :1], self.tables.pad_id)
        # Rows without a lead (no prefix, or a model that predicts in place) start the window at the canvas.
        window = torch.where(has_lead[:, None], lead_first, torch.cat([canvas, pad], dim=1))
        shift = has_lead.long()
        offsets = torch.arange(width + 1, device=rows.device)
        positions = context.canvas_start[rows, None] - shift[:, None] + offsets
        window_len = canvases.length[rows] + shift
        if slot_range is not None:  # consecutive slots: read them as a view, no gather of the context
            past, past_rows = context.layers(*slot_range, span), None
        else:
            past, past_rows = context.layers(span=span), rows
        hidden, _ = self.model.forward_window(
            window, positions, past=past, past_len=context.length[rows], window_len=window_len, past_rows=past_rows,
        )
        # Canvas position i is read from window row i + shift, or the row before it for shifted models.
        read = (offsets[:width] + shift[:, None] - int(self.model.config.shifted)).clamp(min=0)
        picked = hidden.gather(1, read[:, :, None].expand(-1, -1, hidden.shape[-1]))
        if self.pad_to_buckets:
            return self.model.logits(picked).float(), None
        # Eager on a CPU: the head (the largest weight) only for positions still masked, the only ones whose
        # predictions are read; they stay packed, [M, V], rather than spread over [B, width, V] zeros.
        wanted = canvases.masked[rows, :width]
        return self.model.logits(picked[wanted]).float(), wanted

    def _step(self, rows: torch.Tensor, width: int, span: int | None = None,
              slot_range: tuple[int, int] | None = None, sampled: tuple[SampledRow, ...] = ()) -> torch.Tensor:
        logits, positions = self._logits(rows, width, span, slot_range)
        return denoise(self.canvases, self.tables, rows, logits, self.measure, sampled, self.probe, positions)

    def run(self, slots: list[int], longest: int, context_span: int,
            sampled: tuple[SampledRow, ...] = ()) -> list[int]:
        """One step for the canvases in `slots` (the longest `longest` positions, context at most
        `context_span` keys); returns their statuses. The only host read of the step."""
        width = canvas_width(longest)
        graph = self.graphs.get((bucket(len(slots), self.batch_buckets), width)) if not sampled else None
        if graph is not None:
            g, rows_buffer, status = graph
            rows_buffer.fill_(self.context.scratch)
            rows_buffer[: len(slots)].copy_(torch.tensor(slots), non_blocking=True)
            g.replay()
            self.replays += 1
        else:
            rows = torch.tensor(slots, device=self.canvases.ids.device)
            first = slots[0]
            consecutive = slots == list(range(first, first + len(slots)))
            slot_range = (first, first + len(slots)) if consecutive else None
            # Eager: attention over the keys some row holds rather than the whole capacity.
            status = self._step(rows, width if self.pad_to_buckets else longest, max(context_span, 1), slot_range,
                                sampled)
        self.host_reads += 1
        return status[: len(slots)].tolist()

    # -- CUDA graphs ---------------------------------------------------------------------------------------------
    def capture(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Capture every (batch, canvas) bucket's step; on any failure fall back to eager with a one-line reason."""
        if not (self.graphs_wanted and self.canvases.ids.is_cuda):
            return
        shapes = [(b, c + 1) for b in self.batch_buckets for c in CANVAS_BUCKETS]
        pool = torch.cuda.graph_pool_handle()
        started = time.perf_counter()
        try:
            for done, (batch, width) in enumerate(shapes):
                if progress is not None:
                    progress(done, len(shapes))
                rows = torch.full((batch,), self.context.scratch, dtype=torch.long, device=self.canvases.ids.device)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up: Triton compiles, the allocator settles
                    for _ in range(2):
                        self._step(rows, width)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    status = self._step(rows, width)
                self.graphs[(batch, width)] = (graph, rows, status)
                self.captures += 1
        except Exception as error:  # any capture problem: serve eagerly rather than not at all
            self.graphs.clear()
            self.graph_error = f"CUDA graph capture failed ({type(error).__name__}: {error}); steps run eagerly."
            log.warning("%s", self.graph_error)
            return
        if progress is not None:
            progress(len(shapes), len(shapes))
        log.info("captured %d step graphs in %.1f s", len(shapes), time.perf_counter() - started)
