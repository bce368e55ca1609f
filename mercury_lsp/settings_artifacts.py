"""Files generated from the settings model: the JSON Schema, VS Code's contributed settings, the Neovim defaults
and the README's settings table.

    python -m mercury_lsp.settings_artifacts          # rewrite them
    python -m mercury_lsp.settings_artifacts --check  # exit 1 when one is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mercury_lsp.settings import SCHEMAS, SETTINGS_FIELDS, info_of, json_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "mercury_lsp" / "settings.schema.json"
PACKAGE_JSON = ROOT / "editors" / "vscode" / "package.json"
NVIM_DEFAULTS = ROOT / "editors" / "nvim" / "lua" / "mercury" / "server_defaults.lua"
README = ROOT / "README.md"
TABLE_START = "<!-- settings table: generated from mercury_lsp/settings.py by python -m mercury_lsp.settings_artifacts -->"
TABLE_END = "<!-- end of settings table -->"
GENERATED_BY = "Generated from mercury_lsp/settings.py by `python -m mercury_lsp.settings_artifacts`; do not edit."


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def schema_text() -> str:
    return _json_text(json_schema())


def _is_server_setting(key: str) -> bool:
    """`mercury.prefixTokens` is the server's; `mercury.server.path`, `mercury.trace.server` the extension's."""
    return key.startswith("mercury.") and "." not in key[len("mercury."):]


def package_json_text(current: str) -> str:
    """package.json with its `mercury.<setting>` entries replaced by the schema's; everything else kept."""
    package = json.loads(current)
    properties = package["contributes"]["configuration"]["properties"]
    generated = {f"mercury.{key}": schema for key, schema in SCHEMAS.items()
                 if info_of(SETTINGS_FIELDS[key]).vscode}
    others = {key: value for key, value in properties.items() if not _is_server_setting(key)}
    package["contributes"]["configuration"]["properties"] = generated | others
    return _json_text(package)


def _lua_value(value: Any) -> str:
    if value is None:
        return "vim.NIL"  # a JSON null once sent to the server; a Lua nil would drop the key
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "{ " + ", ".join(_lua_value(item) for item in value) + " }"


def nvim_defaults_text() -> str:
    """A Lua module returning the server's defaults, camelCase keys."""
    rows = [f"  {key} = {_lua_value(schema['default'])}," for key, schema in SCHEMAS.items()]
    return "\n".join([f"-- {GENERATED_BY}", "return {", *rows, "}"]) + "\n"


def _readme_text(description: str) -> str:
    return re.sub(r"#mercury\.(\w+)#", r"\1", description).replace("|", "\\|")


def readme_table() -> str:
    """The README's settings table, between its markers."""
    rows = [TABLE_START, "| key | default | meaning |", "|---|---|---|"]
    for key, schema in SCHEMAS.items():
        default = json.dumps(schema["default"]).replace("|", "\\|")
        rows.append(f"| `{key}` | `{default}` | {_readme_text(schema['markdownDescription'])} |")
    rows.append(TABLE_END)
    return "\n".join(rows)


def readme_text(current: str) -> str:
    """README.md with the text between the table markers replaced by the generated table."""
    start, end = current.find(TABLE_START), current.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no settings table markers ({TABLE_START!r} ... {TABLE_END!r}).")
    return current[:start] + readme_table() + current[end + len(TABLE_END):]


# (path, new text from the current text)
ARTIFACTS: list[tuple[Path, Callable[[str], str]]] = [
    (SCHEMA_FILE, lambda current: schema_text()),
    (PACKAGE_JSON, package_json_text),
    (NVIM_DEFAULTS, lambda current: nvim_defaults_text()),
    (README, readme_text),
]


def stale_artifacts() -> list[Path]:
    """The generated files whose content differs from what the settings model gives."""
    stale = []
    for path, render in ARTIFACTS:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if render(current) != current:
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    stale = stale_artifacts()
    if args.check:
        for path in stale:
            print(f"settings_artifacts: {path.relative_to(ROOT)} is out of date; run "
                  "python -m mercury_lsp.settings_artifacts", file=sys.stderr)
        return 1 if stale else 0
    for path, render in ARTIFACTS:
        if path in stale:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            path.write_text(render(current), encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
