#!/usr/bin/env bash
# One prepared run on a bare GPU machine (no network, only this tree): session latency, propagation
# speed, GPU memory per session, the backend over HTTP, one training step, and the speed levers,
# at random-3b in bfloat16 (random weights: timings and memory, not masks). Under 8 minutes.
#
#   bash benchmarks/gpu.sh [OUT_DIR]      # default: $OUT, else out/gpu-bench
#
# Writes OUT_DIR/gpu_bench.md and OUT_DIR/gpu_bench.json (plus the per-process part-*.json) and
# prints the table. Without CUDA it runs the same code at the shrunk size on the CPU (what CI does).
# Environment:
#   PYTHON   interpreter (default: python3 when it imports torch, else .venv/bin/python)
#   SIZE     full | tiny (default: full with CUDA, else tiny)
#   WHEELS   folder of carried wheels installed first, offline (default: .whl; fill it on a
#            networked machine with benchmarks/gpu_wheels.sh and carry it with the tree)
#   LEVERS   speed levers measured as columns by the main run (default: the profile's)
#   MAIN_LIMIT_S / LEVER_LIMIT_S   time limits of the main run (280) and of the compile run (150)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT_DIR=${1:-${OUT:-$ROOT/out/gpu-bench}}
WHEELS=${WHEELS:-$ROOT/.whl}
MAIN_LIMIT_S=${MAIN_LIMIT_S:-280}
LEVER_LIMIT_S=${LEVER_LIMIT_S:-150}
START=$(date +%s)
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/part-*.json
cd "$ROOT"
log() { echo "[gpu.sh $(( $(date +%s) - START ))s] $*"; }

# 1. The interpreter: the machine's own torch (never installed here: it must match the driver).
if [ -z "${PYTHON:-}" ]; then
    if timeout 120 python3 -c "import torch" 2>/dev/null; then PYTHON=python3
    elif [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python
    else echo "no Python with torch found (tried python3 and .venv/bin/python); set PYTHON" >&2; exit 2
    fi
fi

# 2. Carried wheels, offline, into a private folder on PYTHONPATH (the system site is untouched).
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    SITE=$(mktemp -d /tmp/unipixel-site-XXXXXX)
    if timeout 180 "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target "$SITE" "$WHEELS"/*.whl; then
        export PYTHONPATH="$SITE:${PYTHONPATH:-}"
        log "installed $(ls "$WHEELS"/*.whl | wc -l) carried wheels into $SITE"
    else
        log "installing the carried wheels from $WHEELS failed; going on with what is installed"
    fi
fi
export PYTHONPATH="$ROOT:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# 3. One probe: the size to run, versions, and what is missing (reported, never waited for; the
#    sections that need a missing module are skipped and say so in the table).
PROBE=$(timeout 300 "$PYTHON" benchmarks/gpu_probe.py 2>/dev/null)
log "python: $PYTHON: $(echo "$PROBE" | sed -n 2p)"
MISSING=$(echo "$PROBE" | sed -n 3p)
[ -n "$MISSING" ] && log "missing Python modules: $MISSING (the sections needing them are skipped)"
SIZE=${SIZE:-$(echo "$PROBE" | sed -n 1p)}
SIZE=${SIZE:-tiny}
THREADS=()
[ "$SIZE" = tiny ] && THREADS=(--threads 1)   # the shrunk model's ops are too small for more
LEVER_ARGS=()
[ -n "${LEVERS+x}" ] && read -r -a LEVER_ARGS <<< "--levers ${LEVERS}"

# 4. The main run, then the compile lever in its own process (compiling may take minutes).
log "main run (size $SIZE, limit ${MAIN_LIMIT_S}s)"
timeout -k 10 "$MAIN_LIMIT_S" "$PYTHON" benchmarks/bench_gpu.py --out "$OUT_DIR" --size "$SIZE" \
    --budget-s $(( MAIN_LIMIT_S - 15 )) "${THREADS[@]}" "${LEVER_ARGS[@]}" || log "main run ended with status $?"
if [ "$SIZE" = full ]; then
    log "compile_sam2 lever (limit ${LEVER_LIMIT_S}s)"
    timeout -k 10 "$LEVER_LIMIT_S" "$PYTHON" benchmarks/bench_gpu.py --out "$OUT_DIR" --size "$SIZE" \
        --part lever --lever compile_sam2 || log "compile run ended with status $?"
fi

# 5. One table from whatever finished (needs neither torch nor numpy).
"$PYTHON" benchmarks/gpu_table.py "$OUT_DIR"
log "wrote $OUT_DIR/gpu_bench.md and $OUT_DIR/gpu_bench.json"
