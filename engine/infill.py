"""Infill requests end to end: context windows, healing, prefill, batched denoising steps, results.

`InfillEngine.start` turns a request into jobs (one per candidate) with their context keys/values; `step` runs one
batched forward over any set of active jobs and commits tokens; `infill` does both for a single request. The HTTP
server drives `start`/`step` itself to batch concurrent requests step by step.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field

import torch

from mercury_lsp.engine.checkpoint import LoadedModel
from mercury_lsp.engine.context_cache import PrefixCache, concat_kv, slice_kv
from mercury_lsp.engine.errors import InfillError
from mercury_lsp.engine.healing import encode_prefix, heal_prefix
from mercury_lsp.engine.model import LayerKV
from mercury_lsp.engine.sampler import Canvas, canvas_completion, denoise_step, new_canvas
from mercury_lsp.infill_api import Completion, InfillRequest, parse_infill

CUT_GRID = 4096  # characters


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
    max_canvas: int = 256
    max_prefix_tokens: int = 3072
    max_suffix_tokens: int = 1024
    chunk_size: int = 64  # prefix chunk for exact key/value reuse across requests
    prefix_cache_entries: int = 8
    refresh_every: int = 0  # recompute tail/suffix keys/values every N steps (0 = only when the canvas changes length)
    expand_initial: int = 8  # starting canvas length in expand/delete mode
    threshold: float = 0.9  # commit threshold when a request names none
    candidate_temperature: float = 0.8  # for candidates after the first when the request is greedy


_job_ids = itertools.count()


@dataclass(eq=False)  # identity: jobs are compared as objects, never by their tensors
class Job:
    """One candidate of a request: its canvas and the context it attends to."""

    canvas: Canvas
    request_id: int
    prefix_ids: list[int]  # context prefix after healing
    suffix_ids: list[int]
    chunk_kv: list[LayerKV]  # keys/values of the chunk-aligned head of the prefix (shared, exact)
    context_kv: list[LayerKV] = field(default_factory=list)  # chunks + tail (minus lead) + suffix
    lead: int | None = None  # last prefix token, recomputed with the canvas for shifted models
    steps_since_refresh: int = 0
    uid: int = field(default_factory=lambda: next(_job_ids))
    context_version: int = 0  # bumped whenever context_kv is replaced

    @property
    def done(self) -> bool:
        return self.canvas.done


@dataclass
class InfillResult:
    """Every candidate's completion (the first is the answer), the steps taken and the context fed."""

    completions: list[Completion]
    steps: int
    ms: float
    prefix_tokens: int = 0
    suffix_tokens: int = 0

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
        self.loaded = loaded
        self.model = loaded.model
        self.vocab = loaded.vocab
        self.settings = settings or EngineSettings()
        self.prefix_cache = PrefixCache(self.model, self.settings.chunk_size, self.settings.prefix_cache_entries)
        self.device = loaded.device
        self._next_request = 0
        self._padded_context: tuple[tuple, list[LayerKV], torch.Tensor] | None = None

    # -- context -----------------------------------------------------------------------------------------------
    def tokenize_context(self, prefix: str, suffix: str, canvas_tokens: int) -> tuple[list[int], bytes, list[int]]:
        """Token windows of prefix and suffix within the budgets (cut by characters first: files can be huge), and
        the prefix bytes `encode_prefix` held back for healing.

        The budgets shrink to fit the model's trained positions: a small model trained on short windows must not
        see positions it never learned.
        """
        s = self.settings
        room = self.model.config.max_position_embeddings - canvas_tokens - 1
        if room < 1:
            raise InfillError(
                f"max_tokens {canvas_tokens} leaves no room for context in this model's "
                f"{self.model.config.max_position_embeddings} positions."
            )
        suffix_budget = min(s.max_suffix_tokens, room // 4 if room < s.max_prefix_tokens + s.max_suffix_tokens else room)
        prefix_budget = min(s.max_prefix_tokens, room - suffix_budget)
        # A token is rarely longer than 16 characters, so this keeps enough text for the token budget.
        prefix = prefix[stable_cut(prefix, prefix_budget * 16) :]
        suffix = suffix[: suffix_budget * 16]
        prefix_ids, held = encode_prefix(self.vocab, prefix) if prefix_budget else ([], b"")
        if len(prefix_ids) > prefix_budget:
            # Drop whole chunks from the left, so the chunks that stay are the ones the cache holds (unless the
            # budget is so small that a chunk would be a large share of it).
            chunk = s.chunk_size if prefix_budget >= 4 * s.chunk_size else 1
            prefix_ids = prefix_ids[math.ceil((len(prefix_ids) - prefix_budget) / chunk) * chunk :]
        suffix_ids = self.vocab.encode(suffix)[:suffix_budget] if suffix and suffix_budget else []
        return prefix_ids, held, suffix_ids

    # -- requests ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def start(self, request: InfillRequest) -> list[Job]:
        """Tokenize, heal, encode the context and run the first denoising step; one job per candidate."""
        parse_infill(dataclasses.asdict(request))  # callers other than the HTTP boundary get the same checks
        prefix_ids, held, suffix_ids = self.tokenize_context(request.prefix, request.suffix, request.max_tokens + 1)
        healed = heal_prefix(self.vocab, prefix_ids, held)
        mode = request.length_mode
        if mode == "auto":
            mode = "expand" if self.vocab.expand_id is not None else "filler"
        if mode == "expand" and self.vocab.expand_id is None:
            raise InfillError("length_mode expand needs a checkpoint with an expand token.")
        max_length = request.max_tokens + (1 if healed.heal else 0)
        length = min(self.settings.expand_initial, max_length) if mode == "expand" else max_length
        steps = request.steps or max(1, math.ceil(max_length / 2))
        request_id = self._next_request
        self._next_request += 1
        chunk_len = self.prefix_cache.full_chunk_length(len(healed.ids))
        chunk_kv = self.prefix_cache.encode(healed.ids[:chunk_len]) if chunk_len else []
        jobs = []
        for i in range(request.n):
            temperature = request.temperature
            if i > 0 and temperature == 0:
                temperature = self.settings.candidate_temperature
            canvas = new_canvas(
                self.vocab,
                length,
                self.device,
                mode=mode,
                max_length=max_length,
                threshold=float(request.threshold if request.threshold is not None else self.settings.threshold),
                temperature=float(temperature),
                steps=steps,
                seed=request.seed + i,
                heal=healed.heal,
                first_allowed=healed.first_allowed,
                single_line=request.single_line,
                refine_fraction=0.25 if request.refine else 0.0,
            )
            lead = healed.ids[-1] if (self.model.config.shifted and healed.ids) else None
            jobs.append(Job(canvas, request_id, healed.ids, suffix_ids, chunk_kv, lead=lead))
        self._refresh_and_step(jobs)
        return jobs

    @torch.inference_mode()
    def step(self, jobs: list[Job]) -> None:
        """One denoising step for every unfinished job: one batched forward over their canvases."""
        active = [j for j in jobs if not j.done]
        stale = [
            j for j in active
            if j.canvas.needs_refresh
            or (self.settings.refresh_every and j.steps_since_refresh >= self.settings.refresh_every)
        ]
        if stale:
            self._refresh_and_step(stale)
        fresh = [j for j in active if j not in stale]
        if fresh:
            logits = self._canvas_logits(fresh)
            denoise_step(self.vocab, [j.canvas for j in fresh], logits)
            for j in fresh:
                j.steps_since_refresh += 1

    def settled(self, jobs: list[Job]) -> list[str]:
        """Each candidate's text as far as its canvas is committed from the left (for streaming)."""
        return [canvas_completion(self.vocab, j.canvas, settled_only=True).text for j in jobs]

    def result(self, jobs: list[Job], started: float) -> InfillResult:
        return InfillResult(
            completions=[canvas_completion(self.vocab, j.canvas) for j in jobs],
            steps=jobs[0].canvas.steps_done,
            ms=(time.perf_counter() - started) * 1000,
            prefix_tokens=len(jobs[0].prefix_ids),
            suffix_tokens=len(jobs[0].suffix_ids),
        )

    def infill(self, request: InfillRequest) -> InfillResult:
        """Serve one request on its own."""
        started = time.perf_counter()
        jobs = self.start(request)
        while not all(j.done for j in jobs):
            self.step(jobs)
        return self.result(jobs, started)

    # -- forwards ----------------------------------------------------------------------------------------------
    def _positions(self, job: Job) -> tuple[int, int, int]:
        """(canvas start, canvas length, suffix start) in absolute positions."""
        start = len(job.prefix_ids)
        return start, job.canvas.length, start + job.canvas.length

    def _refresh_and_step(self, jobs: list[Job]) -> None:
        """Recompute tail + canvas + suffix over the prefix chunks, keep the context keys/values, and commit from
        the same forward (no work is wasted on the refresh)."""
        width = max(j.canvas.length for j in jobs)
        logits = torch.zeros(len(jobs), width, self.model.config.vocab_size, device=self.device)
        done: dict[tuple, tuple[torch.Tensor, list[LayerKV]]] = {}
        for b, job in enumerate(jobs):
            # Candidates of one request start from the same canvas: one forward serves them all.
            key = (job.request_id, tuple(job.canvas.ids.tolist()))
            if key in done:
                row_logits, job.context_kv = done[key]
                job.context_version += 1
            else:
                row_logits = self._group_forward(job)
                done[key] = (row_logits, job.context_kv)
            logits[b, : job.canvas.length] = row_logits
            job.canvas.needs_refresh = False
            job.steps_since_refresh = 0
        denoise_step(self.vocab, [j.canvas for j in jobs], logits)
        for j in jobs:
            j.steps_since_refresh += 1

    def _group_forward(self, job: Job) -> torch.Tensor:
        """Forward of [prefix tail, canvas, suffix] over the cached prefix chunks; returns canvas logits [C, V]."""
        chunk_len = job.chunk_kv[0][0].shape[2] if job.chunk_kv else 0
        tail = job.prefix_ids[chunk_len:]
        start, length, suffix_start = self._positions(job)
        ids = torch.tensor([tail + job.canvas.ids.tolist() + job.suffix_ids], device=self.device)
        positions = torch.cat(
            [
                torch.arange(chunk_len, start, device=self.device),
                torch.arange(start, start + length, device=self.device),
                torch.arange(suffix_start, suffix_start + len(job.suffix_ids), device=self.device),
            ]
        )[None]
        past = job.chunk_kv or None
        past_len = torch.tensor([chunk_len], device=self.device) if past else None
        hidden, kv = self.model.forward_window(ids, positions, past=past, past_len=past_len)
        n_tail = len(tail)
        # The lead token (last prefix token) is recomputed with the canvas at each step, so it leaves the context.
        keep_tail = n_tail - (1 if job.lead is not None else 0)
        job.context_kv = concat_kv(
            [job.chunk_kv, slice_kv(kv, 0, keep_tail), slice_kv(kv, n_tail + length, n_tail + length + len(job.suffix_ids))]
        )
        job.context_version += 1
        rows = self._canvas_rows(job, offset=n_tail)
        return self.model.logits(hidden[0, rows])

    def _canvas_rows(self, job: Job, offset: int) -> torch.Tensor:
        """Output rows that predict each canvas position: in place, or shifted by one (Dream reads i from i-1)."""
        length = job.canvas.length
        idx = torch.arange(length, device=self.device) + offset
        if not self.model.config.shifted:
            return idx
        if offset > 0:
            return idx - 1
        return torch.clamp(idx - 1, min=0)  # no prefix at all: position 0 reads its own output (Dream)

    def _canvas_logits(self, jobs: list[Job]) -> torch.Tensor:
        """One batched forward of [lead + canvas] windows over each job's cached context; logits [B, Cmax, V]."""
        leads = [1 if j.lead is not None else 0 for j in jobs]
        lengths = [j.canvas.length for j in jobs]
        width = max(a + c for a, c in zip(leads, lengths))
        batch = len(jobs)
        ids = torch.full((batch, width), self.vocab.pad_id, dtype=torch.long, device=self.device)
        positions = torch.zeros(batch, width, dtype=torch.long, device=self.device)
        for b, job in enumerate(jobs):
            start, length, _ = self._positions(job)
            window = ([job.lead] if job.lead is not None else []) + job.canvas.ids.tolist()
            ids[b, : len(window)] = torch.tensor(window, device=self.device)
            positions[b, : len(window)] = torch.arange(start - leads[b], start + length, device=self.device)
        past, past_len = self._batched_context(jobs)
        window_len = torch.tensor([a + c for a, c in zip(leads, lengths)], device=self.device)
        hidden, _ = self.model.forward_window(ids, positions, past=past, past_len=past_len, window_len=window_len)
        cmax = max(lengths)
        gathered = torch.zeros(batch, cmax, hidden.shape[-1], dtype=hidden.dtype, device=self.device)
        for b, job in enumerate(jobs):
            rows = self._canvas_rows(job, offset=leads[b])
            gathered[b, : lengths[b]] = hidden[b, rows]
        return self.model.logits(gathered).float()

    def _batched_context(self, jobs: list[Job]) -> tuple[list[LayerKV], torch.Tensor]:
        """Pad each job's context keys/values to a common length; lengths say which keys are real."""
        lengths = [j.context_kv[0][0].shape[2] if j.context_kv else 0 for j in jobs]
        if len(jobs) == 1 and lengths[0]:
            return jobs[0].context_kv, torch.tensor(lengths, device=self.device)  # nothing to pad
        # The batch rarely changes between steps: keep the padded copy until it does.
        key = tuple((j.uid, j.context_version) for j in jobs)
        if self._padded_context is not None and self._padded_context[0] == key:
            return self._padded_context[1], self._padded_context[2]
        tmax = max(lengths)
        cfg = self.model.config
        dtype = self.model.embed_tokens.weight.dtype
        past = []
        for layer in range(cfg.num_layers):
            k = torch.zeros(len(jobs), cfg.num_kv_heads, tmax, cfg.head_dim, dtype=dtype, device=self.device)
            v = torch.zeros_like(k)
            for b, job in enumerate(jobs):
                if lengths[b]:
                    k[b, :, : lengths[b]] = job.context_kv[layer][0][0]
                    v[b, :, : lengths[b]] = job.context_kv[layer][1][0]
            past.append((k, v))
        past_len = torch.tensor(lengths, device=self.device)
        self._padded_context = (key, past, past_len)
        return past, past_len
