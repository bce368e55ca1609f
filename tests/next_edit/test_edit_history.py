"""The language server's per-document edit history: hunks, merging, bounds, the unified diffs it prints."""

from __future__ import annotations

from mercury_lsp.edit_history import EditHistories, EditHistory, Hunk, line_hunk


def test_a_rename_prints_as_a_one_line_unified_diff() -> None:
    history = EditHistory()
    history.record(5, ["def flag(b, row, col):"], ["def flag(board, row, col):"], now=0.0)
    assert history.hunks(0.0)[0].unified("/src/solver.py") == (
        "--- /src/solver.py\n+++ /src/solver.py\n@@ -6,1 +6,1 @@\n"
        "-def flag(b, row, col):\n+def flag(board, row, col):\n"
    )


def test_insertions_and_deletions_number_lines_like_diff() -> None:
    assert Hunk(3, [], ["x = 1"], 0.0).unified("f").splitlines()[2] == "@@ -3,0 +4,1 @@"
    assert Hunk(3, ["x = 1"], [], 0.0).unified("f").splitlines()[2] == "@@ -4,1 +3,0 @@"


def test_keystrokes_on_the_same_line_merge_into_one_hunk() -> None:
    history = EditHistory()
    history.record(2, ["    count = 0"], ["    coun = 0"], now=0.0)
    history.record(2, ["    coun = 0"], ["    cou = 0"], now=0.5)
    history.record(2, ["    cou = 0"], ["    cout = 0"], now=1.0)
    history.record(2, ["    cout = 0"], ["    total = 0"], now=1.5)  # (several keystrokes, shortened)
    [hunk] = history.hunks(1.5)
    assert (hunk.line, hunk.removed, hunk.added) == (2, ["    count = 0"], ["    total = 0"])


def test_typing_then_undoing_leaves_nothing() -> None:
    history = EditHistory()
    history.record(0, ["a = 1"], ["a = 12"], now=0.0)
    history.record(0, ["a = 12"], ["a = 1"], now=0.1)
    assert history.hunks(0.1) == []


def test_a_pause_or_another_place_starts_a_new_hunk() -> None:
    history = EditHistory()
    history.record(0, ["a = 1"], ["a = 2"], now=0.0)
    history.record(0, ["a = 2"], ["a = 3"], now=10.0)  # after a pause
    history.record(7, ["b = 1"], ["b = 2"], now=10.5)  # elsewhere
    assert [(h.line, h.removed, h.added) for h in history.hunks(10.5)] == [
        (0, ["a = 1"], ["a = 2"]), (0, ["a = 2"], ["a = 3"]), (7, ["b = 1"], ["b = 2"]),
    ]


def test_a_new_line_typed_inside_a_hunk_joins_it() -> None:
    history = EditHistory()
    history.record(4, ["    x = 1"], ["    x = 1", ""], now=0.0)  # Enter at the end of line 4
    history.record(5, [""], ["    y = 2"], now=0.5)
    [hunk] = history.hunks(0.5)
    assert (hunk.line, hunk.removed, hunk.added) == (5, [], ["    y = 2"])


def test_the_history_is_bounded_in_count_age_and_size() -> None:
    history = EditHistory(max_edits=3, max_age_s=60.0, max_chars=200)
    for i in range(5):
        history.record(10 * i, [f"line {i}"], [f"line {i}!"], now=float(10 * i))
    assert [h.line for h in history.hunks(40.0)] == [20, 30, 40]
    assert [h.line for h in history.hunks(85.0)] == [30, 40]  # 20 is now 65 s old
    history.record(100, ["x"], ["y" * 500], now=86.0)  # a paste larger than the whole budget
    assert all(h.chars <= 200 for h in history.hunks(86.0))


def test_line_hunk_keeps_only_what_changed() -> None:
    assert line_hunk(["a", "b", "c"], ["a", "B", "c"]) == (1, ["b"], ["B"])
    assert line_hunk(["a", "b"], ["a", "b"]) is None
    assert line_hunk(["a", "a"], ["a", "a", "a"]) == (2, [], ["a"])


def test_histories_are_per_document_and_dropped_on_close() -> None:
    histories = EditHistories()
    histories.record("file:///a.py", 0, ["x = 1"], ["y = 1"], now=0.0)
    histories.record("file:///b.py", 0, ["p"], ["q"], now=0.0)
    assert "-x = 1\n+y = 1\n" in histories.unified("file:///a.py", "a.py", 0.0)
    histories.forget("file:///a.py")
    assert histories.unified("file:///a.py", "a.py", 0.0) == ""
    assert len(histories.hunks("file:///b.py", 0.0)) == 1
