"""Masked-diffusion infilling on a canvas: confident commits, length control, single-line stops, refinement.

A `Canvas` is one row being denoised. `denoise_step` takes the logits of a batch of canvases, commits tokens on
each and updates their state; it never runs the model, so the engine can batch any mix of requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mercury_lsp.engine.detokenize import cut_spans, text_with_spans
from mercury_lsp.engine.vocab import Vocabulary
from mercury_lsp.infill_api import Completion
from mercury_lsp.kernels.commit import commit_confident
from mercury_lsp.kernels.confidence import confidence


@dataclass(eq=False)  # identity: jobs are compared as objects, never by their tensors
class Canvas:
    """One candidate infill being denoised (state lives on the model's device)."""

    ids: torch.Tensor  # [C] canvas tokens; mask id where still masked
    masked: torch.Tensor  # [C] bool
    committed_filler: torch.Tensor  # [C] bool, filler committed as part of the right-edge run
    confidence: torch.Tensor  # [C] confidence each token had when committed
    mode: str  # "filler": fixed canvas, filler stripped; "expand": DreamOn expand/delete
    max_length: int
    threshold: float
    temperature: float
    steps_budget: int
    generator: torch.Generator
    heal: bytes = b""
    first_allowed: torch.Tensor | None = None
    single_line: bool = False
    expansions_left: int = 0
    refine_fraction: float = 0.0
    refine_threshold: float = 0.6
    refine_steps: int = 1
    steps_done: int = 0
    refining: bool = False
    needs_refresh: bool = False  # context keys/values are stale (length changed, or refinement starts)
    done: bool = False

    @property
    def length(self) -> int:
        return int(self.ids.shape[0])


def new_canvas(
    vocab: Vocabulary,
    length: int,
    device: torch.device,
    *,
    mode: str,
    max_length: int,
    threshold: float,
    temperature: float,
    steps: int,
    seed: int,
    heal: bytes = b"",
    first_allowed: torch.Tensor | None = None,
    single_line: bool = False,
    refine_fraction: float = 0.0,
    refine_steps: int = 1,
) -> Canvas:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return Canvas(
        ids=torch.full((length,), vocab.mask_id, dtype=torch.long, device=device),
        masked=torch.ones(length, dtype=torch.bool, device=device),
        committed_filler=torch.zeros(length, dtype=torch.bool, device=device),
        confidence=torch.zeros(length, device=device),
        mode=mode,
        max_length=max_length,
        threshold=threshold,
        temperature=temperature,
        steps_budget=steps,
        generator=generator,
        heal=heal,
        first_allowed=None if first_allowed is None else first_allowed.to(device),
        single_line=single_line,
        expansions_left=max_length - length if mode == "expand" else 0,
        refine_fraction=refine_fraction,
        refine_steps=refine_steps,
    )


def _restrict_logits(vocab: Vocabulary, canvases: list[Canvas], logits: torch.Tensor) -> None:
    """Forbid tokens a position may not take, in place: mask, expand/delete outside expand mode, healing."""
    logits[:, :, vocab.mask_id] = float("-inf")
    for b, canvas in enumerate(canvases):
        row = logits[b, : canvas.length]
        for special in (vocab.expand_id, vocab.delete_id):
            if special is not None and (canvas.mode != "expand" or canvas.refining):
                row[:, special] = float("-inf")
        if canvas.mode == "expand" and vocab.expand_id is not None and (
            canvas.expansions_left <= 0 or canvas.length >= canvas.max_length
        ):
            row[:, vocab.expand_id] = float("-inf")
        if canvas.first_allowed is not None and bool(canvas.masked[0]):
            keep = row[0, canvas.first_allowed].clone()
            row[0] = float("-inf")
            row[0, canvas.first_allowed] = keep


def _sampled_confidence(
    logits: torch.Tensor, filler: torch.Tensor, temperature: float, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Like the confidence kernel, but tokens are drawn from softmax(logits / temperature)."""
    probs = (logits.float() / temperature).softmax(-1)
    id_best = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    no_filler = probs.index_fill(-1, filler, 0.0)
    empty = no_filler.sum(-1, keepdim=True) <= 0
    no_filler = torch.where(empty, torch.ones_like(no_filler), no_filler)
    id_nf = torch.multinomial(no_filler, 1, generator=generator).squeeze(-1)
    return probs.gather(-1, id_best[:, None])[:, 0], id_best, probs.gather(-1, id_nf[:, None])[:, 0], id_nf


def denoise_step(vocab: Vocabulary, canvases: list[Canvas], logits: torch.Tensor) -> None:
    """Commit tokens on every canvas from its logits [B, Cmax, V] (rows past a canvas's length are ignored)."""
    batch, width, _ = logits.shape
    device = logits.device
    _restrict_logits(vocab, canvases, logits)
    filler = torch.tensor(vocab.filler_ids, device=device)
    p_best, id_best, p_nf, id_nf = (t.view(batch, width) for t in confidence(logits.view(-1, logits.shape[-1]), filler))
    for b, canvas in enumerate(canvases):
        if canvas.temperature > 0:
            n = canvas.length
            sampled = _sampled_confidence(logits[b, :n], filler, canvas.temperature, canvas.generator)
            for full, part in zip((p_best, id_best, p_nf, id_nf), sampled):
                full[b, :n] = part

    masked = torch.zeros(batch, width, dtype=torch.bool, device=device)
    committed_filler = torch.zeros_like(masked)
    for b, canvas in enumerate(canvases):
        masked[b, : canvas.length] = canvas.masked
        committed_filler[b, : canvas.length] = canvas.committed_filler
    best_is_filler = torch.isin(id_best, filler)
    threshold = torch.tensor([c.threshold for c in canvases], device=device)
    filler_rule = torch.tensor([c.mode == "filler" for c in canvases], device=device)
    min_commits = torch.tensor([_min_commits(c) for c in canvases], device=device)
    commit, token, conf = commit_confident(
        p_best, id_best, p_nf, id_nf, best_is_filler, masked, committed_filler, threshold, filler_rule,
        min_commits=min_commits,
    )
    for b, canvas in enumerate(canvases):
        n = canvas.length
        row_commit = commit[b, :n]
        canvas.ids = torch.where(row_commit, token[b, :n], canvas.ids)
        canvas.confidence = torch.where(row_commit, conf[b, :n], canvas.confidence)
        canvas.masked = canvas.masked & ~row_commit
        if canvas.mode == "filler":
            canvas.committed_filler = canvas.committed_filler | (row_commit & torch.isin(token[b, :n], filler))
        canvas.steps_done += 1
        _after_commit(vocab, canvas, row_commit)


def _min_commits(canvas: Canvas) -> int:
    """Commits needed per step to finish within the step budget (at least one)."""
    remaining = int(canvas.masked.sum())
    steps_left = max(canvas.steps_budget - canvas.steps_done, 1)
    return max(1, math.ceil(remaining / steps_left))


def _after_commit(vocab: Vocabulary, canvas: Canvas, committed: torch.Tensor) -> None:
    """Length control, single-line stops, refinement and completion, on the host."""
    if canvas.mode == "expand":
        _expand_and_delete(vocab, canvas, committed)
    if canvas.single_line:
        _stop_at_newline(vocab, canvas)
    if bool(canvas.masked.any()):
        return
    if canvas.refine_fraction > 0 and not canvas.refining:
        _start_refinement(vocab, canvas)
        if bool(canvas.masked.any()):
            return
    canvas.done = True


def _expand_and_delete(vocab: Vocabulary, canvas: Canvas, committed: torch.Tensor) -> None:
    """DreamOn rules: a committed expand becomes two masks; end-of-text or delete removes its position."""
    deleting = {vocab.eos_id} | ({vocab.delete_id} if vocab.delete_id is not None else set())
    ids = canvas.ids.tolist()
    flags = committed.tolist()
    if not any(f and (t == vocab.expand_id or t in deleting) for t, f in zip(ids, flags)):
        return
    keep_ids, keep_masked, keep_conf = [], [], []
    masked = canvas.masked.tolist()
    conf = canvas.confidence.tolist()
    for t, m, c, f in zip(ids, masked, conf, flags):
        if f and t == vocab.expand_id and canvas.expansions_left > 0:
            canvas.expansions_left -= 1
            keep_ids += [vocab.mask_id, vocab.mask_id]
            keep_masked += [True, True]
            keep_conf += [0.0, 0.0]
        elif f and t in deleting:
            continue
        else:
            keep_ids.append(t)
            keep_masked.append(m)
            keep_conf.append(c)
    device = canvas.ids.device
    canvas.ids = torch.tensor(keep_ids, dtype=torch.long, device=device)
    canvas.masked = torch.tensor(keep_masked, dtype=torch.bool, device=device)
    canvas.confidence = torch.tensor(keep_conf, device=device)
    canvas.committed_filler = torch.zeros_like(canvas.masked)
    canvas.needs_refresh = True
    # More masks appeared: give them steps of their own.
    canvas.steps_budget = max(canvas.steps_budget, canvas.steps_done + int(canvas.masked.sum()))


def _newline_after_heal(vocab: Vocabulary, canvas: Canvas, position: int, token: int) -> bool:
    data = vocab.token_bytes[token] if token < len(vocab.token_bytes) else b""
    if position == 0 and canvas.heal:
        data = data[len(canvas.heal) :]
    return b"\n" in data


def _stop_at_newline(vocab: Vocabulary, canvas: Canvas) -> None:
    """Once a committed token breaks the line, nothing after it matters: close the rest of the canvas."""
    ids = canvas.ids.tolist()
    masked = canvas.masked.tolist()
    for j, (t, m) in enumerate(zip(ids, masked)):
        if not m and t not in vocab.filler_ids and _newline_after_heal(vocab, canvas, j, t):
            if j + 1 < canvas.length and bool(canvas.masked[j + 1 :].any()):
                canvas.ids[j + 1 :] = vocab.pad_id
                canvas.masked[j + 1 :] = False
                canvas.committed_filler[j + 1 :] = True
            return


def _start_refinement(vocab: Vocabulary, canvas: Canvas) -> None:
    """Draft-and-refine: re-mask the least confident committed tokens and re-predict them."""
    content = ~canvas.committed_filler & ~torch.isin(canvas.ids, torch.tensor(vocab.filler_ids, device=canvas.ids.device))
    if canvas.first_allowed is not None:
        content[0] = False  # the healed token is constrained already
    weak = content & (canvas.confidence < canvas.refine_threshold)
    budget = math.ceil(canvas.refine_fraction * canvas.length)
    if budget <= 0 or not bool(weak.any()):
        return
    scores = torch.where(weak, canvas.confidence, torch.full_like(canvas.confidence, 2.0))
    chosen = scores.argsort()[: min(budget, int(weak.sum()))]
    canvas.ids[chosen] = vocab.mask_id
    canvas.masked[chosen] = True
    canvas.refining = True
    canvas.needs_refresh = True
    canvas.steps_budget = canvas.steps_done + canvas.refine_steps


def _content_tokens(vocab: Vocabulary, canvas: Canvas, settled_only: bool = False) -> tuple[list[int], list[float]]:
    """The canvas's text tokens and their confidences, in order: filler ends the text on a fixed canvas; mask,
    expand and delete stand for nothing. `settled_only` stops at the first position still masked."""
    drop = set(vocab.filler_ids) | {vocab.mask_id}
    drop |= {t for t in (vocab.expand_id, vocab.delete_id) if t is not None}
    ids, confidence = canvas.ids.tolist(), canvas.confidence.tolist()
    masked = canvas.masked.tolist() if settled_only else [False] * len(ids)
    tokens, scores = [], []
    for t, p, m in zip(ids, confidence, masked):
        if m or (t in vocab.filler_ids and canvas.mode == "filler"):
            break
        if t not in drop:
            tokens.append(t)
            scores.append(p)
    return tokens, scores


def canvas_completion(vocab: Vocabulary, canvas: Canvas, settled_only: bool = False) -> Completion:
    """The text to insert at the cursor, its content-token count and the confidence span of each token.

    With `settled_only`, only the left part of the canvas whose positions are all committed (for streaming)."""
    tokens, scores = _content_tokens(vocab, canvas, settled_only)
    pieces = [vocab.token_bytes[t] if t < len(vocab.token_bytes) else b"" for t in tokens]
    if canvas.heal and pieces:
        # The healed bytes were typed already; the first token must start with them (it was constrained to).
        pieces[0] = pieces[0][len(canvas.heal) :] if pieces[0].startswith(canvas.heal) else pieces[0]
    text, spans = text_with_spans(zip(pieces, scores))
    if canvas.single_line and "\n" in text:
        text, spans = cut_spans(text, spans, text.index("\n"))
    return Completion(text, len(tokens), spans)
