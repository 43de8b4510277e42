#!/usr/bin/env bash
# Install the real services the integration and e2e tests start themselves (docs/environment.md §7, §8):
#
#   1. `redis-server` (apt, Redis 7.x). Tests run it on a free loopback port; it is never left running as a
#      system service.
#   2. Label Studio 1.23.2 in its own venv (default `venv-ls/`, override with UNIPIXEL_LS_VENV). Its redis/rq/
#      numpy pins conflict with the model venv, so it must stay separate.
#   3. Debian's `chromium` (apt, /usr/bin/chromium) and Python `playwright` (pinned in requirements.txt) in the
#      model venv (default `.venv/`, override with UNIPIXEL_VENV), for the editor tests (tests/e2e/editor.py).
#      Playwright drives the system browser: `playwright install` (a browser download) is never run.
#
# Idempotent and fast when done: redis is skipped when `redis-server` is on PATH, chromium when /usr/bin/chromium
# exists, playwright when the pinned version is importable, Label Studio when its stamp exists. Never runs a bare
# `label-studio` command: that STARTS a server on 0.0.0.0:8080.
# Usage: scripts/install_services.sh [STEP ...]   STEP: redis, chromium, playwright, label-studio (default: all, in
# that order). scripts/install.sh runs all but playwright beside the model venv's install, then playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
LS_VENV="${UNIPIXEL_LS_VENV:-venv-ls}"
LS_VERSION="1.23.2"
# Every package of the LS venv is pinned here: Label Studio 1.23.2 does not start with sentry-sdk 3.
LS_LOCK="scripts/constraints-label-studio.txt"
PY="${PYTHON:-python3}"
VENV="${UNIPIXEL_VENV:-.venv}"

# apt_install PACKAGE: install one Debian package (as root or with passwordless sudo) without starting services.
apt_install() {
  local package="$1" sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "install_services.sh: $package is missing and this user cannot run apt-get." >&2
      echo "  Install it as root:  apt-get update && apt-get install -y --no-install-recommends $package" >&2
      exit 1
    fi
  fi
  echo "install_services.sh: installing $package (apt)" >&2
  # policy-rc.d exit 101 forbids service starts during the install, so no system service is left running.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod +x "$policy"
    created_policy=1
  fi
  local rc=0
  { "${sudo[@]}" apt-get update -q \
    && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$package"
  } || rc=$?
  if [ "$created_policy" = 1 ]; then
    "${sudo[@]}" rm -f "$policy"
  fi
  [ "$rc" = 0 ] || { echo "install_services.sh: apt-get failed (exit $rc) installing $package" >&2; exit "$rc"; }
  APT_SUDO=("${sudo[@]}")
}

install_redis() {
  if command -v redis-server >/dev/null 2>&1; then
    return 0
  fi
  APT_SUDO=()
  apt_install redis-server
  # Belt and braces: if a packaging script started the service anyway, stop it.
  if command -v service >/dev/null 2>&1; then
    "${APT_SUDO[@]}" service redis-server stop >/dev/null 2>&1 || true
  fi
  command -v redis-server >/dev/null 2>&1 || { echo "install_services.sh: redis-server still not on PATH" >&2; exit 1; }
}

install_chromium() {
  if [ -x /usr/bin/chromium ]; then
    return 0
  fi
  apt_install chromium  # Debian's build (~60 s); Playwright launches it with executable_path=/usr/bin/chromium
  [ -x /usr/bin/chromium ] || { echo "install_services.sh: /usr/bin/chromium still missing" >&2; exit 1; }
}

# The model venv gets the pinned playwright. Without a venv yet, scripts/install.sh installs it from
# requirements.txt right after this script; the wheel carries its driver, so nothing else is downloaded.
install_playwright() {
  [ -x "$VENV/bin/python" ] || return 0
  local pin
  pin="$(grep -E '^playwright==' requirements.txt | head -n1)"
  [ -n "$pin" ] || { echo "install_services.sh: requirements.txt has no playwright== pin" >&2; exit 1; }
  if "$VENV/bin/python" - "${pin#playwright==}" <<'PYCHECK' 2>/dev/null; then
import importlib.metadata as md
import sys

raise SystemExit(0 if md.version("playwright") == sys.argv[1] else 1)
PYCHECK
    return 0
  fi
  echo "install_services.sh: installing $pin into $VENV" >&2
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install "$pin"
}

install_label_studio() {
  # The stamp names the lock's hash, so a changed lock re-syncs an existing venv.
  local stamp="$LS_VENV/.installed-label-studio-$LS_VERSION-$(sha256sum "$LS_LOCK" | cut -c1-16)"
  if [ -f "$stamp" ]; then
    return 0
  fi
  echo "install_services.sh: installing label-studio==$LS_VERSION into $LS_VENV (~2 min)" >&2
  [ -x "$LS_VENV/bin/python" ] || "$PY" -m venv "$LS_VENV"
  "$LS_VENV/bin/python" -m pip --disable-pip-version-check -q install "label-studio==$LS_VERSION" -c "$LS_LOCK"
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

[ "$#" -gt 0 ] || set -- redis chromium playwright label-studio
for step in "$@"; do
  case "$step" in
    redis) install_redis ;;
    chromium) install_chromium ;;
    playwright) install_playwright ;;
    label-studio) install_label_studio ;;
    *) echo "install_services.sh: unknown step '$step' (redis, chromium, playwright, label-studio)" >&2; exit 2 ;;
  esac
done
