"""An eager CPU step scores only the masked positions, packed [M, V], a chunk of positions at a time; the sampler must
commit exactly what it commits from whole canvases [B, C, V] scored at once, whatever the committed positions hold."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from mercury_lsp.engine import sampler
from mercury_lsp.engine.commit_probe import FEATURES, CommitProbe
from mercury_lsp.engine.sampler import (
    CanvasSlots,
    CanvasSpec,
    SampledRow,
    VocabTables,
    denoise,
    reset_slot,
)
from mercury_lsp.engine.vocab import Vocabulary

from checkpoints import make_tokenizer

WIDTH = 12


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    tokenizer = make_tokenizer(expand=True)
    ids = tokenizer.get_vocab()
    specials = ("<|mask|>", "<|endoftext|>", "<|pad|>", "<|expand|>", "<|delete|>")
    return Vocabulary(tokenizer=tokenizer, mask_id=ids["<|mask|>"], eos_id=ids["<|endoftext|>"],
                      pad_id=ids["<|pad|>"], special_ids=frozenset(ids[t] for t in specials),
                      expand_id=ids["<|expand|>"], delete_id=ids["<|delete|>"])


def random_probe(generator: torch.Generator) -> CommitProbe:
    features, hidden = len(FEATURES), 6
    return CommitProbe(torch.zeros(features), torch.ones(features), torch.randn(hidden, features, generator=generator),
                       torch.randn(hidden, generator=generator), torch.randn(hidden, generator=generator),
                       torch.zeros(1), 0.5)


def random_canvases(vocab: Vocabulary, rows: int, generator: torch.Generator) -> tuple[CanvasSlots, VocabTables]:
    """Canvases of every kind (filler and expand, single-line, healed, probe, length first), some positions
    committed already."""
    tables = VocabTables(vocab, vocab.size, torch.device("cpu"))
    slots = CanvasSlots.allocate(rows + 1, WIDTH, vocab.size, torch.device("cpu"))
    for slot in range(rows):
        length = int(torch.randint(3, WIDTH + 1, (1,), generator=generator))
        healed = slot % 3 == 0
        spec = CanvasSpec(
            length=length, max_length=WIDTH, mode="expand" if slot % 4 == 3 else "filler",
            threshold=float(torch.rand(1, generator=generator)) * 0.5 + 0.3, steps=length, single_line=slot % 2 == 0,
            heal=b"a" if healed else b"", first_allowed=torch.randperm(vocab.size, generator=generator)[:20]
            if healed else None, refine=slot % 5 == 4, tail_threshold=0.7 if slot % 2 else None, probe=slot % 3 != 2,
        )
        reset_slot(slots, tables, vocab, slot, spec)
        committed = torch.rand(length, generator=generator) < 0.3
        committed[0] = committed[0] and not healed  # a healed row keeps its first position masked
        slots.ids[slot, :length][committed] = torch.randint(0, vocab.size, (int(committed.sum()),),
                                                            generator=generator)
        slots.masked[slot, :length][committed] = False
    return slots, tables


@pytest.mark.parametrize("measure", ["probability", "margin", "entropy"])
@pytest.mark.parametrize("with_probe", [False, True])
def test_packed_chunked_steps_commit_what_whole_canvases_commit(vocab, monkeypatch, measure, with_probe):
    generator = torch.Generator().manual_seed(len(measure) * 2 + with_probe)
    rows = 5
    whole, tables = random_canvases(vocab, rows, generator)
    packed = copy.deepcopy(whole)
    probe = random_probe(generator) if with_probe else None
    order = torch.tensor([3, 0, 4, 1, 2])  # rows in any order of slots
    for step in range(WIDTH):
        masked = whole.masked[order, :WIDTH].clone()
        if not masked.any():
            break
        logits = torch.randn(rows, WIDTH, vocab.size, generator=generator) * 4
        garbage = logits.clone()
        garbage[~masked] = torch.randn(int((~masked).sum()), vocab.size, generator=generator) * 9
        seed = 100 + step
        sampled = (SampledRow(index=1, temperature=0.8, generator=torch.Generator().manual_seed(seed),
                              length=int(whole.length[order[1]])),)
        monkeypatch.setattr(sampler, "SCORE_CHUNK_BYTES", 2**60)  # one chunk: every position at once
        status_whole = denoise(whole, tables, order, garbage, measure, sampled, probe)
        monkeypatch.setattr(sampler, "SCORE_CHUNK_BYTES", 0)
        monkeypatch.setattr(sampler, "SCORE_CHUNK_MIN", 3)
        sampled = (dataclasses.replace(sampled[0], generator=torch.Generator().manual_seed(seed)),)
        unpacked = logits.clone()
        unpacked[~masked] = 0.0  # what the sampled row draws from where nothing is computed
        status_packed = denoise(packed, tables, order, unpacked[masked], measure, sampled, probe, positions=masked)
        assert status_packed.tolist() == status_whole.tolist()
        for field in dataclasses.fields(CanvasSlots):
            assert torch.equal(getattr(packed, field.name), getattr(whole, field.name)), (step, field.name)
        # Both start the next step from the same state; committed positions differed between the two runs'
        # logits (garbage vs zeros) everywhere but in the sampled row, which reads them.
        whole = copy.deepcopy(packed)
    assert step >= 2  # several steps compared, the later ones with committed positions in every row


def test_a_step_with_no_masked_position_scores_nothing_and_changes_nothing(vocab):
    slots, tables = random_canvases(vocab, 2, torch.Generator().manual_seed(1))
    slots.masked.fill_(False)
    before = copy.deepcopy(slots)
    rows = torch.tensor([0, 1])
    positions = slots.masked[rows, :WIDTH].clone()
    denoise(slots, tables, rows, torch.zeros(0, vocab.size), positions=positions)
    for name in ("ids", "masked", "confidence"):
        assert torch.equal(getattr(slots, name), getattr(before, name))
