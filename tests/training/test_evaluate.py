"""The evaluation: holes from held-out files, scored with the real engine; the eval command end to end."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from mercury_lsp.engine.checkpoint import load_checkpoint
from mercury_lsp.engine.training.corpus import SourceFile
from mercury_lsp.engine.training.evaluate import (
    EvalReport,
    Hole,
    Outcome,
    evaluate_model,
    format_table,
    heldout_holes,
    parses,
    punch_hole,
)

from corpus_sample import MODULES, write_modules

FILES = [SourceFile(key, Path(key), text) for key, text in MODULES.items()]
ENGINE_CLI = [sys.executable, "-c", "import sys; from mercury_lsp.engine.cli import main; sys.exit(main())"]


def test_holes_are_seeded_and_put_back_give_the_file() -> None:
    holes = heldout_holes(12, 6, seed=3, files=FILES)
    assert holes == heldout_holes(12, 6, seed=3, files=FILES)
    assert [h.kind for h in holes] == ["single"] * 12 + ["multi"] * 6
    texts = {f.key: f.text for f in FILES}
    for hole in holes:
        assert hole.prefix + hole.truth + hole.suffix == texts[hole.key]
        if hole.kind == "single":
            assert "\n" not in hole.truth and hole.suffix[:1] in ("\n", "")
        else:
            assert 2 <= sum(1 for line in hole.truth.split("\n") if line.strip()) <= 4


def test_files_that_do_not_parse_give_no_holes() -> None:
    broken = SourceFile("broken.py", Path("broken.py"), "def f(:\n    pass\n" * 5)
    assert not parses(broken.text)
    assert heldout_holes(5, 5, files=[broken]) == []
    assert punch_hole(SourceFile("short.py", Path("short.py"), "x = 1\n"), "single", random.Random(0)) is None


def test_scores_and_table(tiny_checkpoint: Path) -> None:
    loaded = load_checkpoint(tiny_checkpoint, device="cpu")
    holes = heldout_holes(4, 2, seed=0, files=FILES)
    report = evaluate_model(loaded, holes)
    summary = report.summary()
    assert summary["single"]["holes"] == 4 and summary["multi"]["holes"] == 2
    for row in summary.values():
        assert 0 <= row["exact_match"] <= 1 and 0 <= row["compiles"] <= 1
        assert 0 < row["p50_ms"] <= row["p90_ms"]
    table = format_table(report)
    assert table.count("\n") == 3 and "single-line" in table and "multi-line" in table


def test_exact_match_and_parse_are_judged_on_the_filled_file() -> None:
    hole = Hole("m.py", "single", "def f():\n    return ", "\n", "1")
    good = Outcome(hole, "1", exact=True, compiles=parses(hole.prefix + "1" + hole.suffix), ms=5.0)
    bad = Outcome(hole, "(", exact=False, compiles=parses(hole.prefix + "(" + hole.suffix), ms=7.0)
    summary = EvalReport([good, bad]).summary()["single"]
    assert summary["exact_match"] == 0.5 and summary["compiles"] == 0.5


def test_eval_command(tmp_path: Path, tiny_checkpoint: Path) -> None:
    # Enough files that the 2 % held-out split holds some of them.
    modules = {f"pkg/module_{i}.py": text for i in range(60) for text in [MODULES["text/words.py"] + f"\nN = {i}\n"]}
    root = write_modules(tmp_path / "site", modules)
    command = [*ENGINE_CLI, "eval", "--model", str(tiny_checkpoint), "--root", str(root), "--single", "3", "--multi", "2",
               "--device", "cpu", "--json", "--examples", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[0])
    assert summary["single"]["holes"] == 3 and summary["multi"]["holes"] == 2
    assert "truth:" in done.stdout

    missing = subprocess.run([*command[:4], str(tmp_path / "nope"), *command[5:]], capture_output=True, text=True)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
