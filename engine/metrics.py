"""The engine's counters, gauges and histograms, kept and rendered by prometheus_client (one registry per engine)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

if TYPE_CHECKING:
    from mercury_lsp.engine.infill import InfillEngine

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
REQUEST_STEP_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
# Every name here is a classic one, so the output is the text format every Prometheus version reads; say so.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# The `_created` timestamp series double every counter and histogram and mean nothing to a scraper of one process.
prometheus_client.disable_created_metrics()


class TokenRate:
    """Tokens per second over a sliding window of recent finished requests (a gauge a dashboard reads as is)."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self.events: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, tokens: int, now: float) -> None:
        with self._lock:
            self.events.append((now, tokens))
            self._forget_before(now)  # here too: an engine nobody scrapes would keep every request's event

    def rate(self, now: float) -> float:
        with self._lock:
            self._forget_before(now)
            if not self.events:
                return 0.0
            span = max(now - self.events[0][0], 1.0)
            return sum(tokens for _, tokens in self.events) / span

    def _forget_before(self, now: float) -> None:
        while self.events and now - self.events[0][0] > self.window_s:
            self.events.popleft()


class EngineMetrics:
    """Everything /metrics reports; safe to update from the batcher thread and the event loop."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter("mercury_requests_total", "HTTP requests answered, by endpoint and status.",
                                ["endpoint", "status"], registry=registry)
        self.cancellations = Counter("mercury_cancellations_total",
                                     "Requests that left the batch before finishing, by reason.", ["reason"],
                                     registry=registry)
        self.tokens = Counter("mercury_generated_tokens_total", "Content tokens returned to clients.",
                              registry=registry)
        self.steps = Counter("mercury_steps_total", "Batched denoising steps run.", registry=registry)
        self.queue_depth = Gauge("mercury_queue_depth", "Requests waiting to join the batch.", registry=registry)
        self.active_requests = Gauge("mercury_active_requests", "Requests being denoised.", registry=registry)
        self.token_rate = TokenRate()
        tokens_per_second = Gauge("mercury_tokens_per_second", "Generated tokens per second over the last 30 s.",
                                  registry=registry)
        tokens_per_second.set_function(lambda: round(self.token_rate.rate(time.monotonic()), 3))
        self.batch_size = Histogram("mercury_batch_size", "Canvases per batched step.", buckets=BATCH_BUCKETS,
                                    registry=registry)
        self.step_seconds = Histogram("mercury_step_seconds", "Wall time of one batched step.",
                                      buckets=STEP_BUCKETS, registry=registry)
        # The point of a diffusion engine is many tokens per denoising step: steps per request, and the answers'
        # tokens beside them (tokens per step = answer tokens / the histogram's sum).
        self.request_steps = Histogram("mercury_request_steps", "Denoising steps a finished request took.",
                                       buckets=REQUEST_STEP_BUCKETS, registry=registry)
        self.answer_tokens = Counter("mercury_answer_tokens_total",
                                     "New tokens in finished requests' answers (first candidate).", registry=registry)
        tokens_per_step = Gauge("mercury_tokens_per_step", "Answer tokens per denoising step, over all requests.",
                                registry=registry)
        self._answer_tokens_seen = self._steps_seen = 0
        tokens_per_step.set_function(self._tokens_per_step)
        self.request_seconds = Histogram("mercury_request_seconds", "Latency of finished requests, queue included.",
                                         buckets=LATENCY_BUCKETS, registry=registry)
        self.model_info = Info("mercury_model", "The served model; state is loading, warming, ok or error.",
                               registry=registry)
        self.graph_captures = Gauge("mercury_cuda_graph_captures", "Step graphs captured (at start-up only).",
                                    registry=registry)
        # process_resident_memory_bytes and the other process_* series (Linux /proc; nothing elsewhere).
        prometheus_client.ProcessCollector(registry=registry)
        self.cache_bytes = Gauge("mercury_context_cache_bytes", "Bytes held by the context caches, by cache.",
                                 ["cache"], registry=registry)
        self.cache_limit = Gauge("mercury_context_cache_limit_bytes", "What each context cache may hold.",
                                 ["cache"], registry=registry)
        self.set_model("loading")

    def watch_memory(self, engine: InfillEngine) -> None:
        """Read the engine's cache sizes, and on CUDA its device memory, at every scrape."""
        for name, cache in (("prefix", engine.prefix_cache), ("suffix", engine.suffix_cache)):
            self.cache_bytes.labels(cache=name).set_function(lambda cache=cache: cache.bytes)
            self.cache_limit.labels(cache=name).set(cache.max_bytes)
        if engine.device.type != "cuda":
            return
        import torch

        device = engine.device
        allocated = Gauge("mercury_cuda_memory_allocated_bytes", "Device memory held by live tensors.",
                          registry=self.registry)
        allocated.set_function(lambda: torch.cuda.memory_allocated(device))
        reserved = Gauge("mercury_cuda_memory_reserved_bytes", "Device memory held by the caching allocator.",
                         registry=self.registry)
        reserved.set_function(lambda: torch.cuda.memory_reserved(device))

    def count_request(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()

    def count_cancellation(self, reason: str) -> None:
        self.cancellations.labels(reason=reason).inc()

    def record_step(self, batch: int, seconds: float) -> None:
        self.steps.inc()
        self.batch_size.observe(batch)
        self.step_seconds.observe(seconds)

    def record_finished(self, tokens: int, seconds: float, answer_tokens: int = 0, steps: int = 0) -> None:
        """A finished request: every candidate's tokens, and its answer's tokens against the steps it took."""
        self.tokens.inc(tokens)
        self.request_seconds.observe(seconds)
        self.token_rate.add(tokens, time.monotonic())
        if steps:
            self.request_steps.observe(steps)
            self.answer_tokens.inc(answer_tokens)
            self._answer_tokens_seen += answer_tokens  # the batcher thread's alone: the gauge only reads them
            self._steps_seen += steps

    def _tokens_per_step(self) -> float:
        return round(self._answer_tokens_seen / self._steps_seen, 4) if self._steps_seen else 0.0

    def set_load(self, queued: int, active: int) -> None:
        self.queue_depth.set(queued)
        self.active_requests.set(active)

    def set_captures(self, count: int) -> None:
        self.graph_captures.set(count)

    def set_model(self, state: str, name: str = "", device: str = "") -> None:
        self.model_info.info({"model": name, "device": device, "state": state})

    def render(self) -> bytes:
        """The Prometheus text exposition (version 0.0.4) of the current values."""
        return prometheus_client.generate_latest(self.registry)
