#!/usr/bin/env bash
# Installs what the test suite's real servers need, when missing: PostgreSQL, gnupg, Node.js,
# and Debian's Chromium for the browser tests (Playwright drives it; never a downloaded build).
# Runs as part of `make test` so a fresh machine needs nothing else.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || need+=(postgresql)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)  # the load balancer of scripts/cluster.sh
[ -x /usr/bin/chromium ] || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
