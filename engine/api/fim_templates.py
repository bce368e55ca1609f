"""Fill-in-the-middle prompt templates of the autoregressive coder families, both ways: `render` writes the prompt a
model of that family was trained on, `parse` reads such a prompt back into prefix, suffix and extra files.

Clients that build the prompt themselves (Zed's `prompt_format`, Continue, Twinny, Tabby) send these on
`/v1/completions`; servers that refuse `suffix` (vLLM) need them rendered client-side. Token strings as the model
cards and tokenizers spell them (Qwen2.5-Coder README and report, StarCoder2 paper, CodeLlama's `<PRE> P <SUF>S <MID>`
infilling format, DeepSeek-Coder README, Mistral's Codestral `[SUFFIX]S[PREFIX]P`). Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FimTemplate:
    """One family's markers. CodeLlama's carry the spaces its infilling format puts beside them; a template with
    `middle == ""` ends on the prefix (suffix first). `file_sep` and `repo_name` mark a repository-level prompt's
    other files; a family without them takes no extra files."""

    name: str
    prefix: str
    suffix: str
    middle: str
    stop: tuple[str, ...]
    suffix_first: bool = False
    repo_name: str = ""
    file_sep: str = ""
    line_end: str = ""  # what follows the repository name and each file's text (Qwen: a line break)

    @property
    def markers(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in (self.prefix, self.suffix, self.middle, self.repo_name, self.file_sep) if m)


TEMPLATES: dict[str, FimTemplate] = {
    template.name: template
    for template in (
        FimTemplate(
            "qwen", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
            stop=("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|fim_pad|>",
                  "<|repo_name|>", "<|file_sep|>", "<|im_start|>", "<|im_end|>"),
            repo_name="<|repo_name|>", file_sep="<|file_sep|>", line_end="\n",
        ),
        FimTemplate(
            "starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>",
            stop=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>", "<repo_name>"),
            repo_name="<repo_name>", file_sep="<file_sep>",
        ),
        FimTemplate("codellama", "<PRE> ", " <SUF>", " <MID>", stop=("<EOT>", "<PRE>", "<SUF>", "<MID>")),
        FimTemplate(
            "deepseek", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>",
            stop=("<｜end▁of▁sentence｜>", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
        ),
        FimTemplate("codestral", "[PREFIX]", "[SUFFIX]", "", stop=("</s>", "[PREFIX]", "[SUFFIX]"), suffix_first=True),
    )
}
BOS_TEXTS = ("<s>", "<｜begin▁of▁sentence｜>")  # some clients write the begin-of-sequence token into the prompt


@dataclass(frozen=True)
class FilePart:
    """Another file of the repository, as a repository-level prompt carries it."""

    path: str
    text: str


@dataclass(frozen=True)
class FimPrompt:
    """What a FIM prompt holds. Text after the middle marker (the start of the middle, already typed) belongs to
    `prefix`: the model continues from there."""

    template: str
    prefix: str
    suffix: str
    files: tuple[FilePart, ...] = ()
    repo_name: str = ""
    path: str = ""  # the current file's path, where the prompt names it


def render(template_name: str, prefix: str, suffix: str, files: Sequence[FilePart] = (), *, repo_name: str = "",
           path: str = "") -> str:
    """The prompt for `template_name`. Raises KeyError for an unknown template and ValueError where the template
    cannot carry what is asked (extra files without a file separator) or a text holds one of its markers."""
    template = TEMPLATES[template_name]
    texts = [prefix, suffix, repo_name, path, *(f.path for f in files), *(f.text for f in files)]
    for marker in template.markers:
        if any(marker in text for text in texts):
            raise ValueError(f"The text holds the {template.name} marker {marker}; it cannot be told apart.")
    if (files or repo_name or path) and not template.file_sep:
        raise ValueError(f"The {template.name} template has no file separator: put other files in the prefix.")
    if any("\n" in text for text in (repo_name, path, *(f.path for f in files))):
        raise ValueError("A repository name or file path cannot hold a line break.")
    head = f"{template.repo_name}{repo_name}{template.line_end}" if repo_name else ""
    # a file with no text adds nothing, and would read back as the current file's path
    head += "".join(f"{template.file_sep}{f.path}\n{f.text}{template.line_end}" for f in files if f.text)
    if path:
        head += f"{template.file_sep}{path}\n"
    if template.suffix_first:
        return f"{head}{template.suffix}{suffix}{template.prefix}{prefix}"
    return f"{head}{template.prefix}{prefix}{template.suffix}{suffix}{template.middle}"


def parse(prompt: str) -> FimPrompt | None:
    """The parts of a prompt that starts (after an optional begin-of-sequence text) like one of TEMPLATES; None
    for any other prompt, which is plain text before the cursor."""
    for bos in BOS_TEXTS:
        if prompt.startswith(bos):
            prompt = prompt[len(bos) :]
            break
    for template in TEMPLATES.values():
        parsed = _parse_with(template, prompt)
        if parsed is not None:
            return parsed
    return None


def _parse_with(template: FimTemplate, prompt: str) -> FimPrompt | None:
    prefix_mark, suffix_mark, middle_mark = (m.strip() for m in (template.prefix, template.suffix, template.middle))
    head, found, body = prompt.partition(suffix_mark if template.suffix_first else prefix_mark)
    if not found or not _is_repo_head(template, head):
        return None
    if template.suffix_first:  # [SUFFIX]S[PREFIX]P
        suffix, found, prefix = body.partition(prefix_mark)
        if not found:
            return None
    else:  # the first suffix marker after the prefix, the last middle marker
        prefix, found, rest = body.partition(suffix_mark)
        suffix, found_middle, typed = rest.rpartition(middle_mark)
        if not found or not found_middle:
            return None
        # CodeLlama's spaces beside its markers are the format's, not the code's (read as well when left out)
        prefix = _drop_end(_drop_start(prefix, template.prefix[len(prefix_mark) :]), template.suffix[: -len(suffix_mark)])
        suffix = _drop_end(suffix, template.middle[: -len(middle_mark)])
        prefix += typed
    files, repo_name, path = _read_repo_head(template, head)
    return FimPrompt(template.name, prefix, suffix, files, repo_name, path)


def _is_repo_head(template: FimTemplate, head: str) -> bool:
    """Whether the text before the first marker is empty or a repository-level section of this template."""
    if not head:
        return True
    if not template.file_sep:
        return False
    return head.startswith(template.file_sep) or bool(template.repo_name and head.startswith(template.repo_name))


def _read_repo_head(template: FimTemplate, head: str) -> tuple[tuple[FilePart, ...], str, str]:
    """Other files, repository name and current path. The last file part is the current file when nothing
    follows its path line (as `render` writes it)."""
    if not head:
        return (), "", ""
    pieces = head.split(template.file_sep)
    repo_name = ""
    if template.repo_name and pieces[0].startswith(template.repo_name):
        repo_name = _drop_end(pieces[0][len(template.repo_name) :], template.line_end)
    parts = [piece.partition("\n") for piece in pieces[1:]]
    path = ""
    if parts and not parts[-1][2]:
        path = parts.pop()[0]
    return tuple(FilePart(name, _drop_end(text, template.line_end)) for name, _, text in parts), repo_name, path


def _drop_start(text: str, start: str) -> str:
    return text[len(start) :] if start and text.startswith(start) else text


def _drop_end(text: str, end: str) -> str:
    return text[: -len(end)] if end and text.endswith(end) else text
