"""The typing replay's own rules: where the typist pauses, what one key types, how much a word-by-word accept
takes, and that functions come from the held-out side of the corpus split."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from typing_replay import heldout_tasks, keystroke, pause_points, word_accept  # noqa: E402

from mercury_lsp.engine.training.corpus import in_heldout  # noqa: E402


def test_pauses_after_words_and_at_line_starts() -> None:
    target = "def f(x):\n    return x"
    assert sorted(pause_points(target)) == [0, 3, 5, 7, 14, 20]
    assert target[14:] == "return x"


def test_enter_brings_the_next_lines_indentation() -> None:
    target = "if x:\n        y = 1"
    assert keystroke(target, 5) == "\n        "
    assert keystroke(target, 0) == "i"


def test_word_by_word_accepts_whole_right_words_only() -> None:
    assert word_accept("total += item", "total -= item") == 6  # "total " then a wrong operator
    assert word_accept("totals", "total") == 0  # right characters, but half a word
    assert word_accept("(x)", "(y)") == 0  # no whole word right
    assert word_accept("x.append(y)", "x.append(z)") == 9
    assert word_accept("", "anything") == 0


def test_functions_come_from_held_out_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    body = "def f(a):\n    b = a + 1\n    c = b * 2\n    return c\n"
    for index in range(200):
        path = root / f"mod{index}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"X = {index}\n\n\n" + body.replace("f(", f"f{index}("))
    tasks = heldout_tasks(3, seed=0, roots=[root])
    assert tasks and all(in_heldout(task.key, 0.02) for task in tasks)
    for task in tasks:
        assert task.document[:task.at] + task.target + task.document[task.at:] == (root / task.key).read_text()
