"""The `mercury` settings: one typed, defaulted model from which the JSON Schema, and through it every check of
a value, is derived (camelCase keys on the wire).

Each field carries its description and schema keywords in its metadata; `mercury_lsp.settings_artifacts`
writes the schema, the VS Code contribution, the Neovim defaults and the README table from it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

Backend = Literal["mercury", "openai", "llamacpp", "inception"]
# The families whose fill-in-the-middle prompt the language server can write (engine/api/fim_templates.py).
FimTemplateName = Literal["qwen", "starcoder", "codellama", "deepseek", "codestral"]
Device = Literal["auto", "cpu", "cuda"]
TriggerKind = Literal["automatic", "invoked"]


@dataclass(frozen=True)
class SettingInfo:
    """What a user reads about a setting, and how it is checked beyond its Python type."""

    description: str  # Markdown; `#mercury.key#` links another setting in VS Code
    schema: dict[str, Any]  # extra JSON Schema keywords: minimum, maximum, minLength, items...
    shapes_answer: bool  # a different value can give a different suggestion at the same cursor
    vscode: bool  # contributed to VS Code's settings (the API key lives in its secret storage instead)


def setting(default: Any, description: str, *, shapes_answer: bool = False, vscode: bool = True,
            **schema: Any) -> Any:
    """A settings field: its default and its SettingInfo."""
    info = SettingInfo(description, schema, shapes_answer, vscode)
    return field(default=default, metadata={"setting": info})


@dataclass(frozen=True)
class Settings:
    """Every user-facing option of the language server."""

    enabled: bool = setting(
        True, "Show completions. `Mercury: Enable Completions` / `Mercury: Disable Completions` and the status "
              "bar item switch this.")
    enabled_languages: tuple[str, ...] = setting(
        ("*",), 'Language ids to complete, for example `["python", "rust"]`; `"*"` means every language.')
    engine_url: str | None = setting(
        None, "Base URL of a running engine (ours or any OpenAI-compatible fill-in-the-middle server). Empty: "
              "the local engine, started when needed.", shapes_answer=True, minLength=1)
    backend: Backend = setting(
        "mercury", "Protocol spoken to `#mercury.engineUrl#`: `mercury` is the engine's `POST /v1/infill`, "
                   "`openai` an OpenAI-compatible `POST /v1/completions` (with `suffix`: SGLang started with "
                   "`--completion-template`, llama-cpp-python, our engine; or with a prompt written for "
                   "`#mercury.fimTemplate#`: vLLM), `llamacpp` the llama.cpp server's `POST /infill`, "
                   "`inception` the `POST /v1/fim/completions` of Inception's Mercury Edit (its service when "
                   "`#mercury.engineUrl#` is empty).", shapes_answer=True)
    fim_template: FimTemplateName | None = setting(
        None, "For the `openai` backend: write the model family's fill-in-the-middle prompt here and send "
              "`prompt` only, for servers that refuse `suffix` (vLLM). Empty: send `suffix` and let the server "
              "write it. Only base coder models fill in the middle, not instruct ones.", shapes_answer=True)
    api_key: str | None = setting(
        None, "Bearer key for the engine (else the `MERCURY_API_KEY` environment variable).", vscode=False,
        minLength=1)
    remote_model: str | None = setting(
        None, "The `model` field sent to an OpenAI-compatible backend. The API key is kept in secret storage: "
              "run `Mercury: Set API Key`.", shapes_answer=True, minLength=1)
    ca_bundle: str | None = setting(
        None, "A PEM file of certificate authorities to trust for an HTTPS `#mercury.engineUrl#` (a reverse "
              "proxy with a private CA). Empty: the system's.", minLength=1)
    auto_start: bool = setting(True, "Start the local engine when none answers.")
    model: str | None = setting(
        None, "Model for the auto-started engine: a folder (config.json, model.safetensors, tokenizer.json), a "
              "short name from `mercury-engine models`, or a hub id `org/name[@revision]` (downloaded once into "
              "the Hugging Face cache). Empty: the bundled model.", shapes_answer=True, minLength=1)
    device: Device = setting("auto", "Device for the auto-started engine.", shapes_answer=True)
    prefix_tokens: int = setting(
        1024, "Most tokens of text before the cursor to send (cut at line boundaries; the engine fits the "
              "context to its model).", shapes_answer=True, minimum=0)
    suffix_tokens: int = setting(256, "Most tokens of text after the cursor to send.", shapes_answer=True,
                                 minimum=0)
    extra_context_tokens: int = setting(
        0, "Tokens of snippets from other open or recently edited files; 0 turns this off.", shapes_answer=True,
        minimum=0)
    max_tokens: int = setting(
        64, "Canvas size of a multi-line completion, in tokens (a single-line one uses at most 16).",
        shapes_answer=True, minimum=1)
    steps: int | None = setting(
        None, "Denoising steps per completion. Empty: the engine's default.", shapes_answer=True, minimum=1)
    threshold: float | None = setting(
        None, "Confidence a token needs to be committed early. Empty: the engine's default.", shapes_answer=True,
        exclusiveMinimum=0, maximum=1)
    min_confidence: float = setting(
        0.6, "Cut a suggestion before the first word with a token the model is less sure of than this (0 to 1); "
             "nothing is shown when the first word is below it. 0 shows everything.", shapes_answer=True,
        minimum=0, maximum=1)
    max_lines: int | None = setting(
        1, "Most lines in a suggestion (1: the rest of the current line only). Empty: the block the cursor "
           "is in decides. The bundled model is rarely right past one line; a real checkpoint earns more.",
        shapes_answer=True, minimum=1)
    candidates: int = setting(1, "Completions per request.", shapes_answer=True, minimum=1)
    disable_in_comments: bool = setting(
        False, "No suggestions inside comments (Python, JavaScript/TypeScript, Go, Rust, C/C++, Java; other "
               "languages are not scanned).")
    disable_in_strings: bool = setting(
        False, "No suggestions inside string literals and docstrings (the same languages).")
    trigger_kinds: tuple[TriggerKind, ...] = setting(
        ("automatic", "invoked"), "When to suggest: `automatic` while typing, `invoked` when asked "
                                  "(a key or command).", uniqueItems=True)
    debounce_ms: int = setting(
        75, "Wait after a keystroke before asking (inside a word it grows with fast typing, up to "
            "`#mercury.debounceMaxMs#`).",
        minimum=0)
    debounce_max_ms: int = setting(400, "Longest wait after a keystroke inside a word.", minimum=0)
    next_edit: bool = setting(
        False, "Answer `textDocument/copilotInlineEdit`: after an edit, propose the matching edit nearby (a "
               "rename's other occurrences). Off by default: the bundled model is rarely right (bench/RESULTS.md).")
    next_edit_window_lines: int = setting(
        8, "Lines above and below the cursor a next edit may touch.", minimum=1, maximum=200)
    next_edit_min_confidence: float = setting(
        0.5, "Least confident token a proposed next edit may have (0 to 1).", minimum=0, maximum=1)

    def language_enabled(self, language_id: str) -> bool:
        """Whether completions are wanted for documents of this languageId."""
        return self.enabled and ("*" in self.enabled_languages or language_id in self.enabled_languages)

    def answer_key(self) -> tuple:
        """The values of every setting that shapes a suggestion: part of the type-through cache's key."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if info_of(f).shapes_answer)


def camel_case(name: str) -> str:
    """`prefix_tokens` -> `prefixTokens`."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def info_of(spec: dataclasses.Field) -> SettingInfo:
    return spec.metadata["setting"]


_HINTS = typing.get_type_hints(Settings)
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _type_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a Python type hint (the few shapes settings use)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return {"type": "string", "enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        inner = _type_schema(next(arg for arg in args if arg is not type(None)))
        if "enum" in inner:  # JSON Schema checks `enum` apart from `type`: null must be among the choices
            inner["enum"] = [*inner["enum"], None]
        return inner | {"type": [inner["type"], "null"]}
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0])}
    return {"type": _JSON_TYPES[hint]}


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def property_schema(spec: dataclasses.Field) -> dict[str, Any]:
    """One setting's JSON Schema: type, default, description and range keywords."""
    info = info_of(spec)
    return (_type_schema(_HINTS[spec.name]) | info.schema
            | {"default": _json_value(spec.default), "markdownDescription": info.description})


SETTINGS_FIELDS = {camel_case(spec.name): spec for spec in dataclasses.fields(Settings)}
SCHEMAS = {key: property_schema(spec) for key, spec in SETTINGS_FIELDS.items()}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the `mercury` settings object."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mercury",
        "description": "Settings of mercury-lsp, sent as initializationOptions.mercury and in "
                       "workspace/didChangeConfiguration under `mercury`; every key is optional.",
        "type": "object",
        "additionalProperties": False,
        "properties": SCHEMAS,
    }


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its range."""


def _matches_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, list)


def _conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Whether `value` satisfies the schema keywords settings use."""
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    kind = next((k for k in kinds if _matches_type(value, k)), None)
    if kind is None:
        return False
    if kind == "null":
        return True
    if "enum" in schema and value not in schema["enum"]:
        return False
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
    if kind == "string" and len(value) < schema.get("minLength", 0):
        return False
    if kind == "array":
        if schema.get("uniqueItems") and len(set(map(repr, value))) != len(value):
            return False
        return all(_conforms(item, schema["items"]) for item in value)
    return True


def _expected(schema: dict[str, Any]) -> str:
    """What a value of this schema must be, in words."""
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    kind = kinds[0]
    if "enum" in schema:
        words = "one of " + ", ".join(repr(choice) for choice in schema["enum"] if choice is not None)
    elif kind == "boolean":
        words = "true or false"
    elif kind == "array" and "enum" in schema["items"]:
        words = "a list of values from " + ", ".join(repr(choice) for choice in schema["items"]["enum"])
    elif kind == "array":
        words = "a list of strings"
    elif kind == "string":
        words = "a non-empty string" if schema.get("minLength") else "a string"
    else:
        words = "an integer" if kind == "integer" else "a number"
        if "minimum" in schema:
            words += f" of at least {schema['minimum']:g}"
        if "exclusiveMinimum" in schema:
            words += f" above {schema['exclusiveMinimum']:g}"
        if "maximum" in schema:
            words += f" and at most {schema['maximum']:g}"
    return words + (" or null" if "null" in kinds else "")


def read_setting(key: str, value: Any) -> Any:
    """`value` checked against the setting `key`'s schema and converted to its Python type."""
    schema = SCHEMAS[key]
    if schema["type"] == "array" and isinstance(value, str):
        value = [value]  # a lone language id where a list is meant
    if not _conforms(value, schema):
        raise SettingsError(f"mercury.{key} must be {_expected(schema)}, got {value!r}.")
    if isinstance(value, list):
        return tuple(value)
    if "number" in schema["type"] and value is not None:
        return float(value)  # JSON has one number type: 1 means 1.0 here
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
        spec = SETTINGS_FIELDS.get(key)
        if spec is None:
            problems.append(f"Unknown setting mercury.{key} is ignored.")
            continue
        try:
            changes[spec.name] = read_setting(key, value)
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
