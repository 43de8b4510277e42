#!/usr/bin/env bash
# Fetch, on a machine WITH registry access, the wheels benchmarks/gpu.sh installs on the bare GPU
# machine (Python 3.12, torch 2.11 + CUDA, transformers 5.17; no network there). They land in
# .whl/ (git-ignored); carry that folder with the tree (device tool: carry [".whl"]).
#
#   bash benchmarks/gpu_wheels.sh [DIR]        # default DIR: .whl
#
# What the GPU machine lacks (README "GPU notes", docs/environment.md §14): sam2 (an sdist: built
# here into a pure-Python wheel), hydra-core + omegaconf + antlr4-python3-runtime (an sdist, built
# here), iopath (sam2's Hiera imports it; an sdist, built here), flask + itsdangerous + blinker,
# pycocotools (cp312 binary), and the pinned transformers (5.23; 5.17 is there, and lacks what the
# trainer uses) with the regex it requires. transformers is slimmed to the model families UniPixel
# imports (benchmarks/slim_wheel.py: 13 -> 2 MB), since the device tool carries at most 64 MiB of
# tree and the test fixtures take 55. About 4 MB in all.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${1:-$ROOT/.whl}
PIP=${PIP:-$ROOT/.venv/bin/pip}
mkdir -p "$DEST"
rm -f "$DEST"/transformers-*.whl   # slimmed below: fetch it afresh
platform=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PIP" download -q --no-deps "${platform[@]}" -d "$DEST" \
    transformers==5.23.0 hydra-core==1.3.8 omegaconf==2.3.1 flask==3.1.3 itsdangerous==2.2.0 blinker==1.9.0 \
    pycocotools==2.0.11 regex==2026.11.19
# sdists: pure Python, so a wheel built here installs on 3.12 too (sam2 needs torch at build time).
"$PIP" wheel -q --no-deps -w "$DEST" antlr4-python3-runtime==4.9.3 iopath==0.1.10
SAM2_BUILD_CUDA=0 "$PIP" wheel -q --no-deps --no-build-isolation -w "$DEST" sam2==1.1.0
"$(dirname "$PIP")/python" "$ROOT/benchmarks/slim_wheel.py" "$DEST"/transformers-5.23.0-py3-none-any.whl
ls -la "$DEST"
du -sh "$DEST"
