#!/usr/bin/env bash
# Create (or update) the project's virtual environment on a CPU machine.
#
# Order matters (see docs): torch first and pinned, then the requirements, then the
# `sam2` sdist without build isolation (its isolated build env would pull CUDA torch).
# Idempotent: a second run only checks the pins. Usage: scripts/install.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-${UNIPIXEL_VENV:-.venv}}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.installed-$(sha256sum requirements.txt scripts/constraints*.txt scripts/install.sh scripts/install_services.sh | sha256sum | cut -c1-16)"

# redis-server, chromium and the Label Studio venv for the integration/e2e tests (own stamp; instant when done), in
# the background: the two venvs' installs share nothing, and side by side a fresh machine makes both in about 3
# minutes on 2 cores instead of 5. The EXIT trap waits for it, so a failure here never leaves it running unseen.
bash scripts/install_services.sh redis chromium label-studio &
SERVICES=$!
trap 'wait' EXIT
if [ -f "$STAMP" ]; then
  wait "$SERVICES"
  UNIPIXEL_VENV="$VENV" bash scripts/install_services.sh playwright
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install "torch==2.13.0" setuptools wheel
# The lock pins the requirements' own dependencies too, so a new release on PyPI cannot change the venv.
"${PIP[@]}" install -r requirements.txt -c scripts/constraints.txt
SAM2_BUILD_CUDA=0 "${PIP[@]}" install --no-build-isolation --no-deps "sam2==1.1.0"
# A torch other than the CPU pin means a requirement pulled the CUDA build: fail loudly.
"$VENV/bin/python" - <<'PYCHECK'
import importlib.metadata as md
v = md.version("torch")
if not v.startswith("2.13.0"):
    raise SystemExit(f"torch {v} got installed; expected 2.13.0 (CPU). Check requirements pins.")
PYCHECK
touch "$STAMP"
wait "$SERVICES"  # its exit status fails this script (set -e)
UNIPIXEL_VENV="$VENV" bash scripts/install_services.sh playwright  # the pin's check, once this venv's own pip has finished
