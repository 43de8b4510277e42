#!/usr/bin/env bash
# Install the real services the integration and e2e tests start themselves (docs/environment.md §7, §8):
#
#   1. `redis-server` (apt, Redis 7.x). Tests run it on a free loopback port; it is never left running as a
#      system service.
#   2. Label Studio 1.23.2 in its own venv (default `venv-ls/`, override with UNIPIXEL_LS_VENV). Its redis/rq/
#      numpy pins conflict with the model venv, so it must stay separate.
#
# Idempotent and fast when done: redis is skipped when `redis-server` is on PATH, Label Studio when its stamp
# exists. Never runs a bare `label-studio` command: that STARTS a server on 0.0.0.0:8080.
# Usage: scripts/install_services.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV="${UNIPIXEL_LS_VENV:-venv-ls}"
LS_VERSION="1.23.2"
PY="${PYTHON:-python3}"

install_redis() {
  if command -v redis-server >/dev/null 2>&1; then
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "install_services.sh: redis-server is missing and this user cannot run apt-get." >&2
      echo "  Install it as root:  apt-get update && apt-get install -y --no-install-recommends redis-server" >&2
      exit 1
    fi
  fi
  echo "install_services.sh: installing redis-server (apt)" >&2
  # policy-rc.d exit 101 forbids service starts during the install, so no system redis is left running.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    created_policy=1
  fi
  local rc=0
  { "${sudo[@]}" apt-get update -q \
    && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server
  } || rc=$?
  if [ "$created_policy" = 1 ]; then
    "${sudo[@]}" rm -f "$policy"
  fi
  [ "$rc" = 0 ] || { echo "install_services.sh: apt-get failed (exit $rc) installing redis-server" >&2; exit "$rc"; }
  # Belt and braces: if a packaging script started the service anyway, stop it.
  if command -v service >/dev/null 2>&1; then
    "${sudo[@]}" service redis-server stop >/dev/null 2>&1 || true
  fi
  command -v redis-server >/dev/null 2>&1 || { echo "install_services.sh: redis-server still not on PATH" >&2; exit 1; }
}

install_label_studio() {
  local stamp="$LS_VENV/.installed-label-studio-$LS_VERSION"
  if [ -f "$stamp" ]; then
    return 0
  fi
  echo "install_services.sh: installing label-studio==$LS_VERSION into $LS_VENV (~2 min)" >&2
  [ -x "$LS_VENV/bin/python" ] || "$PY" -m venv "$LS_VENV"
  "$LS_VENV/bin/python" -m pip --disable-pip-version-check -q install "label-studio==$LS_VERSION"
  # Import only: `label-studio --version` would start a server.
  "$LS_VENV/bin/python" - "$LS_VERSION" <<'PYCHECK'
import importlib.metadata as md
import sys

import label_studio  # noqa: F401

got = md.version("label-studio")
if got != sys.argv[1]:
    raise SystemExit(f"label-studio {got} got installed; expected {sys.argv[1]}")
PYCHECK
  touch "$stamp"
}

install_redis
install_label_studio
