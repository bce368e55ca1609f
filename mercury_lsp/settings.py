"""The `mercury` settings tree: one typed, defaulted model read from camelCase JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Backend = Literal["mercury", "openai"]
Device = Literal["auto", "cpu", "cuda"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("mercury", "openai"),
    "device": ("auto", "cpu", "cuda"),
}
_MINIMUM: dict[str, int] = {
    "prefixTokens": 0,
    "suffixTokens": 0,
    "extraContextTokens": 0,
    "maxTokens": 1,
    "steps": 1,
    "debounceMs": 0,
    "debounceMaxMs": 0,
    "candidates": 1,
}


@dataclass(frozen=True)
class Settings:
    """Every user-facing option of the language server, with the defaults of the settings contract."""

    enabled: bool = True
    enabled_languages: tuple[str, ...] = ("*",)
    engine_url: str | None = None
    backend: Backend = "mercury"
    api_key: str | None = None
    remote_model: str | None = None
    auto_start: bool = True
    model: str | None = None
    device: Device = "auto"
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    extra_context_tokens: int = 0
    max_tokens: int = 64
    steps: int | None = None
    threshold: float | None = None
    debounce_ms: int = 75
    debounce_max_ms: int = 400
    candidates: int = 1

    def language_enabled(self, language_id: str) -> bool:
        """Whether completions are wanted for documents of this languageId."""
        return self.enabled and (
            "*" in self.enabled_languages or language_id in self.enabled_languages
        )


def camel_case(name: str) -> str:
    """`prefix_tokens` -> `prefixTokens`."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


_FIELDS = {camel_case(f.name): f for f in dataclasses.fields(Settings)}


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its range."""


def _check(key: str, value: Any, default: Any) -> Any:
    """Return `value` converted to the type of the setting `key`, or raise SettingsError."""
    if key == "enabledLanguages":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"mercury.{key} must be a list of languageIds, got {value!r}.")
        return tuple(value)
    if value is None:
        if default is None:
            return None
        raise SettingsError(f"mercury.{key} cannot be null.")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"mercury.{key} must be true or false, got {value!r}.")
        return value
    if key in _CHOICES:
        if value not in _CHOICES[key]:
            choices = ", ".join(repr(c) for c in _CHOICES[key])
            raise SettingsError(f"mercury.{key} must be one of {choices}, got {value!r}.")
        return value
    if key == "threshold":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise SettingsError(f"mercury.{key} must be a number above 0 and at most 1, got {value!r}.")
        return float(value)
    if key in _MINIMUM:
        if isinstance(value, bool) or not isinstance(value, int) or value < _MINIMUM[key]:
            raise SettingsError(
                f"mercury.{key} must be an integer of at least {_MINIMUM[key]}, got {value!r}."
            )
        return value
    if not isinstance(value, str) or not value:
        raise SettingsError(f"mercury.{key} must be a non-empty string or null, got {value!r}.")
    return value


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Read a `mercury` settings object over `base`; bad values keep their old value.

    Returns the settings and one sentence per rejected value (for window/showMessage).
    """
    base = base or Settings()
    if raw is None:
        return base, []
    if not isinstance(raw, dict):
        return base, [f"The mercury settings must be an object, got {type(raw).__name__}."]
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        spec = _FIELDS.get(key)
        if spec is None:
            problems.append(f"Unknown setting mercury.{key} is ignored.")
            continue
        try:
            changes[spec.name] = _check(key, value, spec.default)
        except SettingsError as error:
            problems.append(str(error))
    settings = dataclasses.replace(base, **changes)
    if settings.debounce_max_ms < settings.debounce_ms:
        settings = dataclasses.replace(settings, debounce_max_ms=settings.debounce_ms)
    return settings, problems


def mercury_section(payload: Any) -> Any:
    """The `mercury` object inside initializationOptions or didChangeConfiguration settings."""
    if isinstance(payload, dict) and "mercury" in payload:
        return payload["mercury"]
    return None
