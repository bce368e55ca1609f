"""Masked-diffusion infilling on canvases kept in fixed device slots: confident commits, length control, single-line
stops, refinement.

Every canvas lives in one slot of `CanvasSlots` (device tensors, one row per slot). `denoise` takes the logits of
any set of slots, commits tokens and reports one status per slot, all on the device: the host reads back one small
tensor per step, and the same code runs in a CUDA graph. Changes of canvas length (DreamOn's expand and delete)
and the start of refinement are rare and run on the host (`expand_and_delete`, `start_refinement`) when a status
asks for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mercury_lsp.engine.api.infill import Completion
from mercury_lsp.engine.commit_probe import CommitProbe, probe_features, vocab_features
from mercury_lsp.engine.detokenize import cut_spans, text_with_spans
from mercury_lsp.engine.vocab import Vocabulary
from mercury_lsp.kernels.commit import commit_confident
from mercury_lsp.kernels.confidence import confidence

RUNNING, DONE, HOST_WORK = 0, 1, 2  # statuses denoise reports per slot
MEASURES = ("probability", "margin", "entropy")
REFINE_THRESHOLD = 0.6  # committed tokens below this confidence may be re-predicted by refinement
REFINE_STEPS = 1
# A CPU scores a step's positions in chunks whose [positions, V] float temporaries take about this much each: 32
# positions at the bundled model's 8k vocabulary, where three 65-position canvases at once took 6.4 MB per
# temporary (bench/RESULTS.md, issue 21's fifth round). At least a few positions, so a 150k vocabulary does not go
# one position per chunk.
SCORE_CHUNK_BYTES = 2**20
SCORE_CHUNK_MIN = 4


class VocabTables:
    """Per-token facts the device-side step looks up: filler, line breaks, positions expand/delete removes."""

    def __init__(self, vocab: Vocabulary, size: int, device: torch.device) -> None:
        self.mask_id, self.pad_id, self.eos_id = vocab.mask_id, vocab.pad_id, vocab.eos_id
        self.expand_id, self.delete_id = vocab.expand_id, vocab.delete_id
        self.filler_ids = torch.tensor(vocab.filler_ids, device=device)
        self.filler = torch.zeros(size, dtype=torch.bool, device=device)
        self.filler[self.filler_ids] = True
        newline = [i for i, b in enumerate(vocab.token_bytes) if b"\n" in b]
        self.newline = torch.zeros(size, dtype=torch.bool, device=device)
        self.newline[torch.tensor(newline, dtype=torch.long)] = True
        self.newline &= ~self.filler
        deleting = [vocab.eos_id] + ([vocab.delete_id] if vocab.delete_id is not None else [])
        self.deleting = torch.zeros(size, dtype=torch.bool, device=device)
        self.deleting[torch.tensor(deleting, dtype=torch.long)] = True


@dataclass
class CanvasSlots:
    """The state of every canvas, one row per slot; the last slot is scratch for padding rows of a batch."""

    ids: torch.Tensor  # [S, Cmax] canvas tokens (pad past the canvas length)
    masked: torch.Tensor  # [S, Cmax] still to predict
    committed_filler: torch.Tensor  # [S, Cmax] filler of the right-edge run (positions past the length count too)
    confidence: torch.Tensor  # [S, Cmax] each token's confidence when committed
    length: torch.Tensor  # [S]
    threshold: torch.Tensor  # [S]
    filler_threshold: torch.Tensor  # [S] what a position of the right-edge filler run needs to join it
    filler_rule: torch.Tensor  # [S] fixed canvas: filler only as a run from the right edge
    tail_threshold: torch.Tensor  # [S] length first: filler is committed where P(answer ended before) passes this
    probe_on: torch.Tensor  # [S] the answer's tokens are committed by the learned probe's score (commit_probe)
    steps_budget: torch.Tensor  # [S]
    steps_done: torch.Tensor  # [S]
    single_line: torch.Tensor  # [S]
    healed: torch.Tensor  # [S] position 0 is constrained to first_allowed while masked
    first_allowed: torch.Tensor  # [S, V]
    first_newline: torch.Tensor  # [S, V] whether a token breaks the line at position 0 (after the healed bytes)
    special_allowed: torch.Tensor  # [S] expand/delete may be predicted (expand mode, not refining)
    expand_allowed: torch.Tensor  # [S] expand may be predicted (expansions left, room to grow)
    expand_mode: torch.Tensor  # [S] committed expand/delete changes the length (host work)
    refine_pending: torch.Tensor  # [S] refinement starts when the draft is complete (host work)

    @classmethod
    def allocate(cls, slots: int, width: int, vocab_size: int, device: torch.device) -> CanvasSlots:
        def zeros(*shape: int, dtype: torch.dtype = torch.bool) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=device)

        return cls(
            ids=zeros(slots, width, dtype=torch.long), masked=zeros(slots, width),
            committed_filler=zeros(slots, width), confidence=zeros(slots, width, dtype=torch.float32),
            length=zeros(slots, dtype=torch.long), threshold=torch.ones(slots, device=device),
            filler_threshold=torch.ones(slots, device=device),
            filler_rule=zeros(slots), tail_threshold=torch.full((slots,), 2.0, device=device), probe_on=zeros(slots),
            steps_budget=torch.ones(slots, dtype=torch.long, device=device),
            steps_done=zeros(slots, dtype=torch.long), single_line=zeros(slots), healed=zeros(slots),
            first_allowed=zeros(slots, vocab_size), first_newline=zeros(slots, vocab_size),
            special_allowed=zeros(slots), expand_allowed=zeros(slots), expand_mode=zeros(slots),
            refine_pending=zeros(slots),
        )

    @property
    def width(self) -> int:
        return self.ids.shape[1]


@dataclass
class CanvasSpec:
    """What a new canvas needs to know (host side, set once per request)."""

    length: int
    max_length: int
    mode: str  # "filler": fixed canvas, filler stripped; "expand": DreamOn expand/delete
    threshold: float
    steps: int
    single_line: bool
    heal: bytes
    first_allowed: torch.Tensor | None
    refine: bool
    suffix_held: bytes = b""  # the end of the cursor's word, already in the buffer after the cursor
    filler_threshold: float | None = None  # None: the token threshold
    tail_threshold: float | None = None  # length first (filler mode): see filler_tail; None: off
    probe: bool = False  # commit the answer's tokens by the learned probe (filler mode, a model that ships one)


def reset_slot(slots: CanvasSlots, tables: VocabTables, vocab: Vocabulary, slot: int, spec: CanvasSpec) -> None:
    """Lay a fresh canvas of masks in a slot."""
    n = spec.length
    slots.ids[slot].fill_(tables.pad_id)
    slots.ids[slot, :n] = tables.mask_id
    slots.masked[slot].fill_(False)
    slots.masked[slot, :n] = True
    slots.committed_filler[slot].fill_(True)  # positions past the canvas end the right-edge run
    slots.committed_filler[slot, :n] = False
    slots.confidence[slot].zero_()
    slots.length[slot] = n
    slots.threshold[slot] = spec.threshold
    slots.filler_threshold[slot] = spec.threshold if spec.filler_threshold is None else spec.filler_threshold
    slots.filler_rule[slot] = spec.mode == "filler"
    # Above 1 no position ever qualifies: length first is off.
    slots.tail_threshold[slot] = 2.0 if spec.tail_threshold is None or spec.mode != "filler" else spec.tail_threshold
    slots.probe_on[slot] = spec.probe and spec.mode == "filler"
    slots.steps_budget[slot] = spec.steps
    slots.steps_done[slot] = 0
    slots.single_line[slot] = spec.single_line
    slots.healed[slot] = spec.first_allowed is not None
    slots.first_allowed[slot].fill_(False)
    slots.first_newline[slot] = tables.newline
    if spec.first_allowed is not None:
        allowed = spec.first_allowed.to(slots.first_allowed.device)
        slots.first_allowed[slot, allowed] = True
        # At position 0 only the bytes after the healed ones are new text: does a line break come among them?
        breaks = [t for t in spec.first_allowed.tolist() if b"\n" in vocab.token_bytes[t][len(spec.heal) :]]
        slots.first_newline[slot].fill_(False)
        slots.first_newline[slot, torch.tensor(breaks, dtype=torch.long, device=allowed.device)] = True
    expand = spec.mode == "expand"
    slots.special_allowed[slot] = expand
    slots.expand_allowed[slot] = expand and n < spec.max_length
    slots.expand_mode[slot] = expand
    slots.refine_pending[slot] = spec.refine


def _restrict(slots: CanvasSlots, tables: VocabTables, slot: torch.Tensor, logits: torch.Tensor) -> None:
    """Forbid, in place, the tokens no position may take (mask) and expand/delete outside expand mode; `slot` is each
    position's slot, shaped to broadcast over logits[..., 0] ([B, 1] for [B, C, V], [M] for [M, V])."""
    logits[..., tables.mask_id] = float("-inf")
    blocked = float("-inf")
    if tables.expand_id is not None:
        ok = slots.special_allowed[slot] & slots.expand_allowed[slot]
        logits[..., tables.expand_id] = torch.where(ok, logits[..., tables.expand_id], blocked)
    if tables.delete_id is not None:
        ok = slots.special_allowed[slot]
        logits[..., tables.delete_id] = torch.where(ok, logits[..., tables.delete_id], blocked)


def _restrict_canvases(slots: CanvasSlots, tables: VocabTables, rows: torch.Tensor, logits: torch.Tensor,
                       masked: torch.Tensor) -> None:
    """_restrict for logits [B, C, V] of whole canvases, and healing: a masked position 0 of a healed canvas takes
    only the tokens that start with the bytes typed already. No host sync (it runs in CUDA graphs)."""
    _restrict(slots, tables, rows[:, None], logits)
    heal = (slots.healed[rows] & masked[:, 0])[:, None]
    logits[:, 0] = torch.where(heal & ~slots.first_allowed[rows], float("-inf"), logits[:, 0])


def _restrict_masked(slots: CanvasSlots, tables: VocabTables, rows: torch.Tensor, logits: torch.Tensor,
                     masked: torch.Tensor) -> None:
    """_restrict_canvases for logits [M, V] of the masked positions of [B, C] only, in row-major order (eager
    steps, which may read positions back to the host)."""
    row, column = masked.nonzero(as_tuple=True)
    slot = rows[row]
    _restrict(slots, tables, slot, logits)
    first = ((column == 0) & slots.healed[slot]).nonzero().squeeze(1)
    if len(first):
        logits[first] = logits[first].masked_fill(~slots.first_allowed[slot[first]], float("-inf"))


def measure_confidence(logits: torch.Tensor, filler_ids: torch.Tensor, measure: str) -> tuple[torch.Tensor, ...]:
    """(conf_best, id_best, conf_nonfiller, id_nonfiller) of logits [N, V] under a confidence measure.

    "probability" is the token's softmax probability (Fast-dLLM's threshold rule; the Triton kernel on CUDA);
    "margin" the probability minus the runner-up's; "entropy" exp(-entropy) of the position's distribution, in
    (0, 1] so the same thresholds apply. Tokens are the most probable ones under every measure."""
    p_best, id_best, p_nf, id_nf = confidence(logits, filler_ids)
    if measure == "probability":
        return p_best, id_best, p_nf, id_nf
    probs = logits.float().softmax(-1)
    if measure == "margin":
        top = probs.topk(2, dim=-1).values
        runner_up = top[:, 1]
        no_filler = probs.index_fill(-1, filler_ids, 0.0).topk(2, dim=-1).values
        return p_best - runner_up, id_best, p_nf - no_filler[:, 1], id_nf
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(-1)
    certainty = torch.exp(-entropy)
    return certainty, id_best, certainty, id_nf


def filler_log_prob(logits: torch.Tensor, filler_ids: torch.Tensor) -> torch.Tensor:
    """log P(filler) of each position of logits [..., V]: the mass of every filler token."""
    scores = logits.float()
    return scores[..., filler_ids].logsumexp(-1) - scores.logsumexp(-1)


def answer_ended(log_f: torch.Tensor, masked: torch.Tensor, filler: torch.Tensor) -> torch.Tensor:
    """P(the answer ended at or before position j) [B, C] under the canvas's own length distribution.

    A fixed canvas holds an answer followed by filler. Reading each position's filler probability f from one
    forward (`log_f`, filler_log_prob), the chance that the answer is exactly L tokens long is proportional to
    prod_{i<L} (1 - f_i) * prod_{j>=L} f_j (committed positions count as certain: `filler` marks the committed ones
    that are filler), and position j is filler when the answer ended at or before it."""
    log_not_f = torch.log1p(-log_f.exp().clamp(max=1 - 1e-6))
    certain = torch.zeros_like(log_f)
    impossible = torch.full_like(log_f, -1e4)
    # Committed positions: filler is certain where it is filler, impossible where it is not.
    log_f = torch.where(masked, log_f, torch.where(filler, certain, impossible))
    log_not_f = torch.where(masked, log_not_f, torch.where(filler, impossible, certain))
    zero = torch.zeros_like(log_f[:, :1])
    before = torch.cat([zero, log_not_f.cumsum(-1)], -1)  # [B, C+1]: sum over i < L of log(1 - f_i)
    after = torch.cat([log_f.flip(-1).cumsum(-1).flip(-1), zero], -1)  # sum over j >= L of log f_j
    end = (before + after).softmax(-1)  # P(answer length = L), L = 0..C
    return end[:, :-1].cumsum(-1)


def filler_tail(logits: torch.Tensor, filler_ids: torch.Tensor, masked: torch.Tensor, filler: torch.Tensor,
                tail_threshold: torch.Tensor) -> torch.Tensor:
    """Length first: the masked positions [B, C] that are filler with probability >= tail_threshold [B]
    (answer_ended). They are committed as filler at once, so a short answer in a wide canvas spends its steps on
    the answer rather than on the filler beside it (the idea of CAL's length choice, without a second model)."""
    ended = answer_ended(filler_log_prob(logits, filler_ids), masked, filler)
    return masked & (ended >= tail_threshold[:, None])


@dataclass
class PositionScores:
    """What a step reads from each canvas position's logits, [B, C] each. Only masked positions' values are read;
    an eager CPU step scores only those and leaves zeros elsewhere."""

    p_best: torch.Tensor
    id_best: torch.Tensor
    p_nf: torch.Tensor  # the best non-filler token's confidence
    id_nf: torch.Tensor
    log_filler: torch.Tensor  # log P(filler) (filler_log_prob)
    certainty: torch.Tensor | None  # the probe's vocabulary features (vocab_features); None without a probe
    second: torch.Tensor | None


def score_positions(logits: torch.Tensor, filler_ids: torch.Tensor, masked: torch.Tensor, measure: str,
                    for_probe: bool, packed: bool) -> PositionScores:
    """PositionScores of restricted logits: [B, C, V] of whole canvases, or with `packed` [M, V] of the positions
    `masked` [B, C] marks, in row-major order.

    On a CPU the positions go a chunk at a time (SCORE_CHUNK_BYTES), so no [B * C, V] temporary (softmax, the
    filler-free copy, logsumexp's) is ever alive; every measure is per position, so chunks change no value. On CUDA
    one chunk: the step is a captured graph and a few MB of temporaries are nothing there."""
    batch, width = masked.shape
    flat = logits.reshape(-1, logits.shape[-1])
    chunk = flat.shape[0] if flat.is_cuda else max(SCORE_CHUNK_BYTES // (flat.shape[1] * 4), SCORE_CHUNK_MIN)
    parts = []
    for start in range(0, max(flat.shape[0], 1), max(chunk, 1)):  # one empty chunk when nothing is masked
        part = flat[start : start + chunk]
        features = vocab_features(part, filler_ids) if for_probe else ()
        parts.append((*measure_confidence(part, filler_ids, measure), filler_log_prob(part, filler_ids), *features))
    columns = [torch.cat(column) for column in zip(*parts)]
    if packed:  # zeros where nothing was scored: never read
        where = masked.reshape(-1)
        columns = [torch.zeros(batch * width, dtype=c.dtype, device=c.device).index_put_((where,), c) for c in columns]
    p_best, id_best, p_nf, id_nf, log_filler, *probe = (c.view(batch, width) for c in columns)
    return PositionScores(p_best, id_best, p_nf, id_nf, log_filler, *(probe or (None, None)))


@dataclass
class SampledRow:
    """A row whose tokens are drawn at a temperature with its own generator (eager steps only)."""

    index: int  # row in the batch
    temperature: float
    generator: torch.Generator
    length: int = 0  # canvas positions to draw for: never the bucket's padding, so draws do not depend on it


def _sampled_confidence(logits: torch.Tensor, filler: torch.Tensor, row: SampledRow) -> tuple[torch.Tensor, ...]:
    """Like the confidence kernel, but tokens are drawn from softmax(logits / temperature)."""
    probs = (logits.float() / row.temperature).softmax(-1)
    id_best = torch.multinomial(probs, 1, generator=row.generator).squeeze(-1)
    no_filler = probs.index_fill(-1, filler, 0.0)
    empty = no_filler.sum(-1, keepdim=True) <= 0
    no_filler = torch.where(empty, torch.ones_like(no_filler), no_filler)
    id_nf = torch.multinomial(no_filler, 1, generator=row.generator).squeeze(-1)
    return probs.gather(-1, id_best[:, None])[:, 0], id_best, probs.gather(-1, id_nf[:, None])[:, 0], id_nf


def _canvas_row(slots: CanvasSlots, tables: VocabTables, rows: torch.Tensor, logits: torch.Tensor,
                masked: torch.Tensor, row: SampledRow, packed: bool) -> torch.Tensor:
    """A sampled row's restricted logits [length, V] over every canvas position, as draws consume the generator
    per position: from packed logits, zeros at the committed positions, which is what an unpacked eager step held."""
    if not packed:
        return logits[row.index, : row.length]
    first = int(masked[: row.index].sum())
    wanted = masked[row.index, : row.length]
    full = torch.zeros(row.length, logits.shape[-1], dtype=logits.dtype, device=logits.device)
    full[wanted] = logits[first : first + int(wanted.sum())]
    one = slice(row.index, row.index + 1)
    _restrict_canvases(slots, tables, rows[one], full[None], masked[one, : row.length])
    return full


def denoise(
    slots: CanvasSlots,
    tables: VocabTables,
    rows: torch.Tensor,
    logits: torch.Tensor,
    measure: str = "probability",
    sampled: tuple[SampledRow, ...] = (),
    probe: CommitProbe | None = None,
    positions: torch.Tensor | None = None,
) -> torch.Tensor:
    """Commit tokens on the canvases in slots `rows` [B] from their logits [B, C, V] (C covers every canvas's
    length); returns each row's status (RUNNING, DONE or HOST_WORK) as a [B] int8 tensor. No host sync.

    With `positions` [B, C], the slots' masked positions (eager steps: a CPU's, and every refresh), `logits` is
    [M, V] of those positions only, row-major: nothing reads a committed position's logits, so nothing computes
    them. Finding the positions reads them back to the host, which costs nothing on a CPU.

    With a `probe`, rows whose slot has `probe_on` commit the answer's tokens by the probe's score rather than
    their probability (commit_probe)."""
    packed = positions is not None
    width = positions.shape[1] if packed else logits.shape[1]
    ids = slots.ids[rows, :width]
    masked = slots.masked[rows, :width]
    committed_filler = slots.committed_filler[rows, :width]
    if packed:
        _restrict_masked(slots, tables, rows, logits, masked)
    else:
        _restrict_canvases(slots, tables, rows, logits, masked)
    scores = score_positions(logits, tables.filler_ids, masked, measure, probe is not None, packed)
    p_best, id_best, p_nf, id_nf = scores.p_best, scores.id_best, scores.p_nf, scores.id_nf
    for row in sampled:
        drawn = _sampled_confidence(_canvas_row(slots, tables, rows, logits, masked, row, packed), tables.filler_ids,
                                    row)
        for full, part in zip((p_best, id_best, p_nf, id_nf), drawn):
            full[row.index, : row.length] = part

    # Length first: commit the filler the length distribution is sure of before choosing the answer's tokens.
    log_f = scores.log_filler
    ended = answer_ended(log_f, masked, tables.filler[ids])
    tail = masked & (ended >= slots.tail_threshold[rows][:, None])
    tail_token = torch.where(tables.filler[id_best], id_best, torch.full_like(id_best, tables.pad_id))
    ids = torch.where(tail, tail_token, ids)
    tail_conf = torch.where(tail, p_best, slots.confidence[rows, :width])
    masked = masked & ~tail
    committed_filler = committed_filler | tail

    steps_done = slots.steps_done[rows]
    remaining = masked.sum(-1)
    steps_left = (slots.steps_budget[rows] - steps_done).clamp(min=1)
    min_commits = ((remaining + steps_left - 1) // steps_left).clamp(min=1)
    threshold, candidate_score = slots.threshold[rows], p_nf
    if probe is not None:
        # The learned rule: outside the filler run a candidate passes on the probe's score, not its probability.
        # The score is mapped onto the row's threshold scale, so the filler run keeps its own rule.
        settled = ~masked & ~committed_filler & ~tables.filler[ids]  # the answer's committed tokens
        features = probe_features(scores.certainty, scores.second, log_f, p_best, p_nf, ended, masked, settled,
                                  slots.length[rows], steps_done, slots.single_line[rows])
        scaled = probe.rescale(probe.score(features, id_nf), threshold[:, None])
        candidate_score = torch.where(slots.probe_on[rows][:, None], scaled, p_nf)
    commit, token, conf = commit_confident(
        p_best, id_best, candidate_score, id_nf, tables.filler[id_best], masked, committed_filler,
        threshold, slots.filler_rule[rows], min_commits=min_commits, filler_threshold=slots.filler_threshold[rows],
    )
    if probe is not None:
        conf = torch.where(token == id_best, p_best, p_nf)  # the token's own confidence, whatever decided the commit
    ids = torch.where(commit, token, ids)
    confidences = torch.where(commit, conf, tail_conf)
    masked = masked & ~commit
    filler_rule = slots.filler_rule[rows][:, None]
    committed_filler = committed_filler | (commit & tables.filler[token] & filler_rule)

    # Single line: once a committed token breaks the line, nothing after it matters: close the rest.
    breaks = ~masked & tables.newline[ids]
    breaks[:, 0] = ~masked[:, 0] & slots.first_newline[rows, ids[:, 0]]
    after_break = (breaks.cumsum(-1) - breaks.long()) > 0
    close = after_break & slots.single_line[rows][:, None] & (masked | ~committed_filler)
    ids = torch.where(close, tables.pad_id, ids)
    masked = masked & ~close
    committed_filler = committed_filler | close

    structural = slots.expand_mode[rows] & (
        commit & ((token == (tables.expand_id if tables.expand_id is not None else -1)) | tables.deleting[token])
    ).any(-1)
    done = ~masked.any(-1)
    host_work = structural | (done & slots.refine_pending[rows])
    status = torch.where(host_work, HOST_WORK, torch.where(done, DONE, RUNNING)).to(torch.int8)

    slots.ids[:, :width].index_copy_(0, rows, ids)
    slots.masked[:, :width].index_copy_(0, rows, masked)
    slots.committed_filler[:, :width].index_copy_(0, rows, committed_filler)
    slots.confidence[:, :width].index_copy_(0, rows, confidences)
    slots.steps_done.index_copy_(0, rows, steps_done + 1)
    return status


# -- host work -----------------------------------------------------------------------------------------------


def expand_and_delete(slots: CanvasSlots, tables: VocabTables, slot: int, expansions_left: int,
                      max_length: int) -> tuple[int, int]:
    """DreamOn rules on one slot: a committed expand becomes two masks; end-of-text or delete removes its
    position. Returns the new length and expansions left."""
    n = int(slots.length[slot])
    ids = slots.ids[slot, :n].tolist()
    masked = slots.masked[slot, :n].tolist()
    conf = slots.confidence[slot, :n].tolist()
    deleting = {tables.eos_id} | ({tables.delete_id} if tables.delete_id is not None else set())
    keep_ids, keep_masked, keep_conf = [], [], []
    for t, m, c in zip(ids, masked, conf):
        if not m and t == tables.expand_id and expansions_left > 0 and len(keep_ids) + 2 <= slots.width:
            expansions_left -= 1
            keep_ids += [tables.mask_id, tables.mask_id]
            keep_masked += [True, True]
            keep_conf += [0.0, 0.0]
        elif not m and (t in deleting or t == tables.expand_id):
            continue
        else:
            keep_ids.append(t)
            keep_masked.append(m)
            keep_conf.append(c)
    length = len(keep_ids)
    device = slots.ids.device
    slots.ids[slot].fill_(tables.pad_id)
    slots.masked[slot].fill_(False)
    slots.committed_filler[slot].fill_(True)
    slots.committed_filler[slot, :length] = False
    slots.confidence[slot].zero_()
    if length:
        slots.ids[slot, :length] = torch.tensor(keep_ids, dtype=torch.long, device=device)
        slots.masked[slot, :length] = torch.tensor(keep_masked, dtype=torch.bool, device=device)
        slots.confidence[slot, :length] = torch.tensor(keep_conf, device=device)
    slots.length[slot] = length
    slots.expand_allowed[slot] = expansions_left > 0 and length < max_length
    # More masks appeared: give them steps of their own.
    done = int(slots.steps_done[slot])
    slots.steps_budget[slot] = max(int(slots.steps_budget[slot]), done + sum(keep_masked))
    return length, expansions_left


def start_refinement(slots: CanvasSlots, tables: VocabTables, slot: int, fraction: float = 0.25) -> bool:
    """Draft-and-refine: re-mask the least confident committed tokens of a finished draft; False when none is
    weak enough (the canvas is then done)."""
    slots.refine_pending[slot] = False
    n = int(slots.length[slot])
    ids, conf = slots.ids[slot, :n], slots.confidence[slot, :n]
    content = ~slots.committed_filler[slot, :n] & ~tables.filler[ids]
    if bool(slots.healed[slot]):
        content[0] = False  # the healed token is constrained already
    weak = content & (conf < REFINE_THRESHOLD)
    budget = math.ceil(fraction * n)
    if budget <= 0 or not bool(weak.any()):
        return False
    scores = torch.where(weak, conf, torch.full_like(conf, 2.0))
    chosen = scores.argsort()[: min(budget, int(weak.sum()))]
    slots.ids[slot, chosen] = tables.mask_id
    slots.masked[slot, chosen] = True
    slots.special_allowed[slot] = False
    slots.steps_budget[slot] = int(slots.steps_done[slot]) + REFINE_STEPS
    return True


# -- text ----------------------------------------------------------------------------------------------------


def slot_completion(vocab: Vocabulary, slots: CanvasSlots, slot: int, spec: CanvasSpec,
                    settled_only: bool = False) -> Completion:
    """The text a slot's canvas stands for, its new-token count and each token's confidence span.

    Filler ends the text on a fixed canvas; mask, expand and delete stand for nothing; the healed bytes (typed
    already) are dropped from the first token, which then is not counted as new, and the rest of the cursor's
    word from the end. With `settled_only`, only the left part whose positions are all committed (streaming)."""
    mode, heal = spec.mode, spec.heal
    n = int(slots.length[slot])
    ids = slots.ids[slot, :n].tolist()
    scores = slots.confidence[slot, :n].tolist()
    masked = slots.masked[slot, :n].tolist()
    drop = set(vocab.filler_ids) | {vocab.mask_id}
    drop |= {t for t in (vocab.expand_id, vocab.delete_id) if t is not None}
    pieces: list[tuple[bytes, float]] = []
    for t, p, m in zip(ids, scores, masked):
        if (m and settled_only) or (t in vocab.filler_ids and mode == "filler"):
            break
        if not m and t not in drop:
            pieces.append((vocab.token_bytes[t] if t < len(vocab.token_bytes) else b"", p))
    tokens = len(pieces)
    if heal and pieces:
        first, p = pieces[0]
        pieces[0] = (first[len(heal) :] if first.startswith(heal) else first, p)
        tokens -= 1  # the healed token replaces one the user had typed
    text, spans = text_with_spans(pieces)
    if spec.single_line and "\n" in text:
        text, spans = cut_spans(text, spans, text.index("\n"))
    word_rest = spec.suffix_held.decode("utf-8", errors="ignore")
    if word_rest and not settled_only and text.endswith(word_rest):
        text, spans = cut_spans(text, spans, len(text) - len(word_rest))
    return Completion(text, tokens, spans)
