#!/usr/bin/env bash
# Install code-server 4.100.3 (VS Code 1.100.3 in the browser) from npm into CACHE/code-server-4.100.3 and
# print the path of its `code-server`. Nothing is downloaded when that copy is already complete.
#   bash tests/editors/install-code-server.sh CACHE
# Needs Node.js 20 (code-server 4.100.3 refuses any other), a C++ toolchain, python3, libkrb5-dev (its
# `kerberos` module) and Debian's ripgrep (see below).
set -euo pipefail

version=4.100.3
cache="${1:?usage: install-code-server.sh CACHE}"
target="$cache/code-server-$version"
binary="$target/node_modules/.bin/code-server"

if [[ -x "$binary" ]] && "$binary" --config /dev/null --version 2>/dev/null | grep -q "^$version "; then
  echo "$binary"
  exit 0
fi
node_major="$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p')"
if [[ "$node_major" != 20 ]]; then
  echo "install-code-server.sh: code-server $version needs Node.js 20, this is $(node --version 2>/dev/null || echo 'no node')." >&2
  exit 1
fi
rg="$(command -v rg || true)"
if [[ -z "$rg" ]]; then
  echo "install-code-server.sh: Debian's ripgrep is missing (apt-get install ripgrep)." >&2
  exit 1
fi

# Built in a scratch folder and moved into place whole, so an interrupted install is never taken for one.
partial="$target.partial"
rm -rf "$partial" "$target"
mkdir -p "$partial/tmp"
# VS Code's @vscode/ripgrep (1.15.11 in code-server 4.100.3's shrinkwrap) downloads ripgrep v13.0.0-10 from
# GitHub in its postinstall unless the archive is already in its cache, $TMPDIR/vscode-ripgrep-cache-1.15.11:
# put Debian's rg there, packed the way it expects.
case "$(uname -m)" in
  x86_64) triple=x86_64-unknown-linux-musl ;;
  aarch64) triple=aarch64-unknown-linux-musl ;;
  *) echo "install-code-server.sh: no ripgrep archive name for $(uname -m)." >&2; exit 1 ;;
esac
mkdir -p "$partial/tmp/vscode-ripgrep-cache-1.15.11" "$partial/tmp/rg"
cp "$rg" "$partial/tmp/rg/rg"
tar -czf "$partial/tmp/vscode-ripgrep-cache-1.15.11/ripgrep-v13.0.0-10-$triple.tar.gz" -C "$partial/tmp/rg" rg

# A local install, not --global: code-server's postinstall runs `npm install` again inside its own folder,
# and an inherited global flag makes that nested install unpack over the outer one.
# --unsafe-perm: as root, code-server's postinstall refuses to run without it.
# npm_config_yes: node-pty's postinstall runs npx, which would otherwise ask before installing node-gyp.
( cd "$partial" && TMPDIR="$partial/tmp" npm_config_yes=true \
    npm install --unsafe-perm --no-audit --no-fund --no-save --loglevel=error "code-server@$version" >&2 )
rm -rf "$partial/tmp"
mv "$partial" "$target"
"$binary" --config /dev/null --version | head -1 >&2
echo "$binary"
