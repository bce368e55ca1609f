"""The engine's next-edit method on a scripted model: one batched scoring forward, the most doubtful span
re-denoised, a proposal only when it is sure and different, silence when nothing is doubtful."""

from __future__ import annotations

from scripted_rename import BEFORE, EDITED, RENAMED, scripted_engine

from mercury_lsp.engine.next_edit import (
    NextEditEngine,
    NextEditQuery,
    NextEditSettings,
    candidate_spans,
    without_suffix_overlap,
)

EDITED_LINE = (EDITED.index("    item"), EDITED.index("\n    return") + 1)


def query(text: str = EDITED) -> NextEditQuery:
    return NextEditQuery(text, (0, len(text)), EDITED_LINE)


def test_a_rename_on_one_line_proposes_the_same_rename_on_another() -> None:
    result = NextEditEngine(scripted_engine()).propose(query())
    proposal = result.proposal
    assert proposal is not None
    assert EDITED[: proposal.start] + proposal.text + EDITED[proposal.end :] == RENAMED
    assert proposal.start > EDITED_LINE[1]  # on the line after the edit, never on the edited one
    assert proposal.confidence >= NextEditSettings().min_confidence


def test_all_candidates_are_scored_in_one_batched_forward() -> None:
    engine = scripted_engine()
    scored = NextEditEngine(engine).score(query(), NextEditSettings())
    assert engine.model.window_calls == [len(engine.vocab.encode(EDITED))]  # one call, one window width
    assert len(scored) > 3
    assert EDITED[scored[0].chars[0] : scored[0].chars[1]] == " result"  # the most doubtful: the stale name
    assert [c.doubt for c in scored] == sorted((c.doubt for c in scored), reverse=True)


def test_nothing_is_proposed_when_nothing_is_doubtful() -> None:
    result = NextEditEngine(scripted_engine(known=EDITED)).propose(query())
    assert result.proposal is None
    assert result.rewritten == []  # not even a rewrite was tried
    assert all(c.doubt < NextEditSettings().min_doubt for c in result.candidates)


def test_an_unsure_rewrite_is_not_proposed() -> None:
    engine = scripted_engine(p=0.3)  # the renamed file is the favourite everywhere, but weakly
    result = NextEditEngine(engine).propose(query(), NextEditSettings(min_confidence=0.5))
    assert result.proposal is None
    assert result.rewritten  # the doubtful span was re-denoised, and its rewrite fell short of the bar
    sure = NextEditEngine(scripted_engine(p=0.3)).propose(query(), NextEditSettings(min_confidence=0.2))
    assert sure.proposal is not None and sure.proposal.text == " item"


def test_candidates_are_identifiers_and_lines_outside_the_edit() -> None:
    vocab = scripted_engine().vocab
    encoding = vocab.tokenizer.encode(EDITED, add_special_tokens=False)
    found = candidate_spans(EDITED, 0, list(encoding.offsets), (0, len(EDITED)), EDITED_LINE)
    texts = {(c.kind, EDITED[c.chars[0] : c.chars[1]].strip()) for c in found}
    assert ("identifier", "result") in texts and ("line", "return result") in texts
    assert ("identifier", "add") in texts
    assert not any(c.chars[0] < EDITED_LINE[1] and EDITED_LINE[0] < c.chars[1] for c in found)
    region = (EDITED.index("    return"), len(EDITED))
    assert all(region[0] <= c.chars[0] for c in candidate_spans(EDITED, 0, list(encoding.offsets), region, None))


def test_a_rewrite_that_runs_on_into_the_suffix_is_cut_back() -> None:
    assert without_suffix_overlap(" total += 1", " += 1\n") == " total"
    assert without_suffix_overlap(" total)", ")\n") == " total"
    assert without_suffix_overlap(" total", "\n") == " total"


def test_before_the_edit_the_scripted_file_differs_only_by_the_rename() -> None:
    assert BEFORE.replace("result", "item") == RENAMED
