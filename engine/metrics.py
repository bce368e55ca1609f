"""The engine's counters, gauges and histograms, rendered in the Prometheus text format (version 0.0.4)."""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Histogram:
    """Cumulative buckets, sum and count of observed values."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            out.append(f'{name}_bucket{{le="{_number(bound)}"}} {running}')
        running += self.counts[-1]
        out.append(f'{name}_bucket{{le="+Inf"}} {running}')
        out.append(f"{name}_sum {_number(self.total)}")
        out.append(f"{name}_count {running}")
        return out


class TokenRate:
    """Tokens per second over a sliding window of recent finished requests."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self.events: deque[tuple[float, int]] = deque()

    def add(self, tokens: int, now: float) -> None:
        self.events.append((now, tokens))

    def rate(self, now: float) -> float:
        while self.events and now - self.events[0][0] > self.window_s:
            self.events.popleft()
        if not self.events:
            return 0.0
        span = max(now - self.events[0][0], 1.0)
        return sum(tokens for _, tokens in self.events) / span


class EngineMetrics:
    """Everything /metrics reports; safe to update from the batcher thread and the event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str], int] = {}
        self.cancellations: dict[str, int] = {}
        self.tokens_total = 0
        self.steps_total = 0
        self.queue_depth = 0
        self.active_requests = 0
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.step_seconds = Histogram(STEP_BUCKETS)
        self.request_seconds = Histogram(LATENCY_BUCKETS)
        self.token_rate = TokenRate()
        self.model_state = "loading"
        self.model_name = ""
        self.device = ""
        self.started = time.time()

    def count_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            key = (endpoint, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1

    def count_cancellation(self, reason: str) -> None:
        with self._lock:
            self.cancellations[reason] = self.cancellations.get(reason, 0) + 1

    def record_step(self, batch: int, seconds: float) -> None:
        with self._lock:
            self.steps_total += 1
            self.batch_size.observe(batch)
            self.step_seconds.observe(seconds)

    def record_finished(self, tokens: int, seconds: float) -> None:
        with self._lock:
            self.tokens_total += tokens
            self.request_seconds.observe(seconds)
            self.token_rate.add(tokens, time.monotonic())

    def set_load(self, queued: int, active: int) -> None:
        with self._lock:
            self.queue_depth, self.active_requests = queued, active

    def set_model(self, state: str, name: str = "", device: str = "") -> None:
        with self._lock:
            self.model_state, self.model_name, self.device = state, name, device

    def render(self) -> str:
        """The Prometheus text exposition of the current values."""
        with self._lock:
            lines: list[str] = []

            def family(name: str, kind: str, help_text: str, samples: list[str]) -> None:
                lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples])

            family("mercury_requests_total", "counter", "HTTP requests answered, by endpoint and status.", [
                f"mercury_requests_total{_labels((('endpoint', e), ('status', s)))} {n}"
                for (e, s), n in sorted(self.requests.items())
            ])
            family("mercury_cancellations_total", "counter",
                   "Requests that left the batch before finishing, by reason.", [
                       f"mercury_cancellations_total{_labels((('reason', r),))} {n}"
                       for r, n in sorted(self.cancellations.items())
                   ])
            family("mercury_generated_tokens_total", "counter", "Content tokens returned to clients.",
                   [f"mercury_generated_tokens_total {self.tokens_total}"])
            family("mercury_steps_total", "counter", "Batched denoising steps run.",
                   [f"mercury_steps_total {self.steps_total}"])
            family("mercury_queue_depth", "gauge", "Requests waiting to join the batch.",
                   [f"mercury_queue_depth {self.queue_depth}"])
            family("mercury_active_requests", "gauge", "Requests being denoised.",
                   [f"mercury_active_requests {self.active_requests}"])
            family("mercury_tokens_per_second", "gauge", "Generated tokens per second over the last 30 s.",
                   [f"mercury_tokens_per_second {_number(round(self.token_rate.rate(time.monotonic()), 3))}"])
            family("mercury_batch_size", "histogram", "Canvases per batched step.",
                   self.batch_size.lines("mercury_batch_size"))
            family("mercury_step_seconds", "histogram", "Wall time of one batched step.",
                   self.step_seconds.lines("mercury_step_seconds"))
            family("mercury_request_seconds", "histogram", "Latency of finished requests, queue included.",
                   self.request_seconds.lines("mercury_request_seconds"))
            family("mercury_model_info", "gauge", "The served model; state is loading, ok or error.", [
                f"mercury_model_info"
                f"{_labels((('model', self.model_name), ('device', self.device), ('state', self.model_state)))} 1"
            ])
            return "\n".join(lines) + "\n"
