"""Corpus collection: benchmark and repository files left out, duplicates dropped, a stable split by file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mercury_lsp.engine.training.corpus import collect_corpus, in_heldout, is_benchmark_path

from corpus_sample import MODULES, write_modules


def test_benchmark_paths_are_recognised() -> None:
    assert is_benchmark_path("human_eval/execution.py")
    assert is_benchmark_path("evalplus/data/humaneval.py")
    assert is_benchmark_path("bigcode_eval/tasks/mbpp.py")
    assert is_benchmark_path("ds1000/run.py")
    assert is_benchmark_path("lm-eval/tasks.py")
    assert not is_benchmark_path("json/decoder.py")
    assert not is_benchmark_path("email/mime/text.py")


def test_exclusions_duplicates_and_split(tmp_path: Path) -> None:
    root = write_modules(tmp_path / "site", MODULES)
    write_modules(root, {
        "human_eval/data.py": "def candidate():\n    return 1\n",
        "evalplus/evaluate.py": "def run():\n    pass\n",
        "mbpp.py": "TASKS = []\n",
        "copy_of_points.py": MODULES["geometry/points.py"],
        "empty.py": "\n\n",
        "table.py": "X = [" + "1, " * 5000 + "]\n",
    })
    repo = tmp_path / "repo"
    write_modules(repo, {"ours.py": "def our_own_code():\n    return 'mercury'\n"})
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    write_modules(root, {"vendored_ours.py": "def our_own_code():\n    return 'mercury'\n"})

    corpus = collect_corpus([root], heldout_fraction=0.0, exclude_repo=repo)
    keys = sorted(f.key for f in corpus.train)
    assert keys == sorted(["copy_of_points.py", "geometry/__init__.py", "text/lines.py", "text/words.py"]) or keys == sorted(
        ["geometry/points.py", "geometry/__init__.py", "text/lines.py", "text/words.py"]
    )
    assert corpus.skipped == {"benchmark": 3, "duplicate": 1, "empty": 1, "long lines": 1, "repository": 1}
    assert corpus.heldout == []


def test_heldout_split_is_by_file_and_stable() -> None:
    keys = [f"pkg/module_{i}.py" for i in range(2000)]
    held = [k for k in keys if in_heldout(k, 0.1)]
    assert 120 < len(held) < 280
    assert held == [k for k in keys if in_heldout(k, 0.1)]
    assert not any(in_heldout(k, 0.0) for k in keys)
