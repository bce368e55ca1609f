"""Infill requests end to end: context windows, healing, prefill into a slot, batched denoising steps, results.

`InfillEngine.start` turns a request into jobs (one per candidate, each in its own slot) and runs their first
step; `step` runs one batched step over any set of active jobs; `result` reads the texts back and `release`
frees the slots. `infill` does it all for a single request. The HTTP server's batcher drives
`start`/`step`/`result`/`release` itself to batch concurrent requests step by step.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from mercury_lsp.engine.api.infill import MAX_CANVAS, Completion, InfillRequest, parse_infill
from mercury_lsp.engine.checkpoint import LoadedModel
from mercury_lsp.engine.context_cache import ContextSlots, PrefixCache, SuffixCache
from mercury_lsp.engine.errors import InfillError
from mercury_lsp.engine.healing import encode_prefix, encode_suffix, heal_prefix
from mercury_lsp.engine.sampler import (
    DONE,
    HOST_WORK,
    MEASURES,
    CanvasSlots,
    CanvasSpec,
    SampledRow,
    VocabTables,
    denoise,
    expand_and_delete,
    reset_slot,
    slot_completion,
    start_refinement,
)
from mercury_lsp.engine.step import CanvasStep

CUT_GRID = 4096  # characters
DEFAULT_THRESHOLD = 0.9  # Fast-dLLM's default, for checkpoints that carry no calibrated one
COMMIT_RULES = ("probe", "threshold")
CONTEXT_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def stable_cut(prefix: str, keep: int) -> int:
    """Where to cut a prefix longer than `keep` characters: at a line start on a coarse grid measured from the
    prefix's own start, so the cut (and with it the tokens after it) stays put while the user types."""
    if len(prefix) <= keep:
        return 0
    grid = max(1, min(CUT_GRID, keep // 2))  # keeps at least half of `keep`
    cut = math.ceil((len(prefix) - keep) / grid) * grid
    line_start = prefix.find("\n", cut) + 1
    return line_start if 0 < line_start < len(prefix) else cut


@dataclass
class EngineSettings:
    max_batch: int = 16  # canvases stepped together: the slots of the context cache
    max_prefix_tokens: int = 3072
    max_suffix_tokens: int = 1024
    max_extra_tokens: int = 1024
    max_context_tokens: int = 4096  # header + extra context + prefix + suffix: the cache's capacity per slot
    chunk_size: int = 64  # prefix chunk for exact key/value reuse across requests
    # Bytes the prefix-chunk and suffix caches may hold together (None: 24 MB on a CPU, 1 GB on a GPU), half each.
    # The next keystroke's prefix chunks are still in its slot (ContextSlots.resident): the prefix cache serves
    # other places and clients.
    context_cache_mb: float | None = None
    # What the context slots and caches keep keys/values in on a CPU ("float32", "bfloat16", "float16"; None: the
    # weights' dtype). Attention still runs in float32 on a CPU.
    context_dtype: str | None = None
    refresh_every: int = 0  # recompute tail/suffix keys/values every N steps (0 = only when the canvas changes length)
    reuse_suffix: bool = True  # first steps reuse the previous keystroke's suffix keys/values (SuffixCache)
    heal_suffix: bool = True  # a cursor inside a word: the suffix tokenizes after the word (encode_suffix)
    # Exact bidirectional attention, as the model was trained: no prefix chunks, every step recomputes the whole
    # window (several times slower; the reference the caches are measured against).
    exact_context: bool = False
    expand_initial: int = 8  # starting canvas length in expand/delete mode
    candidate_temperature: float = 0.8  # for candidates after the first when the request is greedy
    # Commit threshold when a request names none (None: the checkpoint's calibrated `mercury_threshold`, else 0.9).
    threshold: float | None = None
    # What a position needs to join the filler run at the canvas end (capped by the threshold; None: the
    # threshold). Lower ends a short answer in a wide canvas in fewer steps (bench/RESULTS.md).
    filler_threshold: float | None = 0.7
    # Length first: filler at the canvas end is committed where the answer has ended with this probability
    # (sampler.filler_tail). None restores the rule before it (filler only grows from the right edge).
    tail_threshold: float | None = 0.9
    # "probe": commit the answer's tokens by the learned probe shipped with the checkpoint (engine/commit_probe),
    # where the request and these settings name no threshold; "threshold": by their probability, as before.
    commit_rule: str = "probe"
    confidence: str = "probability"  # the measure thresholds apply to: probability, margin or entropy
    cuda_graphs: bool = True  # capture each bucket's step on CUDA (warm_up)

    def context_cache_bytes(self, device: torch.device) -> int:
        """The byte bound of the prefix-chunk and suffix caches on this device."""
        mb = self.context_cache_mb if self.context_cache_mb is not None else 24 if device.type == "cpu" else 1024
        return int(mb * 2**20)


@dataclass
class ContextTokens:
    """What the model is fed around the canvas: [extra context, header, prefix] before it, the suffix after."""

    prefix_ids: list[int]  # all tokens before the canvas (after healing: without the healed tail)
    held: bytes  # prefix bytes held back for healing
    suffix_ids: list[int]
    suffix_held: bytes  # the cursor's word's rest, held back from the suffix: the canvas writes it
    header_tokens: int
    extra_tokens: int


@dataclass(eq=False)  # identity: jobs are compared as objects
class Job:
    """One candidate of a request, in its own slot."""

    slot: int
    request_id: int
    context: ContextTokens
    chunk_len: int  # leading prefix tokens encoded in cached chunks
    lead: int | None  # last prefix token, recomputed with the canvas for shifted models
    spec: CanvasSpec
    sampled: SampledRow | None  # temperature > 0: drawn with its own generator
    length: int  # canvas length (host mirror of the slot's)
    expansions_left: int
    stale: bool = True  # context keys/values to (re)compute with the canvas: first step, length change, refinement
    steps_since_refresh: int = 0
    done: bool = False
    released: bool = False
    steps_done: int = field(default=0)

    @property
    def prefix_ids(self) -> list[int]:
        return self.context.prefix_ids

    @property
    def suffix_ids(self) -> list[int]:
        return self.context.suffix_ids


@dataclass
class InfillResult:
    """Every candidate's completion (the first is the answer), the steps taken and the context fed."""

    completions: list[Completion]
    steps: int
    ms: float
    prefix_tokens: int = 0
    suffix_tokens: int = 0
    header_tokens: int = 0
    extra_tokens: int = 0

    @property
    def text(self) -> str:
        return self.completions[0].text

    @property
    def tokens(self) -> int:
        return self.completions[0].tokens

    @property
    def candidates(self) -> list[str]:
        """The distinct candidate texts, in order."""
        return list(dict.fromkeys(c.text for c in self.completions))


class InfillEngine:
    def __init__(self, loaded: LoadedModel, settings: EngineSettings | None = None):
        self.model = loaded.model
        self.vocab = loaded.vocab
        self.device = loaded.device
        self.settings = settings or EngineSettings()
        s = self.settings
        if s.confidence not in MEASURES:
            raise InfillError(f"confidence measure must be one of {', '.join(MEASURES)}, not {s.confidence!r}.")
        if s.commit_rule not in COMMIT_RULES:
            raise InfillError(f"commit rule must be one of {', '.join(COMMIT_RULES)}, not {s.commit_rule!r}.")
        config = self.model.config
        self.context_capacity = min(config.max_position_embeddings, s.max_context_tokens)
        dtype = self._context_dtype()
        self.context = ContextSlots(config, s.max_batch, self.context_capacity, dtype, self.device)
        # Room for MAX_CANVAS new tokens and the healed token.
        self.canvases = CanvasSlots.allocate(s.max_batch + 1, MAX_CANVAS + 1, config.vocab_size, self.device)
        self.tables = VocabTables(self.vocab, config.vocab_size, self.device)
        cache_bytes = s.context_cache_bytes(self.device)
        self.prefix_cache = PrefixCache(self.model, self.context, s.chunk_size, cache_bytes // 2)
        self.suffix_cache = SuffixCache(cache_bytes // 2, dtype)
        # The probe in use: none under the threshold rule or an engine-wide threshold, so no step computes its
        # features for nothing.
        self.probe = loaded.commit_probe if s.commit_rule == "probe" and s.threshold is None else None
        self.canvas_step = CanvasStep(self.model, self.context, self.canvases, self.tables, s.max_batch,
                                      s.confidence, graphs=s.cuda_graphs, probe=self.probe)
        self._free_slots = list(range(s.max_batch))
        self._next_request = 0

    def _context_dtype(self) -> torch.dtype:
        """What the context slots and caches hold keys/values in: the weights' dtype unless settings name one.
        bfloat16 on a float32 CPU halves the slots and caches (the same answers on the bundled model's 300
        held-out holes) but is not the default: under three clients its float32 reads in every step took back
        what the slots saved, at 1-7% more CPU (bench/RESULTS.md, issue 21). A GPU keeps the weights' dtype: the
        Triton attention reads the context and the window's keys in one."""
        s, weights = self.settings, self.model.embed_tokens.weight.dtype
        if s.context_dtype is None:
            return weights
        dtype = CONTEXT_DTYPES.get(s.context_dtype)
        if dtype is None:
            raise InfillError(f"context dtype must be one of {', '.join(CONTEXT_DTYPES)}, not {s.context_dtype!r}.")
        if self.device.type != "cpu" and dtype != weights:
            raise InfillError("a context dtype other than the weights' is for a CPU; on a GPU it follows the weights.")
        return dtype

    @property
    def default_threshold(self) -> float:
        """The commit threshold of a request that names none."""
        if self.settings.threshold is not None:
            return self.settings.threshold
        calibrated = self.model.config.commit_threshold
        return DEFAULT_THRESHOLD if calibrated is None else calibrated

    def _probe_decides(self, request: InfillRequest) -> bool:
        """Whether the learned probe commits this request's tokens: the checkpoint ships one, the rule is on and
        no threshold was named (a named threshold is a request for the threshold rule)."""
        return self.probe is not None and request.threshold is None

    def sampler_summary(self) -> dict[str, object]:
        """How requests that name no threshold are committed (for /health): the rule, its threshold, length first."""
        s = self.settings
        summary: dict[str, object] = {
            "commit_rule": "probe" if self.probe is not None else "threshold",
            "threshold": s.threshold if s.threshold is not None else self.default_threshold,
            "tail_threshold": s.tail_threshold, "confidence": s.confidence,
        }
        if self.probe is not None:
            summary["probe_threshold"] = round(self.probe.threshold, 4)
        return summary

    @property
    def slots_in_use(self) -> int:
        return self.settings.max_batch - len(self._free_slots)

    @torch.inference_mode()
    def warm_up(self, progress=None) -> None:
        """Capture the step graphs (CUDA only); `progress(done, total)` follows the captures."""
        self.canvas_step.capture(progress)

    # -- context -----------------------------------------------------------------------------------------------
    def tokenize_context(self, request: InfillRequest, canvas_tokens: int) -> ContextTokens:
        """Token windows within the budgets and the model's positions: the header whole, then the suffix, the
        extra context and the code prefix trimmed to fit (cut by characters first: files can be huge).

        A small model trained on short windows must not see positions it never learned, so the budgets shrink
        to its positions; the code body shrinks first, the header never."""
        s = self.settings
        room = min(self.model.config.max_position_embeddings - canvas_tokens - 1, self.context_capacity)
        header_ids = self.vocab.encode(request.header) if request.header else []
        room -= len(header_ids)
        if room < 1:
            raise InfillError(
                f"max_tokens {canvas_tokens - 1} and the header leave no room for context in this model's "
                f"{self.model.config.max_position_embeddings} positions."
            )
        suffix_budget = min(s.max_suffix_tokens, room // 4 if room < s.max_prefix_tokens + s.max_suffix_tokens else room)
        suffix = request.suffix[: suffix_budget * 16]  # a token is rarely longer than 16 characters
        word = request.prefix if s.heal_suffix else ""
        suffix_ids, suffix_held = encode_suffix(self.vocab, suffix, word) if suffix_budget else ([], b"")
        suffix_ids = suffix_ids[:suffix_budget]
        extra_budget = min(s.max_extra_tokens, (room - len(suffix_ids)) // 3)
        extra = request.extra_context[-extra_budget * 16 :] if extra_budget > 0 else ""
        extra_ids = self.vocab.encode(extra)[-extra_budget:] if extra else []
        prefix_budget = min(s.max_prefix_tokens, room - len(suffix_ids) - len(extra_ids))
        prefix = request.prefix[stable_cut(request.prefix, prefix_budget * 16) :]
        prefix_ids, held = encode_prefix(self.vocab, prefix) if prefix_budget > 0 else ([], b"")
        if len(prefix_ids) > prefix_budget:
            # Drop whole chunks from the left, so the chunks that stay are the ones the cache holds (unless the
            # budget is so small that a chunk would be a large share of it).
            chunk = s.chunk_size if prefix_budget >= 4 * s.chunk_size else 1
            prefix_ids = prefix_ids[math.ceil((len(prefix_ids) - prefix_budget) / chunk) * chunk :]
        return ContextTokens(extra_ids + header_ids + prefix_ids, held, suffix_ids, suffix_held, len(header_ids),
                             len(extra_ids))

    # -- requests ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def start(self, request: InfillRequest) -> list[Job]:
        """Tokenize, heal, encode the context into the candidates' slots and run their first step."""
        parse_infill(dataclasses.asdict(request))  # callers other than the HTTP boundary get the same checks
        if request.n > len(self._free_slots):
            raise InfillError(f"n {request.n} is more than the {len(self._free_slots)} free canvas slots.")
        mode = request.length_mode
        if mode == "auto":
            mode = "expand" if self.vocab.expand_id is not None else "filler"
        if mode == "expand" and self.vocab.expand_id is None:
            raise InfillError("length_mode expand needs a checkpoint with an expand token.")
        context = self.tokenize_context(request, request.max_tokens + 1)
        healed = heal_prefix(self.vocab, context.prefix_ids, context.held)
        context.prefix_ids = healed.ids
        # The healed token replaces one the user typed: it does not count against max_tokens.
        max_length = request.max_tokens + (1 if healed.heal else 0)
        length = min(self.settings.expand_initial, max_length) if mode == "expand" else max_length
        steps = request.steps or max(1, math.ceil(max_length / 2))
        threshold = request.threshold if request.threshold is not None else self.default_threshold
        spec = CanvasSpec(length, max_length, mode, float(threshold), steps, request.single_line, healed.heal,
                          healed.first_allowed, request.refine, context.suffix_held, self.settings.filler_threshold,
                          self.settings.tail_threshold, self._probe_decides(request))
        request_id = self._next_request
        self._next_request += 1
        chunk_len = 0 if self.settings.exact_context else self.prefix_cache.full_chunk_length(len(healed.ids))
        slots = self._take_slots(request.n, healed.ids[:chunk_len])
        try:
            return self._start_in(slots, chunk_len, request_id, context, healed, spec, request)
        except BaseException:
            self._free_slots = sorted(self._free_slots + slots)
            raise

    def _take_slots(self, n: int, chunk_ids: list[int]) -> list[int]:
        """n free slots: first the one still holding the longest run of the request's leading chunks (a client's
        own last request, where several share the engine), else the lowest; the lowest for the other candidates
        (a batch of consecutive slots is read as a view)."""
        first = max(self._free_slots, key=lambda slot: (self.prefix_cache.held_run(slot, chunk_ids), -slot))
        self._free_slots.remove(first)
        return [first] + [self._free_slots.pop(0) for _ in range(n - 1)]

    def _start_in(self, slots: list[int], chunk_len: int, request_id: int, context: ContextTokens, healed,
                  spec: CanvasSpec, request: InfillRequest) -> list[Job]:
        mode, length, max_length = spec.mode, spec.length, spec.max_length
        self.prefix_cache.encode_into(healed.ids[:chunk_len], slots[0])  # none: the slot forgets what it held
        lead = healed.ids[-1] if (self.model.config.shifted and healed.ids) else None
        jobs = []
        for i, slot in enumerate(slots):
            if i and chunk_len:
                self.context.copy_slot(slots[0], slot, chunk_len)
            temperature = request.temperature or (self.settings.candidate_temperature if i else 0.0)
            sampled = None
            if temperature > 0:
                generator = torch.Generator(device=self.device)
                generator.manual_seed((request.seed + i) % 2**64)
                sampled = SampledRow(len(jobs), temperature, generator)
            reset_slot(self.canvases, self.tables, self.vocab, slot, spec)
            self.context.set_window(slot, chunk_len, len(healed.ids), lead)
            expansions = max_length - length if mode == "expand" else 0
            jobs.append(Job(slot, request_id, context, chunk_len, lead, spec, sampled, length, expansions))
        self._refresh_and_step(jobs)
        return jobs

    @torch.inference_mode()
    def step(self, jobs: list[Job]) -> None:
        """One denoising step for every unfinished job: one batched forward over their canvases."""
        active = [j for j in jobs if not j.done]
        every = self.settings.refresh_every
        exact = self.settings.exact_context
        stale = [j for j in active if exact or j.stale or (every and j.steps_since_refresh >= every)]
        if stale:
            self._refresh_and_step(stale)
        fresh = [j for j in active if j not in stale]
        if not fresh:
            return
        sampled = tuple(
            dataclasses.replace(j.sampled, index=i, length=j.length) for i, j in enumerate(fresh) if j.sampled
        )
        statuses = self.canvas_step.run(
            [j.slot for j in fresh], max(j.length for j in fresh),
            max(self._context_length(j) for j in fresh), sampled,
        )
        self._after_step(fresh, statuses)

    def settled(self, jobs: list[Job]) -> list[str]:
        """Each candidate's text as far as its canvas is committed from the left (for streaming)."""
        return [self._completion(j, settled_only=True).text for j in jobs]

    def result(self, jobs: list[Job], started: float) -> InfillResult:
        context = jobs[0].context
        return InfillResult(
            completions=[self._completion(j) for j in jobs],
            steps=jobs[0].steps_done,
            ms=(time.perf_counter() - started) * 1000,
            prefix_tokens=len(context.prefix_ids) - context.header_tokens - context.extra_tokens,
            suffix_tokens=len(context.suffix_ids),
            header_tokens=context.header_tokens,
            extra_tokens=context.extra_tokens,
        )

    def release(self, jobs: list[Job]) -> None:
        """Give the jobs' slots back (finished, cancelled or failed); a job released twice is released once."""
        for job in jobs:
            if not job.released:
                job.released = True
                self._free_slots.append(job.slot)
                # Its keys are dead now; pages past them held a longer context earlier (kept: no refaults at the
                # next keystroke's length).
                self.context.trim_slot(job.slot, self._context_length(job))
        self._free_slots.sort()  # lowest first: a lone request gets slot 0, read as a view

    def infill(self, request: InfillRequest) -> InfillResult:
        """Serve one request on its own."""
        started = time.perf_counter()
        jobs = self.start(request)
        try:
            while not all(j.done for j in jobs):
                self.step(jobs)
            return self.result(jobs, started)
        finally:
            self.release(jobs)

    # -- internals -------------------------------------------------------------------------------------------
    def _completion(self, job: Job, settled_only: bool = False) -> Completion:
        spec = job.spec
        return slot_completion(self.vocab, self.canvases, job.slot, spec, settled_only)

    @staticmethod
    def _context_length(job: Job) -> int:
        """Keys in the slot: the prefix without the lead (recomputed with the canvas), then the suffix."""
        return len(job.prefix_ids) - (1 if job.lead is not None else 0) + len(job.suffix_ids)

    def _after_step(self, jobs: list[Job], statuses: list[int]) -> None:
        for job, status in zip(jobs, statuses):
            job.steps_done += 1
            job.steps_since_refresh += 1
            if status == DONE:
                job.done = True
            elif status == HOST_WORK:
                self._host_work(job)

    def _host_work(self, job: Job) -> None:
        """Length changes (expand/delete) and the start of refinement, then whether the canvas is done."""
        slots, slot = self.canvases, job.slot
        if job.spec.mode == "expand":
            length, job.expansions_left = expand_and_delete(
                slots, self.tables, slot, job.expansions_left, job.spec.max_length
            )
            if length != job.length or bool(slots.masked[slot, :length].any()):
                job.stale = True
            job.length = length
        if bool(slots.masked[slot, : job.length].any()):
            return
        if bool(slots.refine_pending[slot]) and start_refinement(slots, self.tables, slot):
            job.stale = True
            return
        job.done = True

    def _refresh_and_step(self, jobs: list[Job]) -> None:
        """Recompute tail + canvas + suffix over the prefix chunks into each job's slot, and commit from the same
        forward (no work is wasted on the refresh)."""
        width = max(j.length for j in jobs)
        rows = torch.tensor([j.slot for j in jobs], device=self.device)
        positions = self.canvases.masked[rows, :width]
        parts = []  # each row's logits at its masked positions only: what denoise reads (packed)
        done: dict[tuple, tuple[torch.Tensor, Job]] = {}
        for b, job in enumerate(jobs):
            canvas = tuple(self.canvases.ids[job.slot, : job.length].tolist())
            # Candidates of one request start from the same canvas: one forward serves them all.
            key = (job.request_id, canvas)
            if key in done:
                row_logits, source = done[key]
                self.context.copy_slot(source.slot, job.slot, self._context_length(source))
            else:
                row_logits = self._group_forward(job, list(canvas), positions[b, : job.length])
                done[key] = (row_logits, job)
            parts.append(row_logits)
            job.stale = False
            job.steps_since_refresh = 0
        sampled = tuple(
            dataclasses.replace(j.sampled, index=i, length=j.length) for i, j in enumerate(jobs) if j.sampled
        )
        status = denoise(self.canvases, self.tables, rows, torch.cat(parts).float(), self.settings.confidence, sampled,
                         self.canvas_step.probe, positions)
        self.canvas_step.host_reads += 1
        self._after_step(jobs, status.tolist())

    def _group_forward(self, job: Job, canvas: list[int], masked: torch.Tensor | None = None) -> torch.Tensor:
        """Forward of [prefix tail, canvas, suffix] over the slot's prefix chunks; keeps the tail and suffix keys
        and values in the slot and returns the canvas logits [C, V], or with `masked` [C] those of the masked
        positions only [M, V] (the head, the largest weight, runs for nothing else).

        On a first step whose suffix the previous keystroke computed, the suffix's keys/values are reused
        (rotated to their positions) and only [tail, canvas] runs."""
        chunk_len, device, slot = job.chunk_len, self.device, job.slot
        tail = job.prefix_ids[chunk_len:]
        start, length, suffix = len(job.prefix_ids), job.length, job.suffix_ids
        n_tail = len(tail)
        keep_tail = n_tail - (1 if job.lead is not None else 0)  # the lead is recomputed with the canvas
        first_step = job.steps_done == 0
        reuse = self.settings.reuse_suffix and not self.settings.exact_context
        reused = self.suffix_cache.get(suffix) if (first_step and suffix and reuse) else None
        if reused is not None:
            was_at, suffix_kv = reused
            for k, v, (cached_k, cached_v) in zip(self.context.k, self.context.v, suffix_kv):
                k[slot, :, chunk_len : chunk_len + len(suffix)] = self.model.rotate_keys(cached_k, start + length - was_at)
                v[slot, :, chunk_len : chunk_len + len(suffix)] = cached_v
            past_len = chunk_len + len(suffix)
            ids = torch.tensor([tail + canvas], device=device)
            positions = torch.arange(chunk_len, start + length, device=device)[None]
            past = self.context.layers(slot, slot + 1, past_len)
            hidden, kv = self.model.forward_window(ids, positions, past=past,
                                                   past_len=torch.tensor([past_len], device=device))
            self.context.write(slot, past_len, kv, 0, keep_tail)
        else:
            ids = torch.tensor([tail + canvas + suffix], device=device)
            positions = torch.arange(chunk_len, start + length + len(suffix), device=device)[None]
            past = self.context.layers(slot, slot + 1, chunk_len) if chunk_len else None
            past_len = torch.tensor([chunk_len], device=device) if chunk_len else None
            hidden, kv = self.model.forward_window(ids, positions, past=past, past_len=past_len)
            self.context.write(slot, chunk_len, kv, 0, keep_tail)
            self.context.write(slot, chunk_len + keep_tail, kv, n_tail + length, n_tail + length + len(suffix))
            if first_step and suffix and reuse:
                at = n_tail + length
                self.suffix_cache.put(suffix, start + length,
                                      [(k[0, :, at : at + len(suffix)], v[0, :, at : at + len(suffix)]) for k, v in kv])
        self.context.set_window(slot, self._context_length(job), start, job.lead)
        read = torch.arange(length, device=device) + n_tail
        if self.model.config.shifted:
            read = (read - 1).clamp(min=0)  # no prefix at all: position 0 reads its own output (Dream)
        return self.model.logits(hidden[0, read if masked is None else read[masked]])
