"""Step-level batching on one dedicated model thread: requests join at the next step and leave when done or called off.

The thread loads the model, then loops: start newcomers (`InfillEngine.start`), run one batched step over every
active job (`InfillEngine.step`), hand finished results back to the event loop. Only that thread touches the
model (torch is imported there too, after the server has bound its port); the loop only queues and cancels.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mercury_lsp.engine.metrics import EngineMetrics

if TYPE_CHECKING:
    from mercury_lsp.engine.api.infill import InfillRequest
    from mercury_lsp.engine.infill import Job

# Called on the event loop with each candidate's settled text (committed from the left), when it grew.
ProgressListener = Callable[[list[str]], None]

log = logging.getLogger(__name__)

IDLE_RETURN_S = 2.0  # seconds without requests after which the memory of a burst goes back to the system
TRIM_EVERY_S = 30.0  # under steady load, free C heap pages go back this often (a trim takes milliseconds)
# ...and whenever a request ends, at most this often: what it freed goes back before the next keystroke's request
# (which faults in the pages it needs again: a few ms; bench/RESULTS.md). Not only when the last one in flight ends:
# with several clients the engine seldom drains, and the heap kept the peak of their batches between 30 s trims.
TRIM_AFTER_REQUEST_S = 1.0


class QueueFull(Exception):
    """The waiting queue is at its bound; the client should retry later."""


class NotReady(Exception):
    """The model is loading, failed to load, or the engine is shutting down; the message says which."""


class Cancelled(Exception):
    """The request was called off (cancel message, disconnect or deadline) before it finished."""


class EngineFailure(Exception):
    """The engine failed on a request for a reason that is not the request's fault."""


@dataclass
class Ticket:
    """One HTTP request's place in the batcher; its future resolves to the engine's InfillResult."""

    request: InfillRequest
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_progress: ProgressListener | None = None
    settled: list[str] = field(default_factory=list)  # what on_progress was last told
    received: float = field(default_factory=time.perf_counter)
    jobs: list[Job] = field(default_factory=list)
    cancelled: str | None = None  # the reason, once called off
    replied: bool = False  # an answer is on its way to the event loop


def _settle(future: asyncio.Future, value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Batcher:
    """Owns the model and the only thread that touches it."""

    def __init__(self, model: str | Path, device: str, metrics: EngineMetrics, max_batch: int = 16,
                 max_queue: int = 64, threads: int = 0, engine_options: dict[str, Any] | None = None,
                 loaded: Any = None) -> None:
        self.model = str(model)  # a folder, a catalogue short name or a hub id (engine/model_source.py)
        self.device = device
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.threads = threads
        self.engine_options = engine_options or {}  # EngineSettings fields (cuda_graphs, confidence, ...)
        self._loaded = loaded  # a LoadedModel built in memory (benchmarks), instead of reading `model`
        self.state = "loading"  # then "warming" (CUDA graph capture), "ok", or "error"
        self.message: str | None = None
        self.model_name = Path(self.model).name if Path(self.model).is_absolute() else self.model
        self.commit: str | None = None  # the hub commit the model came from
        self.folder: Path | None = None  # the model's folder on disk, once resolved (a hub id's snapshot)
        self.progress: float | None = None  # fraction of a download done
        self.device_name = device
        self.dtype_name: str | None = None  # known once the model has loaded
        self.context_tokens: int | None = None
        self.last_activity = time.monotonic()
        self._engine: Any = None
        self._waiting: deque[Ticket] = deque()
        self._active: list[Ticket] = []
        self._by_client_id: dict[str, Ticket] = {}
        self._to_release: list[Ticket] = []  # cancelled on the event loop; their slots are freed on the model thread
        self._calls: deque[tuple[Callable[[Any], Any], asyncio.AbstractEventLoop, asyncio.Future]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mercury-model", daemon=True)
        self.memory_returns = 0  # idle periods after which memory went back to the system
        self._trimmed_at = time.monotonic()

    # -- event-loop side ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def thread_alive(self) -> bool:
        """The model thread is still running: stop() timed out (a load or a step in native code)."""
        return self._thread.is_alive()

    @property
    def busy(self) -> bool:
        return bool(self._waiting or self._active or self._calls)

    def submit(self, request: InfillRequest, on_progress: ProgressListener | None = None) -> Ticket:
        """Queue a request (its fields already checked); its future resolves to an InfillResult.
        Raises NotReady or QueueFull."""
        if self.state != "ok":
            raise NotReady(self.message or "The model is still loading.")
        loop = asyncio.get_running_loop()
        ticket = Ticket(request, loop, loop.create_future(), on_progress)
        client_id = request.id
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"The engine queue is full ({self.max_queue} requests waiting).")
            if client_id is not None:
                self._by_client_id[client_id] = ticket
            self._waiting.append(ticket)
            self.last_activity = time.monotonic()
            self.metrics.set_load(len(self._waiting), len(self._active))
            self._cond.notify()
        return ticket

    def call(self, work: Callable[[Any], Any]) -> asyncio.Future:
        """Run `work(engine)` on the model thread between two steps (a whole next-edit proposal); the future
        resolves to what it returns. Raises NotReady or QueueFull."""
        if self.state != "ok":
            raise NotReady(self.message or "The model is still loading.")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            if len(self._waiting) + len(self._calls) >= self.max_queue:
                raise QueueFull(f"The engine queue is full ({self.max_queue} requests waiting).")
            self._calls.append((work, loop, future))
            self.last_activity = time.monotonic()
            self._cond.notify()
        return future

    def cancel(self, ticket: Ticket, reason: str) -> bool:
        """Call a request off; its jobs leave before the next step. False when it had already finished."""
        with self._cond:
            if ticket.cancelled or ticket.replied:
                return False
            ticket.cancelled = reason
            self._forget(ticket)
            # Out of the queue or batch now (the model thread steps a copy), so the next step runs without it.
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            if ticket in self._active:
                self._active.remove(ticket)
            self._to_release.append(ticket)
            self.metrics.set_load(len(self._waiting), len(self._active))
            self._cond.notify()
        self.metrics.count_cancellation(reason)
        cancelled = Cancelled(f"The request was cancelled ({reason}).")
        ticket.loop.call_soon_threadsafe(_settle, ticket.future, None, cancelled)
        return True

    def cancel_client_id(self, client_id: str) -> bool:
        """Cancel the request that carried this `id`; False when none is in flight."""
        with self._cond:
            ticket = self._by_client_id.get(client_id)
        return ticket is not None and self.cancel(ticket, "cancel")

    # -- model thread ------------------------------------------------------------------------------------------
    def _forget(self, ticket: Ticket) -> None:
        client_id = ticket.request.id
        if client_id is not None and self._by_client_id.get(client_id) is ticket:
            del self._by_client_id[client_id]

    def _load(self) -> bool:
        try:
            import torch

            from mercury_lsp.engine.allocator import configure_heap, trim_heap
            from mercury_lsp.engine.checkpoint import CheckpointError
            from mercury_lsp.engine.infill import EngineSettings, InfillEngine
            from mercury_lsp.engine.model_loading import load_model

            configure_heap()
            if self.threads:
                torch.set_num_threads(self.threads)
            started = time.perf_counter()
            settings = EngineSettings(max_batch=self.max_batch, **self.engine_options)
            if self._loaded is not None:
                loaded = self._loaded
            else:
                loaded, resolved = load_model(self.model, self.device, settings, self._downloading)
                self.commit, self.message, self.progress = resolved.commit, None, None
                self.folder = resolved.folder
            self._engine = InfillEngine(loaded, settings)
            self.model_name, self.device_name = loaded.name, str(loaded.device)
            self.state = "warming"
            self.metrics.set_model("warming", self.model_name, self.device_name)
            self._engine.warm_up(self._warming)
            self.metrics.set_captures(self._engine.canvas_step.captures)
            self.metrics.watch_memory(self._engine)
            self.message = self._engine.canvas_step.graph_error
        except CheckpointError as error:
            self._fail_load(str(error))
            return False
        except Exception as error:  # the process stays up to report it, whatever went wrong
            log.exception("model load failed")
            self._fail_load(f"The model could not be loaded ({type(error).__name__}: {error}).")
            return False
        self.dtype_name = str(loaded.dtype).removeprefix("torch.")
        self.context_tokens = loaded.model.config.max_position_embeddings
        self.state = "ok"
        self.metrics.set_model("ok", self.model_name, self.device_name)
        trim_heap()  # what loading freed (the checkpoint's read buffers); a first request waits the few ms it takes
        log.info("model %s loaded on %s in %.1f s", loaded.name, loaded.device, time.perf_counter() - started)
        return True

    def _downloading(self, text: str, fraction: float | None) -> None:
        self.progress = fraction
        self.message = f"Downloading {self.model_name}: {text}" + (f" ({fraction:.0%})." if fraction is not None else ".")

    def sampler(self) -> dict[str, Any] | None:
        """How the engine commits tokens (for /health), once loaded."""
        return self._engine.sampler_summary() if self._engine is not None else None

    def memory(self) -> dict[str, Any] | None:
        """What the engine holds and may hold (for /health), once loaded."""
        engine = self._engine
        if engine is None:
            return None
        context = engine.context
        return {
            "context_slots": {"slots": self.max_batch, "positions": context.capacity,
                              "mb_per_slot": round(context.slot_bytes / 2**20, 1),
                              "dtype": str(context.k[0].dtype).removeprefix("torch.")},
            "prefix_cache": {"mb": round(engine.prefix_cache.bytes / 2**20, 1),
                             "max_mb": round(engine.prefix_cache.max_bytes / 2**20, 1),
                             "chunks": len(engine.prefix_cache.entries)},
            "suffix_cache": {"mb": round(engine.suffix_cache.bytes / 2**20, 1),
                             "max_mb": round(engine.suffix_cache.max_bytes / 2**20, 1),
                             "entries": len(engine.suffix_cache.entries)},
            # Where requests' prefix keys/values came from: their slot, the chunk cache, or a forward.
            "prefix_tokens": {"in_slot": engine.prefix_cache.tokens_in_slot,
                              "from_cache": engine.prefix_cache.tokens_reused,
                              "computed": engine.prefix_cache.tokens_computed},
            "returned_after_bursts": self.memory_returns,
        }

    def _warming(self, done: int, total: int) -> None:
        self.message = f"Capturing CUDA graphs of the denoising step ({done}/{total})."

    @property
    def captures(self) -> int:
        """Step graphs captured at start-up (never later: a request does not trigger a capture)."""
        return self._engine.canvas_step.captures if self._engine is not None else 0

    def _fail_load(self, message: str) -> None:
        self.message = message
        self.state = "error"
        self.metrics.set_model("error", self.model_name, self.device_name)
        log.error("%s", message)

    def _run(self) -> None:
        self.metrics.set_model("loading", self.model_name, self.device_name)
        if not self._load():
            return
        from mercury_lsp.engine.allocator import return_idle_memory, trim_heap

        returned = True  # nothing to hand back before the first request
        while True:
            with self._cond:
                idle = self._wait_for_work(None if returned else IDLE_RETURN_S)
            if idle:  # a burst ended a while ago: hand its memory back
                return_idle_memory(self._engine.context)
                self._trimmed_at = time.monotonic()
                self.memory_returns += 1
                returned = True
                continue
            returned = False
            with self._cond:
                if self._stopping:
                    break
                newcomers = self._admit()
                called_off, self._to_release = self._to_release, []
                calls, self._calls = list(self._calls), deque()
            self._run_calls(calls)
            for ticket in called_off:
                self._engine.release(ticket.jobs)
            finished = 0
            try:
                for ticket in newcomers:
                    self._begin(ticket)
                finished = self._step()
            except Exception as error:  # the model thread must outlive any failure: fail what was in flight
                log.exception("batched step failed")
                failure = EngineFailure(f"The engine failed during a step ({type(error).__name__}).")
                with self._cond:
                    in_flight = list(self._active)
                for ticket in in_flight:
                    self._reply(ticket, error=failure)
            with self._cond:
                self.metrics.set_load(len(self._waiting), len(self._active))
                drained = not (self._waiting or self._active or self._calls)
            since_trim = time.monotonic() - self._trimmed_at
            if since_trim > TRIM_EVERY_S or ((finished or drained) and since_trim > TRIM_AFTER_REQUEST_S):
                trim_heap()
                self._trimmed_at = time.monotonic()
        for ticket in [*self._waiting, *self._active]:
            self._reply(ticket, error=NotReady("The engine is shutting down."))
        for _, loop, future in self._calls:
            loop.call_soon_threadsafe(_settle, future, None, NotReady("The engine is shutting down."))

    def _run_calls(self, calls: list) -> None:
        from mercury_lsp.engine.errors import InfillError

        for work, loop, future in calls:
            value, error = None, None
            try:
                value = work(self._engine)
            except InfillError as failure:
                error = failure
            except Exception as failure:  # the model thread outlives it; the caller hears why
                log.exception("engine call failed")
                error = EngineFailure(f"The engine failed on this request ({type(failure).__name__}).")
            self.last_activity = time.monotonic()
            try:
                loop.call_soon_threadsafe(_settle, future, value, error)
            except RuntimeError:  # the event loop closed meanwhile
                pass

    def _wait_for_work(self, timeout: float | None) -> bool:
        """Wait (lock held) for a request or a stop; True when `timeout` seconds passed without either."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopping and not self._waiting and not self._active and not self._calls:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return True
            self._cond.wait(left)
        return False

    def _admit(self) -> list[Ticket]:
        """Waiting requests that fit in the batch, first come first served (caller holds the lock).

        A request wider than the whole batch still runs, alone."""
        rows = sum(len(t.jobs) for t in self._active)
        admitted = []
        while self._waiting:
            wanted = self._waiting[0].request.n
            if rows and rows + wanted > self.max_batch:
                break
            admitted.append(self._waiting.popleft())
            rows += wanted
        return admitted

    def _begin(self, ticket: Ticket) -> None:
        from mercury_lsp.engine.infill import InfillError

        try:
            ticket.jobs = self._engine.start(ticket.request)
        except InfillError as error:
            self._reply(ticket, error=error)
            return
        except Exception as error:
            log.exception("engine failed to start a request")
            self._reply(ticket, error=EngineFailure(f"The engine failed on this request ({type(error).__name__})."))
            return
        with self._cond:
            if not ticket.cancelled:
                self._active.append(ticket)
                return
        self._engine.release(ticket.jobs)

    def _step(self) -> int:
        """One step of every request in flight; the number of requests it finished."""
        finished = 0
        with self._cond:
            active = list(self._active)  # cancel() may remove tickets while this step runs
        jobs = [job for ticket in active for job in ticket.jobs if not job.done]
        if jobs:
            started = time.perf_counter()
            self._engine.step(jobs)
            self.metrics.record_step(len(jobs), time.perf_counter() - started)
        for ticket in active:
            if ticket.cancelled:
                continue
            if all(job.done for job in ticket.jobs):
                self._finish(ticket)
                finished += 1
            elif ticket.on_progress is not None:
                self._report_progress(ticket)
        return finished

    def _report_progress(self, ticket: Ticket) -> None:
        settled = self._engine.settled(ticket.jobs)
        if settled != ticket.settled:
            ticket.settled = settled
            try:
                ticket.loop.call_soon_threadsafe(ticket.on_progress, settled)
            except RuntimeError:  # the event loop closed while this request was in flight
                pass

    def _finish(self, ticket: Ticket) -> None:
        result = self._engine.result(ticket.jobs, ticket.received)
        self.metrics.record_finished(sum(c.tokens for c in result.completions), time.perf_counter() - ticket.received,
                                     result.tokens, result.steps)
        self._reply(ticket, value=result)

    def _reply(self, ticket: Ticket, value: Any = None, error: BaseException | None = None) -> None:
        """Settle a request's future and free its slots (model thread)."""
        if ticket.jobs:
            self._engine.release(ticket.jobs)
        with self._cond:
            ticket.replied = True
            if ticket in self._active:
                self._active.remove(ticket)
            self._forget(ticket)
            self.last_activity = time.monotonic()
            self.metrics.set_load(len(self._waiting), len(self._active))
        try:
            ticket.loop.call_soon_threadsafe(_settle, ticket.future, value, error)
        except RuntimeError:  # the event loop closed while this request was in flight
            pass
