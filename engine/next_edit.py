"""Next-edit proposals: which span near the last edit no longer fits, and what the model would write there instead.

A masked diffusion model scores a span with both sides in view: mask it, and read how likely the text that is
there now is. So: every identifier occurrence and every line of the region (outside the lines just edited) is a
candidate; all candidates are masked in one batched forward, one row each; the most doubtful span is re-denoised
by the ordinary infill machinery, and its rewrite is proposed when the model is sure of it and it differs from
what is there. When no span is doubtful, nothing is proposed.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field

import torch

from mercury_lsp.engine.api.edit_completions import EditCompletionRequest, EditPrompt
from mercury_lsp.engine.api.infill import InfillRequest
from mercury_lsp.engine.infill import InfillEngine

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class NextEditSettings:
    max_window_tokens: int = 384  # region plus context on both sides, one row of the scoring batch
    max_candidates: int = 32  # rows of the scoring batch, nearest the last edit first
    # A span is doubtful when the model's favourite beats the text there by this much (mean log-probability
    # per token); below it nothing is re-denoised. Chosen on bench/next_edit.py (bench/RESULTS.md).
    min_doubt: float = 2.0
    rewrites: int = 2  # doubtful spans re-denoised, most doubtful first, until one differs and is sure
    min_confidence: float = 0.5  # the rewrite's least confident token must reach this
    slack_tokens: int = 4  # the rewrite may be this much longer than the span (a longer name)
    max_rewrite_tokens: int = 64


@dataclass(frozen=True)
class NextEditQuery:
    """The file as it is now, the region a proposal may touch, and the range the last edit wrote (no candidate)."""

    text: str
    region: tuple[int, int]
    edited: tuple[int, int] | None = None
    extra_context: str = ""  # code from elsewhere (recently viewed snippets), for the rewrite


def line_range_chars(text: str, lines: tuple[int, int]) -> tuple[int, int]:
    """Character range of the 0-based lines [first, last) of `text`, line breaks included."""
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    first = starts[min(lines[0], len(starts) - 1)]
    return first, starts[lines[1]] if lines[1] < len(starts) else len(text)


def query_from_prompt(prompt: EditPrompt) -> NextEditQuery:
    """The question a Mercury Edit prompt asks, for this engine: its region, and the lines its last diff wrote."""
    lines = prompt.last_edit_lines()
    edited = line_range_chars(prompt.text, lines) if lines else None
    extra = "".join(f"# {s.path}\n{s.code}\n" for s in prompt.snippets)
    return NextEditQuery(prompt.text, prompt.region, edited, extra)


def answer_edit_request(engine: InfillEngine, request: EditCompletionRequest,
                        settings: NextEditSettings | None = None) -> tuple[str, NextEditResult]:
    """The region rewritten with the proposal (unchanged when there is none), and the result behind it."""
    settings = settings or NextEditSettings()
    if request.min_confidence is not None:
        settings = dataclasses.replace(settings, min_confidence=request.min_confidence)
    if request.max_tokens is not None:
        settings = dataclasses.replace(settings, max_rewrite_tokens=request.max_tokens)
    prompt = request.prompt
    result = NextEditEngine(engine).propose(query_from_prompt(prompt), settings)
    text, (start, end) = prompt.text, prompt.region
    if result.proposal is not None:
        p = result.proposal
        text = text[: p.start] + p.text + text[p.end :]
        end += len(p.text) - (p.end - p.start)
    return text[start:end], result


@dataclass(frozen=True)
class Candidate:
    """A span of whole tokens of the window, its characters in the file, and how the model rates what is there."""

    tokens: tuple[int, int]  # [first, last) in the window's tokens
    chars: tuple[int, int]  # [start, end) in the file's text
    kind: str  # "identifier" or "line"
    mean_logprob: float = 0.0  # of the current tokens, each masked with the whole span
    doubt: float = 0.0  # mean over the span of (the favourite's log-probability - the current token's)


@dataclass(frozen=True)
class Proposal:
    """Replace text[start:end] by `text`; `confidence` is the least confident token of the rewrite."""

    start: int
    end: int
    text: str
    confidence: float
    doubt: float


@dataclass
class NextEditResult:
    proposal: Proposal | None
    candidates: list[Candidate] = field(default_factory=list)  # scored, most doubtful first
    rewritten: list[str] = field(default_factory=list)  # what each re-denoised span came back as
    ms: float = 0.0


def window_bounds(text: str, region: tuple[int, int], chars: int) -> tuple[int, int]:
    """Character range of the window: the region and about `chars` on each side, cut at line starts."""
    start = max(0, region[0] - chars)
    if start:
        start = text.find("\n", start) + 1 or region[0]
        start = min(start, region[0])
    end = min(len(text), region[1] + chars)
    line_end = text.rfind("\n", region[1], end)
    return start, max(region[1], line_end + 1 if line_end >= 0 else end)


def token_span(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """The tokens [first, last) that overlap the characters [start, end) of the window."""
    first = next((i for i, (_, e) in enumerate(offsets) if e > start), None)
    if first is None:
        return None
    last = first
    while last < len(offsets) and offsets[last][0] < end:
        last += 1
    return (first, last) if last > first else None


def candidate_spans(window: str, base: int, offsets: list[tuple[int, int]], region: tuple[int, int],
                    edited: tuple[int, int] | None) -> list[Candidate]:
    """Identifier occurrences and lines of the region as whole-token spans, none touching the edited lines."""
    found: dict[tuple[int, int], Candidate] = {}
    lo, hi = region[0] - base, region[1] - base

    def add(start: int, end: int, kind: str) -> None:
        span = token_span(offsets, start, end)
        if span is None or span in found:
            return
        chars = (base + offsets[span[0]][0], base + offsets[span[1] - 1][1])
        if edited is not None and chars[0] < edited[1] and edited[0] < chars[1]:
            return
        if chars[0] < region[0] or chars[1] > region[1]:
            return
        found[span] = Candidate(span, chars, kind)

    for match in _IDENTIFIER.finditer(window, lo, hi):
        add(match.start(), match.end(), "identifier")
    at = lo
    for line in window[lo:hi].splitlines(keepends=True):
        content = line.rstrip("\r\n")
        body = content.lstrip()
        if body:
            add(at + len(content) - len(body), at + len(content), "line")
        at += len(line)
    return list(found.values())


def without_suffix_overlap(rewrite: str, suffix: str) -> str:
    """The rewrite without the text it repeats from the suffix: a canvas longer than the new name runs on into
    what follows the span (` total += 1` for ` count`, followed by ` += 1`)."""
    for size in range(min(len(rewrite), len(suffix)), 0, -1):
        if rewrite.endswith(suffix[:size]):
            return rewrite[:-size]
    return rewrite


class NextEditEngine:
    """Scores candidate spans with one batched masked forward and re-denoises the most doubtful one."""

    def __init__(self, engine: InfillEngine) -> None:
        self.engine = engine
        self.model = engine.model
        self.vocab = engine.vocab

    @torch.inference_mode()
    def propose(self, query: NextEditQuery, settings: NextEditSettings | None = None) -> NextEditResult:
        settings = settings or NextEditSettings()
        started = time.perf_counter()
        scored = self.score(query, settings)
        result = NextEditResult(None, scored)
        doubtful = [c for c in scored if c.doubt >= settings.min_doubt][: settings.rewrites]
        for candidate in doubtful:
            proposal = self._rewrite(query.text, candidate, settings, query.extra_context)
            result.rewritten.append(proposal.text if proposal else "")
            if proposal is not None and proposal.confidence >= settings.min_confidence \
                    and proposal.text.strip() != query.text[candidate.chars[0] : candidate.chars[1]].strip():
                result.proposal = proposal
                break
        result.ms = (time.perf_counter() - started) * 1000
        return result

    def score(self, query: NextEditQuery, settings: NextEditSettings) -> list[Candidate]:
        """Every candidate rated in one forward of [candidates, window] with its span masked; most doubtful first."""
        budget = min(settings.max_window_tokens, self.model.config.max_position_embeddings)
        start, end = window_bounds(query.text, query.region, budget * 4)
        window = query.text[start:end]
        encoding = self.vocab.tokenizer.encode(window, add_special_tokens=False)
        ids, offsets = list(encoding.ids), [tuple(o) for o in encoding.offsets]
        if len(ids) > budget:
            ids, offsets, start, window = self._trim(query, ids, offsets, start, window, budget)
        candidates = candidate_spans(window, start, offsets, query.region, query.edited)
        if not candidates or not ids:
            return []
        middle = (query.edited[0] + query.edited[1]) / 2 if query.edited else (query.region[0] + query.region[1]) / 2
        candidates.sort(key=lambda c: abs((c.chars[0] + c.chars[1]) / 2 - middle))
        candidates = candidates[: settings.max_candidates]
        return sorted(self._rate(ids, candidates), key=lambda c: -c.doubt)

    def _trim(self, query: NextEditQuery, ids: list[int], offsets: list, start: int, window: str,
              budget: int) -> tuple[list[int], list, int, str]:
        """Keep `budget` tokens centred on the region (the context on both sides shrinks evenly)."""
        span = token_span(offsets, query.region[0] - start, query.region[1] - start) or (0, len(ids))
        spare = max(budget - (span[1] - span[0]), 0)
        first = max(0, span[0] - spare // 2)
        last = min(len(ids), first + max(budget, span[1] - span[0]))
        first = max(0, last - budget)
        shift = offsets[first][0]
        kept = [(a - shift, b - shift) for a, b in offsets[first:last]]
        return ids[first:last], kept, start + shift, window[shift : offsets[last - 1][1]]

    def _rate(self, ids: list[int], candidates: list[Candidate]) -> list[Candidate]:
        device = self.engine.device
        rows = torch.tensor(ids, device=device).repeat(len(candidates), 1)
        for b, candidate in enumerate(candidates):
            rows[b, candidate.tokens[0] : candidate.tokens[1]] = self.vocab.mask_id
        hidden, _ = self.model.forward_window(rows)
        rated = []
        for b, candidate in enumerate(candidates):
            read = torch.arange(*candidate.tokens, device=device)
            if self.model.config.shifted:
                read = (read - 1).clamp(min=0)  # token i is read from output i - 1
            logprobs = torch.log_softmax(self.model.logits(hidden[b, read]).float(), dim=-1)
            current = torch.tensor(ids[candidate.tokens[0] : candidate.tokens[1]], device=device)
            here = logprobs.gather(1, current[:, None])[:, 0]
            gap = logprobs.max(dim=-1).values - here
            rated.append(Candidate(candidate.tokens, candidate.chars, candidate.kind,
                                   float(here.mean()), float(gap.mean())))
        return rated

    def _rewrite(self, text: str, candidate: Candidate, settings: NextEditSettings,
                 extra_context: str = "") -> Proposal | None:
        """Re-denoise the candidate's span from both sides with the ordinary infill."""
        start, end = candidate.chars
        current = text[start:end]
        request = InfillRequest(prefix=text[:start], suffix=text[end:],
                                extra_context=extra_context,
                                max_tokens=min(candidate.tokens[1] - candidate.tokens[0] + settings.slack_tokens,
                                               settings.max_rewrite_tokens),
                                single_line="\n" not in current)
        completion = self.engine.infill(request).completions[0]
        rewrite = without_suffix_overlap(completion.text, text[end:])
        kept = [s.confidence for s in completion.spans if s.start < len(rewrite)]
        if not rewrite.strip() or not kept:
            return None
        return Proposal(start, end, rewrite, min(kept), candidate.doubt)
