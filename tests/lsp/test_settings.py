"""The settings model: camelCase keys, defaults, one sentence per bad value, and the files generated from it."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from mercury_lsp import settings_artifacts
from mercury_lsp.settings import SCHEMAS, Settings, json_schema, mercury_section, parse_settings


def test_defaults_match_the_contract() -> None:
    settings, problems = parse_settings({})
    assert problems == []
    assert settings == Settings()
    assert (settings.prefix_tokens, settings.suffix_tokens, settings.max_tokens) == (1024, 256, 64)
    assert settings.backend == "mercury" and settings.engine_url is None and settings.auto_start
    assert settings.trigger_kinds == ("automatic", "invoked")
    # Tuned with bench/typing_replay.py on the bundled model (bench/RESULTS.md).
    assert (settings.min_confidence, settings.max_lines) == (0.6, 1)
    assert settings.language_enabled("python")


def test_camel_case_keys_are_read() -> None:
    settings, problems = parse_settings(
        {
            "engineUrl": "http://127.0.0.1:9999",
            "backend": "openai",
            "remoteModel": "m",
            "prefixTokens": 10,
            "enabledLanguages": ["python"],
            "threshold": 1,
            "minConfidence": 0.25,
            "maxLines": 1,
            "triggerKinds": ["invoked"],
            "disableInComments": True,
            "steps": None,
            "debounceMs": 20,
            "debounceMaxMs": 10,
        }
    )
    assert problems == []
    assert settings.engine_url == "http://127.0.0.1:9999" and settings.backend == "openai"
    assert settings.prefix_tokens == 10 and settings.threshold == 1.0 and isinstance(settings.threshold, float)
    assert settings.min_confidence == 0.25 and settings.max_lines == 1
    assert settings.trigger_kinds == ("invoked",) and settings.disable_in_comments
    assert settings.language_enabled("python") and not settings.language_enabled("go")
    assert settings.debounce_max_ms == 20  # the cap never sits below the base


def test_a_lone_language_id_is_read_as_a_list() -> None:
    settings, problems = parse_settings({"enabledLanguages": "rust"})
    assert problems == [] and settings.enabled_languages == ("rust",)


@pytest.mark.parametrize(
    ("key", "value", "sentence"),
    [
        ("maxTokens", "lots", "mercury.maxTokens must be an integer of at least 1, got 'lots'."),
        ("maxTokens", 0, "mercury.maxTokens must be an integer of at least 1, got 0."),
        ("backend", "grpc", "mercury.backend must be one of 'mercury', 'openai', 'llamacpp', 'inception', got 'grpc'."),
        ("enabled", 1, "mercury.enabled must be true or false, got 1."),
        ("threshold", 0, "mercury.threshold must be a number above 0 and at most 1 or null, got 0."),
        ("minConfidence", 1.5, "mercury.minConfidence must be a number of at least 0 and at most 1, got 1.5."),
        ("minConfidence", None, "mercury.minConfidence must be a number of at least 0 and at most 1, got None."),
        ("maxLines", 0, "mercury.maxLines must be an integer of at least 1 or null, got 0."),
        ("triggerKinds", ["typing"],
         "mercury.triggerKinds must be a list of values from 'automatic', 'invoked', got ['typing']."),
        ("triggerKinds", ["invoked", "invoked"],
         "mercury.triggerKinds must be a list of values from 'automatic', 'invoked', got ['invoked', 'invoked']."),
        ("enabledLanguages", [1], "mercury.enabledLanguages must be a list of strings, got [1]."),
        ("engineUrl", "", "mercury.engineUrl must be a non-empty string or null, got ''."),
        ("steps", True, "mercury.steps must be an integer of at least 1 or null, got True."),
    ],
)
def test_a_bad_value_keeps_the_old_one_and_says_why(key: str, value: object, sentence: str) -> None:
    base, _ = parse_settings({"maxTokens": 32})
    settings, problems = parse_settings({key: value}, base)
    assert settings == base and problems == [sentence]


def test_unknown_keys_and_non_objects() -> None:
    assert parse_settings({"nope": 1})[1] == ["Unknown setting mercury.nope is ignored."]
    settings, problems = parse_settings(["x"])
    assert settings == Settings() and problems == ["The mercury settings must be an object, got list."]


def test_mercury_section() -> None:
    assert mercury_section({"mercury": {"enabled": False}}) == {"enabled": False}
    assert mercury_section({"other": 1}) is None
    assert mercury_section(None) is None


def test_the_answer_key_holds_what_changes_a_suggestion_and_nothing_else() -> None:
    base = Settings()
    for key, value in [("model", "/m"), ("engineUrl", "http://x"), ("backend", "openai"), ("maxTokens", 8),
                       ("minConfidence", 0.5), ("maxLines", 2), ("prefixTokens", 8), ("device", "cpu")]:
        assert parse_settings({key: value})[0].answer_key() != base.answer_key(), key
    for key, value in [("debounceMs", 10), ("enabledLanguages", ["go"]), ("triggerKinds", ["invoked"]),
                       ("disableInStrings", True), ("apiKey", "k")]:
        assert parse_settings({key: value})[0].answer_key() == base.answer_key(), key


def test_the_schema_describes_every_setting_and_its_defaults_read_back() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == set(SCHEMAS)
    defaults = {key: prop["default"] for key, prop in schema["properties"].items()}
    assert parse_settings(defaults) == (Settings(), [])
    assert all(prop["markdownDescription"] for prop in schema["properties"].values())


# The generated files -------------------------------------------------------------------------------------------

def test_the_committed_schema_is_the_generated_one() -> None:
    committed = json.loads(settings_artifacts.SCHEMA_FILE.read_text(encoding="utf-8"))
    assert committed == json_schema()


def test_vscode_contributes_each_server_setting_as_the_schema_says() -> None:
    package = json.loads(settings_artifacts.PACKAGE_JSON.read_text(encoding="utf-8"))
    properties = package["contributes"]["configuration"]["properties"]
    server = {key.removeprefix("mercury."): value for key, value in properties.items()
              if settings_artifacts._is_server_setting(key)}
    expected = {key: value for key, value in SCHEMAS.items() if key != "apiKey"}  # the key is a secret there
    assert server == expected
    assert "mercury.trace.server" in properties  # the extension's own settings are left alone


def test_neovim_defaults_are_the_schema_defaults() -> None:
    text = settings_artifacts.NVIM_DEFAULTS.read_text(encoding="utf-8")
    assert text == settings_artifacts.nvim_defaults_text()
    assert "enabled = true," in text and 'enabledLanguages = { "*" },' in text and "engineUrl = vim.NIL," in text
    lua_keys = re.findall(r"^  (\w+) = ", text, re.MULTILINE)
    assert lua_keys == list(SCHEMAS)


def test_the_readme_table_lists_every_setting_with_its_default() -> None:
    readme = settings_artifacts.README.read_text(encoding="utf-8")
    table = readme[readme.index(settings_artifacts.TABLE_START):readme.index(settings_artifacts.TABLE_END)]
    rows = {match[0]: match[1] for match in re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", table, re.MULTILINE)}
    assert rows == {key: json.dumps(prop["default"]) for key, prop in SCHEMAS.items()}


def test_the_generator_reports_nothing_out_of_date() -> None:
    done = subprocess.run([sys.executable, "-m", "mercury_lsp.settings_artifacts", "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
