#!/usr/bin/env bash
# One-shot, idempotent set-up of a fresh Debian machine for kernel autotune:
# apt packages, the project virtualenv (.venv), and whatever each part adds in setup.d/.
# Usage: bash scripts/setup.sh            # what `autotune run` needs
#        bash scripts/setup.sh --tests    # plus what the test suite needs (lab image, ...)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AUTOTUNE_ROOT="$ROOT"
export AUTOTUNE_SETUP_TESTS=0
[[ "${1:-}" == "--tests" ]] && AUTOTUNE_SETUP_TESTS=1
export DEBIAN_FRONTEND=noninteractive
CACHE="${AUTOTUNE_CACHE_DIR:-$HOME/.cache/autotune}"
mkdir -p "$CACHE"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

APT_PACKAGES=(redis-server redis-tools util-linux procps)
for part in "$ROOT"/scripts/setup.d/*.apt; do
  [[ -e "$part" ]] || continue
  # shellcheck disable=SC2207
  APT_PACKAGES+=($(grep -v '^#' "$part"))
done

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing apt packages: ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's redis-server package starts a system redis; we run our own on private ports.
if systemctl is-active --quiet redis-server 2>/dev/null; then $SUDO systemctl stop redis-server || true; fi

if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
  python3 -m venv "$ROOT/.venv"
fi
export PIP_CACHE_DIR="$CACHE/pip"
"$ROOT/.venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
"$ROOT/.venv/bin/pip" install -q -e "$ROOT[dev]" 2>&1 | grep -v -E "^(WARNING|  )" || true

for part in "$ROOT"/scripts/setup.d/*.sh; do
  [[ -e "$part" ]] || continue
  echo "setup: $(basename "$part")"
  # shellcheck source=/dev/null
  source "$part"
done
echo "setup: done (venv: $ROOT/.venv)"
