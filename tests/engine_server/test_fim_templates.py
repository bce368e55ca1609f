"""FIM templates both ways: each family's exact prompt, and parse(render(...)) giving back what went in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mercury_lsp.engine.api.fim_templates import TEMPLATES, FilePart, FimPrompt, parse, render

# The shapes as the model cards write them (see the module's docstring for the sources).
EXACT = {
    "qwen": "<|fim_prefix|>def f(<|fim_suffix|>)\n<|fim_middle|>",
    "starcoder": "<fim_prefix>def f(<fim_suffix>)\n<fim_middle>",
    "codellama": "<PRE> def f( <SUF>)\n <MID>",
    "deepseek": "<｜fim▁begin｜>def f(<｜fim▁hole｜>)\n<｜fim▁end｜>",
    "codestral": "[SUFFIX])\n[PREFIX]def f(",
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_each_template_writes_its_family_s_prompt_and_reads_it_back(name: str) -> None:
    assert render(name, "def f(", ")\n") == EXACT[name]
    assert parse(EXACT[name]) == FimPrompt(name, "def f(", ")\n")


def test_every_template_names_its_end_of_text_among_its_stop_strings() -> None:
    ends = {"qwen": "<|endoftext|>", "starcoder": "<|endoftext|>", "codellama": "<EOT>",
            "deepseek": "<｜end▁of▁sentence｜>", "codestral": "</s>"}
    assert set(TEMPLATES) == set(ends)
    for name, end in ends.items():
        assert end in TEMPLATES[name].stop


def test_a_qwen_repository_prompt_gives_its_files_to_extra_context() -> None:
    prompt = ("<|repo_name|>shop\n<|file_sep|>lib/tax.py\nRATE = 0.2\n<|file_sep|>lib/cart.py\n"
              "<|fim_prefix|>def total(x):\n    return x * <|fim_suffix|>\n<|fim_middle|>")
    assert parse(prompt) == FimPrompt("qwen", "def total(x):\n    return x * ", "\n",
                                      (FilePart("lib/tax.py", "RATE = 0.2"),), "shop", "lib/cart.py")
    assert render("qwen", "def total(x):\n    return x * ", "\n", [FilePart("lib/tax.py", "RATE = 0.2")],
                  repo_name="shop", path="lib/cart.py") == prompt


def test_a_starcoder2_repository_prompt_reads_the_same() -> None:
    prompt = "<repo_name>shop<file_sep>lib/tax.py\nRATE = 0.2\n<file_sep>lib/cart.py\n<fim_prefix>a<fim_suffix>b<fim_middle>"
    assert parse(prompt) == FimPrompt("starcoder", "a", "b", (FilePart("lib/tax.py", "RATE = 0.2\n"),), "shop",
                                      "lib/cart.py")


def test_text_after_the_middle_marker_is_the_start_of_the_middle() -> None:
    assert parse("<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>fo") == FimPrompt("qwen", "x = fo", "\n")


def test_codellama_is_read_with_or_without_the_spaces_beside_its_markers() -> None:
    assert parse("<s><PRE>a<SUF>b<MID>") == FimPrompt("codellama", "a", "b")
    assert parse("<PRE>  a  <SUF>b  <MID>") == FimPrompt("codellama", " a ", "b ")


@pytest.mark.parametrize("prompt", [
    "def f(x):\n    return x",  # plain text
    "# a note about <|fim_prefix|> tokens\n<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>",  # not at the start
    "<|fim_prefix|>a<|fim_middle|>",  # no suffix marker
    "<fim_prefix>a<fim_suffix>b",  # no middle marker
    "[SUFFIX]only a suffix",
    "",
])
def test_other_prompts_are_plain_text(prompt: str) -> None:
    assert parse(prompt) is None


def test_render_refuses_what_it_cannot_write() -> None:
    with pytest.raises(ValueError, match="file separator"):
        render("codellama", "a", "b", [FilePart("x.py", "1")])
    with pytest.raises(ValueError, match="marker"):
        render("qwen", "a<|fim_middle|>", "b")
    with pytest.raises(ValueError, match="line break"):
        render("qwen", "a", "b", path="x\ny")
    with pytest.raises(KeyError):
        render("gpt", "a", "b")


code = st.text(alphabet=st.sampled_from("ab \n\t<>|_[]()#"), max_size=30)
paths = st.text(alphabet=st.sampled_from("ab/._"), max_size=8)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(TEMPLATES)), prefix=code, suffix=code,
       files=st.lists(st.builds(FilePart, paths, code), max_size=3), repo_name=paths, path=paths)
def test_parse_gives_back_what_render_wrote(name: str, prefix: str, suffix: str, files: list[FilePart],
                                            repo_name: str, path: str) -> None:
    template = TEMPLATES[name]
    if not template.file_sep:
        files, repo_name, path = [], "", ""
    if not template.repo_name:
        repo_name = ""
    try:
        prompt = render(name, prefix, suffix, files, repo_name=repo_name, path=path)
    except ValueError:  # a text holding a marker: nothing to read back
        return
    assert parse(prompt) == FimPrompt(name, prefix, suffix, tuple(f for f in files if f.text), repo_name, path)
