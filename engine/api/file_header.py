"""The comment line that names a request's file in its header (and each extra-context file): the layout the models
are trained on, written by the language server and by the routes that receive file names (llama.cpp's `input_extra`,
a FIM prompt's file parts)."""

from __future__ import annotations

from pathlib import PurePosixPath

MAX_PATH_CHARS = 1_000  # the engine refuses headers over 2,000 characters

_COMMENT = {
    "c": "//", "cpp": "//", "csharp": "//", "go": "//", "java": "//", "javascript": "//",
    "javascriptreact": "//", "typescript": "//", "typescriptreact": "//", "rust": "//",
    "kotlin": "//", "swift": "//", "scala": "//", "dart": "//", "php": "//", "zig": "//",
    "python": "#", "ruby": "#", "shellscript": "#", "perl": "#", "r": "#", "yaml": "#",
    "toml": "#", "elixir": "#", "julia": "#", "dockerfile": "#", "makefile": "#",
    "lua": "--", "sql": "--", "haskell": "--",
}
_EXTENSION_LANGUAGE = {
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".cs": "csharp", ".go": "go",
    ".java": "java", ".js": "javascript", ".jsx": "javascriptreact", ".ts": "typescript",
    ".tsx": "typescriptreact", ".rs": "rust", ".kt": "kotlin", ".swift": "swift", ".scala": "scala",
    ".dart": "dart", ".php": "php", ".zig": "zig", ".py": "python", ".rb": "ruby", ".sh": "shellscript",
    ".pl": "perl", ".r": "r", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ex": "elixir",
    ".exs": "elixir", ".jl": "julia", ".lua": "lua", ".sql": "sql", ".hs": "haskell",
}


def file_header(path: str, language_id: str) -> str:
    """A comment line naming the file, so the model knows its path and language."""
    marker = _COMMENT.get(language_id, "//")
    return f"{marker} {path[-MAX_PATH_CHARS:]}\n"


def language_of(path: str) -> str:
    """The editor's language id for a file name, from its extension ("" when unknown: the header comments with //)."""
    name = PurePosixPath(path.replace("\\", "/")).name
    if name in ("Dockerfile", "Makefile"):
        return name.lower()
    return _EXTENSION_LANGUAGE.get(PurePosixPath(name).suffix.lower(), "")


def extra_file(path: str, text: str) -> str:
    """One file of extra context as the engine lays it: its header line, then its text ending in a line break."""
    return file_header(path, language_of(path)) + text + ("" if text.endswith("\n") else "\n")
