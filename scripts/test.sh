#!/usr/bin/env bash
# The project's one test command (README "Test"): installs what the suite needs on a fresh
# machine, then runs every test. Extra arguments go to pytest (e.g. `-m unit`, `-k parity`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Tests never reach a model hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# UNIPIXEL_TEST_WORKERS=2 runs two pytest-xdist workers, every e2e test on one (tests/conftest.py) and the rest on the
# other: meant for 4 or more cores (not measured). On 2 cores it is slower than one process (torch in both workers
# oversubscribes them).
exec .venv/bin/python -m pytest -n "${UNIPIXEL_TEST_WORKERS:-0}" "$@"
