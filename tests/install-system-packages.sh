#!/usr/bin/env bash
# System packages the main test suite runs for real (the editors' own live in editors/ci.sh): nginx, for the
# README's router recipe (tests/engine_server/test_router.py). Debian's stable package, so it moves only with
# security fixes. Only as root on Debian, only when missing; otherwise those tests skip (or fail under CI) and say
# what to install.
set -euo pipefail

command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] && exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "install-system-packages.sh: nginx is missing and cannot be installed here (apt-get install nginx-light as root)." >&2
  exit 0
fi
apt-get update -q >/dev/null
# policy-rc.d 101: do not start the system's own nginx on port 80; the tests run private ones.
policy=/usr/sbin/policy-rc.d
had_policy=0
[[ -e "$policy" ]] && had_policy=1
[[ "$had_policy" == 1 ]] || { printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
[[ "$had_policy" == 1 ]] || rm -f "$policy"
/usr/sbin/nginx -v
