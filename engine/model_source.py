"""Where a model comes from: a folder on disk, a short name from our catalogue, or a hub id `org/name[@revision]`
fetched through huggingface_hub into the hub's own cache ($HF_HOME), only the files the engine reads.

huggingface_hub does the work: $HF_TOKEN for gated repos, $HF_HUB_OFFLINE (and a hub it cannot reach) served
from the cache, a dropped connection resumed with a Range request, each file written under a temporary name and
renamed whole, and a cached snapshot missing files refused. Here every way it can fail becomes one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mercury_lsp.engine import catalogue
from mercury_lsp.engine.errors import CheckpointError
from mercury_lsp.models import BUNDLED_MODEL

# What the loader reads, and nothing else: a 7B repository also holds pickles, ONNX and GGUF copies.
ALLOW_PATTERNS = ["config.json", "tokenizer.json", "tokenizer_config.json", "*.safetensors",
                  "model.safetensors.index.json"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_REVISION = re.compile(r"[\w./-]+")

# Called with a line of text and the fraction done (None when unknown) while a download runs.
ProgressListener = Callable[[str, "float | None"], None]


@dataclass(frozen=True)
class ModelSource:
    """A folder, or a hub repository at a revision (a branch, a tag or a commit; None: the default branch)."""

    folder: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def spec(self) -> str:
        """What names this source on a command line, the same for the same model."""
        if self.folder is not None:
            return str(self.folder)
        return f"{self.repo_id}@{self.revision}" if self.revision else str(self.repo_id)

    @property
    def name(self) -> str:
        return self.folder.name if self.folder is not None else str(self.repo_id)


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder on disk and, for a hub model, the commit it holds."""

    folder: Path
    source: ModelSource
    commit: str | None = None


def parse_model(spec: str | None) -> ModelSource:
    """The source a --model value names: empty is the bundled model; a path that exists (or starts with /, ., ~)
    is a folder; a catalogue short name or `org/name[@revision]` is a hub repository."""
    if not spec:
        return ModelSource(folder=BUNDLED_MODEL)
    entry = catalogue.find(spec)
    if entry is not None:
        return ModelSource(folder=BUNDLED_MODEL) if entry.hub_id is None else ModelSource(repo_id=entry.hub_id)
    path = Path(spec).expanduser()
    if spec.startswith(("/", ".", "~")) or path.exists():
        return ModelSource(folder=path.resolve())
    repo_id, _, revision = spec.partition("@")
    if _HUB_ID.fullmatch(repo_id) and (not revision or _REVISION.fullmatch(revision)):
        return ModelSource(repo_id=repo_id, revision=revision or None)
    return ModelSource(folder=path.resolve())


def fetch(source: ModelSource, progress: ProgressListener | None = None) -> ResolvedModel:
    """The model's folder on disk, downloading what the cache lacks; CheckpointError with one sentence when that
    cannot be done."""
    if source.folder is not None:
        return ResolvedModel(source.folder, source)
    import huggingface_hub
    from huggingface_hub import errors

    repo = source.repo_id
    assert repo is not None
    try:
        folder = Path(huggingface_hub.snapshot_download(
            repo, revision=source.revision, allow_patterns=ALLOW_PATTERNS,
            tqdm_class=_progress_class(progress) if progress is not None else None,
        ))
    except errors.GatedRepoError:
        raise CheckpointError(
            f"{repo} is gated: accept its terms on the hub's model page, then set HF_TOKEN to a token of that "
            "account.") from None
    except errors.RepositoryNotFoundError:
        raise CheckpointError(
            f"there is no model {repo} on the hub (nor a folder of that name here); check the id "
            "(`mercury-engine models` lists the ones we know), or set HF_TOKEN if it is private.") from None
    except errors.RevisionNotFoundError:
        raise CheckpointError(f"{repo} has no revision {source.revision!r} on the hub.") from None
    except errors.IncompleteSnapshotError:
        raise CheckpointError(
            f"the cached copy of {repo} is incomplete (a download was interrupted) and the hub cannot be reached; "
            f"run `mercury-engine pull {source.spec}` with a network.") from None
    except errors.LocalEntryNotFoundError:
        raise CheckpointError(
            f"{repo} is not in the cache ({huggingface_hub.constants.HF_HUB_CACHE}) and the hub cannot be reached "
            "(no network, or HF_HUB_OFFLINE is set); download it once with a network.") from None
    except errors.HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "no"
        raise CheckpointError(f"the hub answered HTTP {status} while fetching {repo}; try again later.") from None
    except OSError as error:
        raise CheckpointError(f"downloading {repo} failed ({error.strerror or error}); nothing half-written is "
                              "kept, so running the same command again resumes cleanly.") from None
    commit = folder.name
    _check_files(folder, repo, commit)
    return ResolvedModel(folder, source, commit)


def _check_files(folder: Path, repo: str, commit: str) -> None:
    """A repository without safetensors weights or without tokenizer.json gets one sentence naming what it has
    instead (the hub's file list is cached beside the snapshot)."""
    from huggingface_hub import errors, get_cached_repo_tree

    try:
        files = [f.path for f in get_cached_repo_tree(repo, revision=commit)]
    except errors.CachedRepoTreeNotFoundError:
        files = []
    if not any(folder.glob("*.safetensors")):
        pickles = [name for name in files if name.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise CheckpointError(
                f"{repo} has no safetensors weights, only pickle files ({', '.join(sorted(pickles)[:3])}), which "
                "the engine does not load (unpickling runs code); use a safetensors copy of the model.")
        raise CheckpointError(f"{repo} has no safetensors weights (model.safetensors or shards) for the engine.")
    if not (folder / "tokenizer.json").exists() and "vocab.json" in files:
        raise CheckpointError(
            f"{repo} ships its tokenizer as vocab.json + merges.txt, not the tokenizer.json the engine reads; save "
            f"one into a folder with transformers (AutoTokenizer.from_pretrained('{repo}').save_pretrained(DIR), "
            "then copy the snapshot's other files there) and pass --model DIR.")


def _progress_class(listener: ProgressListener) -> type:
    """huggingface_hub's own progress bar (drawn on a terminal only) that also passes the bytes written so far
    to `listener`."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Reported(hub_tqdm):
        def __init__(self, *args, name: str | None = None, **kwargs) -> None:
            kwargs.setdefault("disable", None)  # drawn on a terminal, not into a log file
            super().__init__(*args, name=name, **kwargs)
            self._reports = name == "huggingface_hub.snapshot_download"  # the bytes written, summed over files
            self._written = kwargs.get("initial", 0)

        def update(self, n: float | None = 1) -> bool | None:
            if self._reports:
                self._written += n or 0
                total = self.total or 0
                listener(f"{_size(self._written)} of {_size(total) if total else 'an unknown size'}",
                         min(self._written / total, 1.0) if total else None)
            return super().update(n)

    return Reported


def _size(count: float) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"
