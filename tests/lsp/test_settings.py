"""The settings model: camelCase keys, defaults, and one sentence per bad value."""

from __future__ import annotations

from mercury_lsp.settings import Settings, mercury_section, parse_settings


def test_defaults_match_the_contract() -> None:
    settings, problems = parse_settings({})
    assert problems == []
    assert settings == Settings()
    assert (settings.prefix_tokens, settings.suffix_tokens, settings.max_tokens) == (1024, 256, 64)
    assert settings.backend == "mercury" and settings.engine_url is None and settings.auto_start
    assert settings.language_enabled("python")


def test_camel_case_keys_are_read() -> None:
    settings, problems = parse_settings(
        {
            "engineUrl": "http://127.0.0.1:9999",
            "backend": "openai",
            "remoteModel": "m",
            "prefixTokens": 10,
            "enabledLanguages": ["python"],
            "threshold": 0.5,
            "steps": None,
            "debounceMs": 20,
            "debounceMaxMs": 10,
        }
    )
    assert problems == []
    assert settings.engine_url == "http://127.0.0.1:9999" and settings.backend == "openai"
    assert settings.prefix_tokens == 10 and settings.threshold == 0.5
    assert settings.language_enabled("python") and not settings.language_enabled("go")
    assert settings.debounce_max_ms == 20  # the cap never sits below the base


def test_bad_values_keep_the_old_value_and_say_why() -> None:
    base, _ = parse_settings({"maxTokens": 32})
    settings, problems = parse_settings(
        {"maxTokens": "lots", "backend": "grpc", "enabled": 1, "threshold": 3, "nope": 1}, base
    )
    assert settings.max_tokens == 32 and settings.backend == "mercury" and settings.enabled
    assert len(problems) == 5
    assert any("mercury.maxTokens must be an integer" in p for p in problems)
    assert any("Unknown setting mercury.nope" in p for p in problems)


def test_not_an_object() -> None:
    settings, problems = parse_settings(["x"])
    assert settings == Settings() and problems == ["The mercury settings must be an object, got list."]


def test_mercury_section() -> None:
    assert mercury_section({"mercury": {"enabled": False}}) == {"enabled": False}
    assert mercury_section({"other": 1}) is None
    assert mercury_section(None) is None
